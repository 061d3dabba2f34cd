"""``stax``: the command line of the Stax pipeline (see INTERFACE.md for the contract)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import warnings
from datetime import date
from pathlib import Path

from stax_pipeline.errors import StaxError, UsageError

# `stax report`'s choices, named here so --help needs no warehouse imports
REPORT_DIMENSIONS = ("model", "project", "api-key", "line-item")
REPORT_FORMATS = ("table", "csv", "json")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other usage error
        self.exit(2, f"stax: {message}\n")


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="stax", description="Stax: your whole AI bill in one place.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = commands.add_parser("connect", help="connect an organization with its admin key")
    p.add_argument("provider", choices=["openai"])
    p.add_argument("--name", required=True, help="a short name: lowercase letters, digits, - _")
    p.add_argument("--no-backfill", action="store_true", help="do not run the 30-day backfill now")

    commands.add_parser("connections", help="list connections")

    p = commands.add_parser("disconnect", help="remove a connection's stored key")
    p.add_argument("name")
    p.add_argument("--purge", action="store_true", help="also delete its rows from the warehouse")

    p = commands.add_parser("sync", help="sync days (inclusive, UTC) for connections")
    p.add_argument("--connection", help="only this connection (default: all)")
    p.add_argument("--start", type=_day, help="first day, YYYY-MM-DD")
    p.add_argument("--end", type=_day, help="last day, YYYY-MM-DD (inclusive)")

    p = commands.add_parser("report", help="spend for the last N days by model, project, API key or line item",
                            description="Spend for the last N closed UTC days (yesterday back), read from the marts.")
    p.add_argument("--connection", metavar="NAME", help="only this connection (default: all connections)")
    p.add_argument("--days", type=_positive, default=30, metavar="N",
                   help="how many closed days, counting back from yesterday (default: 30)")
    p.add_argument("--by", choices=REPORT_DIMENSIONS, default="model",
                   help="one row per model (non-model spend per SKU), project, API key (by name) or "
                        "billed line item (default: model)")
    p.add_argument("--format", choices=REPORT_FORMATS, default="table", dest="output_format",
                   help="a table to read, or CSV/JSON with every figure at full precision for scripts "
                        "(default: table)")

    p = commands.add_parser("doctor", help="diagnostics for 'my sync looks low'")
    p.add_argument("--connection")

    p = commands.add_parser("export", help="write a dataset for other tools")
    datasets = p.add_subparsers(
        dest="dataset", metavar="DATASET (focus)", required=True, parser_class=_Parser
    )
    p = datasets.add_parser("focus", help="FOCUS 1.3 cost and usage (FinOps Foundation) for some days")
    p.add_argument("--connection", help="only this connection (default: all)")
    p.add_argument("--start", type=_day, required=True, help="first day, YYYY-MM-DD")
    p.add_argument("--end", type=_day, required=True, help="last day, YYYY-MM-DD (inclusive)")
    p.add_argument("--out", type=Path, required=True, help="directory to write the file into")
    p.add_argument("--format", choices=("parquet", "csv"), default="parquet")

    commands.add_parser("rotate-master-key", help="re-encrypt stored keys under a new master key")

    p = commands.add_parser("simulator", help="run the local OpenAI Admin API simulator")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--profile", choices=("small", "large"), default="small",
                   help="organization size: large is ~40 projects, 30 models, 200 API keys")
    faults = p.add_argument_group("faults (to watch a sync survive them)")
    faults.add_argument("--page-size", type=_positive, help="at most this many buckets a page")
    faults.add_argument("--error-rate", type=float, default=0.0, help="fraction of requests answered 5xx")
    faults.add_argument("--rate-limit-burst", type=int, default=0, help="answer the next N requests 429")
    faults.add_argument("--latency-ms", type=int, default=0, help="delay every answer")
    faults.add_argument("--revision", type=int, default=0, help="restate the last 3 closed days (N > 0)")
    faults.add_argument("--retry-after", type=int, default=1, metavar="S", help="seconds a 429 asks to wait")
    faults.add_argument("--retry-after-form", choices=["seconds", "http-date", "nan"], default="seconds",
                        help="how a 429's Retry-After is written ('nan': malformed)")
    faults.add_argument("--rate-limit-per-endpoint", type=int, default=0, metavar="N",
                        help="answer the first N requests of each endpoint 429")
    faults.add_argument("--rate-limit-every", type=int, default=0, metavar="N", help="answer every N-th request 429")
    faults.add_argument("--outage-at", type=int, default=0, metavar="K",
                        help="from the K-th request on, fail every request for --outage-seconds")
    faults.add_argument("--outage-seconds", type=float, default=30.0, metavar="T", help="how long the outage lasts")
    faults.add_argument("--outage-mode", choices=["503", "drop"], default="503",
                        help="during the outage answer 503, or close each connection unanswered")
    faults.add_argument("--drop-mid-response-every", type=int, default=0, metavar="N",
                        help="stop every N-th answer half-way through its body and close the connection")
    faults.add_argument("--redirect", type=int, default=0, metavar="N", help="answer the next N requests 301")
    faults.add_argument("--endless-pages", action="store_true", help="pagination never ends (fresh cursors)")

    commands.add_parser("demo", help="simulator + demo connection + 30-day backfill + report")
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
    args = build_parser().parse_args(argv)
    _configure_logging()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops us like Ctrl-C
    from stax_pipeline.cli import commands

    handler = getattr(commands, "cmd_" + args.command.replace("-", "_"))
    try:
        code = handler(args) or 0
        sys.stdout.flush()  # inside the try: a reader that went away is a BrokenPipeError here
        return code
    except BrokenPipeError:
        # `stax report | head`: the reader has what it wanted. Point stdout at /dev/null so the
        # interpreter's final flush does not complain, and end quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except StaxError as exc:
        print(f"stax: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("stax: interrupted", file=sys.stderr)
        from stax_pipeline.lib.processes import exit_now

        exit_now(130)  # not `return`: Python would wait for threads the interrupt left blocked


__all__ = ["UsageError", "main"]
