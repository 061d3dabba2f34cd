"""Bad input, everywhere a person types or configures: each case is a real `stax` process that
must answer exit 2 with exactly one line on stderr, and change nothing — no STAX_HOME created
(or the existing one byte for byte the same), no row, no request to the API."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stax_pipeline.cli import build_parser
from stax_pipeline.credentials import ConnectionStore
from stax_pipeline.settings import load_settings
from tests.cli.test_connect import STAX
from tests.conftest import ADMIN_KEY, TODAY

REAL_TODAY = datetime.now(UTC).date()
FIRST, LAST = TODAY - timedelta(days=3), TODAY - timedelta(days=2)
INJECTION = "a'; drop table x; --"
CLOSED = object()  # stdin closed (fd 0 not open at all), as with `stax connect … <&-`


def run(args: list[str], *, stdin: bytes | object = b"", env: dict[str, str] | None = None):
    environment = dict(os.environ)
    environment.update(env or {})
    closed = stdin is CLOSED
    return subprocess.run(
        [STAX, *args],
        input=None if closed else stdin,
        capture_output=True,
        env=environment,
        timeout=120,
        stdin=subprocess.DEVNULL if closed else None,
        preexec_fn=(lambda: os.close(0)) if closed else None,
    )


def snapshot(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every path under ``root`` with its mode and (for files) its bytes."""
    state = {}
    for path in sorted(root.rglob("*")):
        state[str(path.relative_to(root))] = (
            path.lstat().st_mode,
            path.read_bytes() if path.is_file() else None,
        )
    return state


KEY = (ADMIN_KEY + "\n").encode()
# (id, arguments, environment, stdin, what stderr must say). Cases marked EXISTING run against a
# STAX_HOME holding one connection ('acme'); the others against none.
EXISTING = "existing"
CASES = [
    # connection names: a Dagster partition key and a value in SQL
    *[
        (f"name-{label}", ["connect", "openai", "--name", name], {}, KEY, "connection name")
        for label, name in [
            ("empty", ""),
            ("41-chars", "a" * 41),
            ("pipe", "a|b"),
            ("slash", "a/b"),
            ("quote", "a'b"),
            ("double-quote", 'a"b'),
            ("space", "a b"),
            ("control", "a\x01b"),
            ("injection", INJECTION),
            ("upper", "Acme"),
            ("key", "sk-admin-abcdef"),
        ]
    ],
    *[
        (f"injection-{cmd[0]}", cmd, {}, b"", "connection name")
        for cmd in (
            ["sync", "--connection", INJECTION],
            ["report", "--connection", INJECTION],
            ["doctor", "--connection", INJECTION],
            ["disconnect", INJECTION],
        )
    ],
    # the pasted key
    (
        "key-control",
        ["connect", "openai", "--name", "acme"],
        {},
        b"sk-admin-abc\x01def123\n",
        "control characters",
    ),
    (
        "key-nul",
        ["connect", "openai", "--name", "acme"],
        {},
        b"sk-admin-\x00abcdef123\n",
        "control characters",
    ),
    (
        "key-non-ascii",
        ["connect", "openai", "--name", "acme"],
        {},
        "sk-admin-ünïcode123\n".encode(),
        "non-ASCII",
    ),
    ("key-not-utf8", ["connect", "openai", "--name", "acme"], {}, b"sk-admin-\xff\xfe123456\n", "non-ASCII"),
    (
        "key-10kB",
        ["connect", "openai", "--name", "acme"],
        {},
        b"sk-admin-" + b"a" * 10240 + b"\n",
        "over 4096",
    ),
    ("key-300-chars", ["connect", "openai", "--name", "acme"], {}, b"sk-admin-" + b"a" * 300, "at most 200"),
    ("key-quoted", ["connect", "openai", "--name", "acme"], {}, b'"sk-admin-abcdef123456"\n', "in quotes"),
    ("key-space", ["connect", "openai", "--name", "acme"], {}, b"sk-admin-abc def123\n", "spaces"),
    ("key-empty-stdin", ["connect", "openai", "--name", "acme"], {}, b"", "no key given"),
    ("key-closed-stdin", ["connect", "openai", "--name", "acme"], {}, CLOSED, "no key given"),
    # days
    ("day-impossible", ["sync", "--start", "2026-02-30"], {}, b"", "February 2026 has 28 days"),
    ("day-month-13", ["sync", "--start", "2026-13-01"], {}, b"", "the month must be 01 to 12"),
    ("day-short", ["sync", "--start", "2026-1-1"], {}, b"", "not a date"),
    ("day-iso-week", ["sync", "--end", "2026-W01-1"], {}, b"", "not a date"),
    (
        "end-before-start",
        ["sync", "--start", str(LAST), "--end", str(FIRST), EXISTING],
        {},
        b"",
        "is before --start",
    ),
    (
        "end-future",
        ["sync", "--end", str(REAL_TODAY + timedelta(days=2)), EXISTING],
        {},
        b"",
        "in the future",
    ),
    ("start-future", ["sync", "--start", str(REAL_TODAY + timedelta(days=1)), EXISTING], {}, b"", "--start"),
    (
        "before-data",
        ["sync", "--start", "2019-01-01", "--end", "2019-01-02", EXISTING],
        {},
        b"",
        "before the first supported day",
    ),
    ("report-days-0", ["report", "--days", "0"], {}, b"", "whole number from 1"),
    ("report-days-huge", ["report", "--days", "100000"], {}, b"", "whole number from 1"),
    # STAX_* settings
    (
        "lookback-abc",
        ["connect", "openai", "--name", "acme"],
        {"STAX_LOOKBACK_DAYS": "abc"},
        KEY,
        "STAX_LOOKBACK_DAYS",
    ),
    ("lookback-negative", ["sync", EXISTING], {"STAX_LOOKBACK_DAYS": "-1"}, b"", "STAX_LOOKBACK_DAYS"),
    ("lookback-huge", ["sync", EXISTING], {"STAX_LOOKBACK_DAYS": "100000"}, b"", "STAX_LOOKBACK_DAYS"),
    (
        "http-nan",
        ["sync", EXISTING],
        {"STAX_HTTP_MAX_RETRY_SECONDS": "nan"},
        b"",
        "STAX_HTTP_MAX_RETRY_SECONDS",
    ),
    (
        "http-floor-huge",
        ["connect", "openai", "--name", "acme"],
        {"STAX_HTTP_BACKOFF_FLOOR_SECONDS": "1e9"},
        KEY,
        "STAX_HTTP_BACKOFF_FLOOR_SECONDS",
    ),
    (
        "http-run-negative",
        ["connect", "openai", "--name", "acme"],
        {"STAX_HTTP_RUN_RETRY_SECONDS": "-5"},
        KEY,
        "STAX_HTTP_RUN_RETRY_SECONDS",
    ),
    (
        "lock-timeout-inf",
        ["sync", EXISTING],
        {"STAX_WAREHOUSE_LOCK_TIMEOUT": "inf"},
        b"",
        "STAX_WAREHOUSE_LOCK_TIMEOUT",
    ),
    (
        "master-key",
        ["connect", "openai", "--name", "acme"],
        {"STAX_MASTER_KEY": "not-base64-secret"},
        KEY,
        "STAX_MASTER_KEY must be base64",
    ),
    (
        "new-master-key",
        ["disconnect", "acme", EXISTING],
        {"STAX_NEW_MASTER_KEY": "c2hvcnQ="},
        b"",
        "STAX_NEW_MASTER_KEY must be base64",
    ),
    (
        "base-url-http",
        ["connect", "openai", "--name", "acme"],
        {"STAX_OPENAI_BASE_URL": "http://example.com/v1"},
        KEY,
        "plain http:// to example.com",
    ),
    (
        "base-url-userinfo",
        ["connect", "openai", "--name", "acme"],
        {"STAX_OPENAI_BASE_URL": "https://api.openai.com@evil.example/v1"},
        KEY,
        "must be a URL",
    ),
    (
        "base-url-scheme",
        ["connect", "openai", "--name", "acme"],
        {"STAX_OPENAI_BASE_URL": "ftp://x/v1"},
        KEY,
        "must be a URL",
    ),
    (
        "simulated-to-real-api",
        ["sync", EXISTING],
        {"STAX_OPENAI_BASE_URL": "https://api.openai.com/v1"},
        b"",
        "made against the Stax simulator",
    ),
    ("home-is-a-file-read", ["connections"], {"STAX_HOME": "FILE"}, b"", "is a file"),
    (
        "home-is-a-file-write",
        ["connect", "openai", "--name", "acme"],
        {"STAX_HOME": "FILE"},
        KEY,
        "is a file",
    ),
    ("simulator-port", ["simulator", "--port", "70000"], {}, b"", "from 0 to 65535"),
    ("simulator-error-rate", ["simulator", "--error-rate", "2"], {}, b"", "from 0 to 1"),
]


