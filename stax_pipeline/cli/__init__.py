"""``stax``: the command line of the Stax pipeline (see INTERFACE.md for the contract)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import NoReturn

from stax_pipeline.errors import StaxError, UsageError

# `stax report`'s choices, named here so --help needs no warehouse imports
REPORT_DIMENSIONS = ("model", "project", "api-key", "line-item")
REPORT_FORMATS = ("table", "csv", "json")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2, like every other usage error
        self.exit(2, f"stax: {' '.join(message.split())}\n")


def _command(commands, name: str, summary: str) -> argparse.ArgumentParser:
    """A subcommand whose one-line summary shows in `stax --help` and atop `stax NAME --help`."""
    return commands.add_parser(name, help=summary, description=summary)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line. Every option's help says what it does and its default."""
    from stax_pipeline.cli.validation import (
        MAX_REPORT_DAYS,
        connection_name_argument,
        day_argument,
        number,
        whole_number,
    )
    from stax_pipeline.providers import provider_names

    parser = _Parser(prog="stax", description="Stax: your whole AI bill in one place.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")
    name = connection_name_argument

    p = _command(
        commands,
        "connect",
        "connect an organization with its admin key (read from a "
        "hidden prompt, or stdin when piped), then backfill its last 30 days",
    )
    p.add_argument("provider", choices=provider_names(), help="the provider of the organization (required)")
    p.add_argument(
        "--name",
        required=True,
        type=name,
        help="a short name for the connection, 1-40 lowercase letters, digits, - or _ (required)",
    )
    p.add_argument(
        "--no-backfill",
        action="store_true",
        help="do not run the 30-day backfill now; print the command that does (default: run it)",
    )

    _command(commands, "connections", "list connections: key hint, created, last sync, backfill state")

    p = _command(commands, "disconnect", "remove a connection's stored key (and its rows with --purge)")
    p.add_argument("name", type=name, help="the connection to remove (required)")
    p.add_argument(
        "--purge",
        action="store_true",
        help="also delete its rows from the warehouse and the published marts (default: keep them)",
    )

    p = _command(commands, "sync", "sync days (inclusive, UTC) for connections, through the Dagster job")
    p.add_argument("--connection", type=name, help="only this connection (default: every connection)")
    p.add_argument(
        "--start",
        type=day_argument,
        help="first day, YYYY-MM-DD (default: the first day each connection is missing)",
    )
    p.add_argument("--end", type=day_argument, help="last day, YYYY-MM-DD, inclusive (default: yesterday)")

    p = _command(
        commands,
        "report",
        "spend for the last N days by model, project, API key or line item, from the published marts",
    )
    p.add_argument(
        "--connection", type=name, metavar="NAME", help="only this connection (default: all connections)"
    )
    p.add_argument(
        "--days",
        type=whole_number(1, MAX_REPORT_DAYS),
        default=30,
        metavar="N",
        help="how many closed days, counting back from yesterday, UTC (default: %(default)s)",
    )
    p.add_argument(
        "--by",
        choices=REPORT_DIMENSIONS,
        default="model",
        help="one row per model (non-model spend per SKU), project, API key (by name) or "
        "billed line item (default: model)",
    )
    p.add_argument(
        "--format",
        choices=REPORT_FORMATS,
        default="table",
        dest="output_format",
        help="a table to read, or CSV/JSON with every figure at full precision for scripts (default: table)",
    )

    p = _command(
        commands, "doctor", "diagnostics for 'my sync looks low'; exit 1 when something needs attention"
    )
    p.add_argument("--connection", type=name, help="only this connection (default: every connection)")
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object with stable keys, for scripts (default: text)",
    )

    p = _command(commands, "export", "write a dataset for other tools")
    datasets = p.add_subparsers(
        dest="dataset",
        metavar="DATASET (focus)",
        required=True,
        parser_class=_Parser,
        help="the dataset to write: focus, the FOCUS 1.3 cost and usage rows (required)",
    )
    p = datasets.add_parser(
        "focus",
        help="FOCUS 1.3 cost and usage (FinOps Foundation) for some days",
        description="FOCUS 1.3 cost and usage (FinOps Foundation) for some days",
    )
    p.add_argument("--connection", type=name, help="only this connection (default: all)")
    p.add_argument("--start", type=day_argument, required=True, help="first day, YYYY-MM-DD (required)")
    p.add_argument(
        "--end", type=day_argument, required=True, help="last day, YYYY-MM-DD, inclusive (required)"
    )
    p.add_argument("--out", type=Path, required=True, help="directory to write the file into (required)")
    p.add_argument(
        "--format", choices=("parquet", "csv"), default="parquet", help="file format (default: %(default)s)"
    )

    _command(
        commands,
        "rotate-master-key",
        "re-encrypt every stored key under a new master key "
        "(from STAX_NEW_MASTER_KEY when STAX_MASTER_KEY is set)",
    )

    p = _command(
        commands, "simulator", "run the local OpenAI and Anthropic Admin API simulator in the foreground"
    )
    p.add_argument(
        "--port",
        type=whole_number(0, 65535),
        default=8765,
        help="port to listen on, 0 for any free one (default: %(default)s)",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on; syncs reach it over plain http only on this machine "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--profile",
        choices=("small", "large"),
        default="small",
        help="organization size: large is ~40 projects, 30 models, 200 API keys (default: %(default)s)",
    )
    faults = p.add_argument_group("faults (to watch a sync survive them; default: none)")
    count = whole_number(0, 1_000_000)
    faults.add_argument(
        "--page-size",
        type=whole_number(1, 1_000_000),
        help="at most this many buckets a page (default: the API's limits)",
    )
    faults.add_argument(
        "--error-rate",
        type=number(0, 1),
        default=0.0,
        help="fraction of requests answered 5xx, 0 to 1 (default: %(default)s)",
    )
    faults.add_argument(
        "--rate-limit-burst",
        type=count,
        default=0,
        metavar="N",
        help="answer the next N requests 429 (default: %(default)s)",
    )
    faults.add_argument(
        "--latency-ms",
        type=whole_number(0, 600_000),
        default=0,
        metavar="MS",
        help="delay every answer this long (default: %(default)s)",
    )
    faults.add_argument(
        "--revision",
        type=count,
        default=0,
        metavar="N",
        help="N > 0 restates the last 3 closed days (default: %(default)s, no restatement)",
    )
    faults.add_argument(
        "--retry-after",
        type=whole_number(0, 86_400),
        default=1,
        metavar="S",
        help="seconds a 429 asks to wait (default: %(default)s)",
    )
    faults.add_argument(
        "--retry-after-form",
        choices=["seconds", "http-date", "nan"],
        default="seconds",
        help="how a 429's Retry-After is written; 'nan' is malformed (default: %(default)s)",
    )
    faults.add_argument(
        "--rate-limit-per-endpoint",
        type=count,
        default=0,
        metavar="N",
        help="answer the first N requests of each endpoint 429 (default: %(default)s)",
    )
    faults.add_argument(
        "--rate-limit-every",
        type=count,
        default=0,
        metavar="N",
        help="answer every N-th request 429 (default: %(default)s, never)",
    )
    faults.add_argument(
        "--outage-at",
        type=count,
        default=0,
        metavar="K",
        help="from the K-th request on, fail every request for --outage-seconds "
        "(default: %(default)s, no outage)",
    )
    faults.add_argument(
        "--outage-seconds",
        type=number(0, 86_400),
        default=30.0,
        metavar="T",
        help="how long the outage lasts (default: %(default)s)",
    )
    faults.add_argument(
        "--outage-mode",
        choices=["503", "drop"],
        default="503",
        help="during the outage answer 503, or close each connection unanswered (default: %(default)s)",
    )
    faults.add_argument(
        "--drop-mid-response-every",
        type=count,
        default=0,
        metavar="N",
        help="stop every N-th answer half-way through its body and close the connection "
        "(default: %(default)s, never)",
    )
    faults.add_argument(
        "--redirect",
        type=count,
        default=0,
        metavar="N",
        help="answer the next N requests 301 (default: %(default)s)",
    )
    faults.add_argument(
        "--endless-pages",
        action="store_true",
        help="pagination never ends, with fresh cursors (default: off)",
    )

    _command(commands, "demo", "simulator + demo connection + 30-day backfill + report, all on this machine")
    return parser


