"""The Dagster instance's ``dagster.yaml`` under ``$STAX_HOME/dagster``: Stax's until the user
edits it, then the user's.

It is written from the repo's template only when it is missing, so a user's retention, run
monitoring or run queue settings survive every run. Only what Stax cannot work without is put
back if it is missing or changed: ``concurrency.pools.default_limit: 1``, because DuckDB lets one
process write the warehouse, so a second writing run must queue rather than fail on the lock.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Any

import yaml

from stax_pipeline.errors import ConfigError
from stax_pipeline.lib.private_files import PRIVATE_FILE

log = logging.getLogger(__name__)

CONFIG_FILE = "dagster.yaml"
# key path -> the value Stax needs there
REQUIRED: dict[tuple[str, ...], Any] = {("concurrency", "pools", "default_limit"): 1}


def write_instance_config(dagster_home: Path, template: Path) -> Path:
    """Make sure ``dagster_home/dagster.yaml`` exists and holds :data:`REQUIRED`; return it.

    A missing file is copied from ``template``; an existing one is left byte for byte as it is
    unless a required key is missing or different, which is then set (with a warning: the
    file is rewritten, so its comments are lost).
    """
    target = dagster_home / CONFIG_FILE
    if not target.exists():
        _write_private(target, template.read_text())
        return target
    try:
        config = yaml.safe_load(target.read_text()) or {}
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise ConfigError(
            f"{target} is not valid YAML{line}: fix it, or delete it and Stax writes a fresh one"
        ) from None
    if not isinstance(config, dict):
        raise ConfigError(
            f"{target} must be a YAML mapping: fix it, or delete it and Stax writes a fresh one"
        )
    fixed = [".".join(path) for path, value in REQUIRED.items() if _set(config, path, value)]
    if fixed:
        log.warning(
            "%s: set %s (the warehouse allows one writer at a time)",
            target,
            ", ".join(f"{key}: {REQUIRED[tuple(key.split('.'))]}" for key in fixed),
        )
        _write_private(target, yaml.safe_dump(config, sort_keys=False))
    return target


def _set(config: dict, path: tuple[str, ...], value: Any) -> bool:
    """Set ``config[path[0]][path[1]]… = value``; True if that changed anything."""
    node = config
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    if node.get(path[-1]) == value and type(node.get(path[-1])) is type(value):
        return False
    node[path[-1]] = value
    return True


def _write_private(target: Path, text: str) -> None:
    """Replace ``target`` with ``text`` in one rename, from a file created owner-only."""
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