@pytest.mark.parametrize(("args", "env", "stdin", "says"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
    stax_home, simulator, tmp_path, args, env, stdin, says
):
    if EXISTING in args:
        args = [a for a in args if a != EXISTING]
        ConnectionStore(load_settings()).add("acme", "openai", ADMIN_KEY)  # a simulated connection
    a_file = tmp_path / "not-a-folder"
    a_file.write_bytes(b"a user's file")
    env = {name: str(a_file) if value == "FILE" else value for name, value in env.items()}
    before = snapshot(stax_home) if stax_home.exists() else None

    result = run(args, stdin=stdin, env=env)

    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert stderr.startswith("stax: ") and says in stderr, stderr
    assert "Traceback" not in stderr and result.stdout == b""
    for secret in ("not-base64-secret", ADMIN_KEY, "abcdef123"):
        assert secret not in stderr  # neither keys nor master keys are echoed
    assert simulator.requests == []
    if before is None:
        assert not stax_home.exists(), sorted(stax_home.rglob("*"))
    else:
        assert snapshot(stax_home) == before
    assert a_file.read_bytes() == b"a user's file"


def test_every_help_entry_says_what_it_does_and_its_default():
    parser = build_parser()
    (commands,) = [a for a in parser._actions if a.dest == "command"]
    assert set(commands.choices) >= {"connect", "connections", "disconnect", "sync", "report", "doctor"}
    summaries = {action.dest: action.help for action in commands._choices_actions}
    for name, sub in commands.choices.items():
        assert summaries.get(name) and sub.description == summaries[name], name
        for action in sub._actions:
            if action.dest == "help":
                continue
            where = f"stax {name} {'/'.join(action.option_strings) or action.dest}"
            assert action.help and len(action.help) > 10, where
            if action.required or not action.option_strings:
                assert "(required)" in action.help, where
            else:
                assert "default" in action.help, where
    shown = subprocess.run([STAX, "report", "--help"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "(default: 30)" in shown.stdout