def _configure_logging() -> None:
    """Progress lines of our own code on stderr; library chatter stays quiet."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("  %(message)s"))
    ours = logging.getLogger("stax_pipeline")
    ours.setLevel(logging.INFO)
    ours.addHandler(handler)
    ours.propagate = False
    for noisy in ("httpx", "dlt", "dagster"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")


def main(argv: list[str] | None = None) -> int:
    """Run one command; its errors are one line on stderr (exit 2 for bad input).

    A reader that goes away (``stax report | head -1``) has what it wanted: the command ends
    quietly with 0 (no traceback, no SIGPIPE status for `set -o pipefail` scripts). Output is
    flushed here so that happens inside this function, not as an "Exception ignored" message at
    interpreter exit.
    """
    try:
        try:
            code = _run(argv)
        except SystemExit:  # argparse's --help and usage errors
            sys.stdout.flush()
            raise
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # Point stdout at /dev/null so the interpreter's final flush has nowhere to fail.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0


def _run(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops us like Ctrl-C
    from stax_pipeline.cli import commands

    handler = getattr(commands, "cmd_" + args.command.replace("-", "_"))
    try:
        return handler(args) or 0  # a reader that went away: main() ends quietly
    except StaxError as exc:
        from stax_pipeline.lib.redaction import redact_secrets

        print(f"stax: {redact_secrets(' '.join(str(exc).split()))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("stax: interrupted", file=sys.stderr)
        from stax_pipeline.lib.processes import exit_now

        exit_now(130)  # not `return`: Python would wait for threads the interrupt left blocked


__all__ = ["UsageError", "main"]
