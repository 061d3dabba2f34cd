"""Stax's state is private to its owner: files 0600, folders 0700, whatever the umask.

The warehouse, the published marts, the app database, the master key, logs, dlt's and dbt's
working folders and the Dagster instance all live under ``STAX_HOME``. Two mechanisms keep them
private, because neither alone is enough:

- :func:`private_umask` sets this process's umask to 077 as soon as it is about to write state
  (``load_settings(create=True)``), so every file created from then on — by DuckDB, SQLite, dlt,
  Dagster, and the dbt subprocess, which inherits the umask — is owner-only from its first byte.
- :func:`make_tree_private` tightens what already exists: a ``STAX_HOME`` made before this
  version, or by a process with another umask (a ``dagster dev`` started by hand). It runs when
  the Dagster instance is prepared and after every sync.

Nothing is ever loosened, and only paths owned by this user are touched.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
PRIVATE_UMASK = 0o077


def private_umask() -> None:
    """Make files this process creates from now on owner-only (its children inherit it)."""
    os.umask(os.umask(PRIVATE_UMASK) | PRIVATE_UMASK)


def make_private(path: Path) -> None:
    """Remove group and other permissions from one file or folder (never a symlink's target)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode) or info.st_uid != os.geteuid():
        return
    if not (stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode)):
        return  # sockets, pipes: not ours to change
    wanted = stat.S_IMODE(info.st_mode) & ~PRIVATE_UMASK
    if stat.S_ISDIR(info.st_mode):
        wanted |= PRIVATE_DIR  # the owner keeps full access to its folders
    if wanted != stat.S_IMODE(info.st_mode):
        try:
            os.chmod(path, wanted, follow_symlinks=False)
        except FileNotFoundError:
            pass  # removed meanwhile (a dbt run folder being pruned)
        except NotImplementedError:
            os.chmod(path, wanted)  # no lchmod: the path is no symlink (checked above)


def make_tree_private(root: Path) -> None:
    """:func:`make_private` on ``root`` and everything below it (symlinks are not followed)."""
    if not root.is_dir():
        return
    make_private(root)
    for directory, folders, files in os.walk(root, followlinks=False):
        base = Path(directory)
        for name in folders + files:
            make_private(base / name)
