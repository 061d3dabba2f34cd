"""``make ui``: ``dagster dev`` on workspace.yaml, on the instance under the same STAX_HOME.

Before it hands over to ``dagster dev`` (an ``exec``: its processes are this one's), it checks
every setting, prepares ``$STAX_HOME/dagster`` (lib/instance_config.py), sets the umask to 077
so the webserver, the daemon, the code servers and their runs create private files, and removes
the master key (``STAX_MASTER_KEY``, ``STAX_NEW_MASTER_KEY``) from the environment: none of
these processes needs it except a run's ingest step, which decrypts the connection's key with
the key file ``$STAX_HOME/master.key`` (see the README, "The Dagster UI").
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from stax_pipeline.errors import StaxError
from stax_pipeline.lib.dagster_storage import PLANNED_EVENTS_ENV
from stax_pipeline.lib.dbt import SECRET_ENV_VARS
from stax_pipeline.settings import Settings, load_settings

WORKSPACE = Path(__file__).resolve().parents[2] / "workspace.yaml"


def ui_environment(environ: Mapping[str, str], settings: Settings) -> dict[str, str]:
    """The environment of ``dagster dev``: this one without the master key, with DAGSTER_HOME
    and STAX_HOME set, and this environment's executables (dbt, dagster) first on PATH."""
    env = {name: value for name, value in environ.items() if name not in SECRET_ENV_VARS}
    env["STAX_HOME"] = str(settings.home)
    env["DAGSTER_HOME"] = str(settings.dagster_home)
    env.setdefault(PLANNED_EVENTS_ENV, "true")  # as the CLI's runs (lib/dagster_storage.py)
    env["PATH"] = os.pathsep.join(filter(None, [str(Path(sys.executable).parent), env.get("PATH")]))
    return env


def main(argv: list[str] | None = None) -> int:
    from stax_pipeline.credentials.crypto import MASTER_KEY_ENV
    from stax_pipeline.orchestration import prepare_dagster_home

    try:
        settings = load_settings()  # every setting checked; umask 077 from here on
        prepare_dagster_home(settings)
    except StaxError as exc:
        print(f"make ui: {exc}", file=sys.stderr)
        return exc.exit_code
    if os.environ.get(MASTER_KEY_ENV) and not settings.master_key_path.exists():
        print(
            f"make ui: note: {MASTER_KEY_ENV} is not passed to the Dagster processes, and there is "
            f"no {settings.master_key_path}: runs started from the UI or the daemon cannot decrypt "
            "stored keys. Sync with `stax sync`, or keep the master key in that file (mode 0600).",
            file=sys.stderr,
        )
    dagster = str(Path(sys.executable).parent / "dagster")
    args = [dagster, "dev", "-w", str(WORKSPACE), *(sys.argv[1:] if argv is None else argv)]
    os.execve(dagster, args, ui_environment(os.environ, settings))
    return 0  # not reached: exec replaced this process


if __name__ == "__main__":
    sys.exit(main())
