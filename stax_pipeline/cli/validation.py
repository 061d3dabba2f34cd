"""Checks of what a person types: command-line values and the pasted admin key.

Argument checks are argparse types, so a bad value is refused while the command line is parsed:
one line on stderr, exit 2, before anything is read, created or requested. Nothing here echoes
more than a few characters of what was typed, and never a key.
"""

from __future__ import annotations

import argparse
import calendar
import getpass
import re
import sys
from collections.abc import Callable
from datetime import date
from typing import TextIO

from stax_pipeline.credentials import validate_connection_name
from stax_pipeline.credentials.key_format import MAX_ADMIN_KEY_CHARS
from stax_pipeline.errors import UsageError
from stax_pipeline.settings import shown

_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# More than this from stdin is not a key but a file: refused without reading the rest.
MAX_PASTE_BYTES = 4096
MAX_REPORT_DAYS = 3660  # ten years: everything since the first day any provider reports


def day_argument(text: str) -> date:
    """A real calendar day written YYYY-MM-DD (2026-02-30, 2026-1-1 and 2026-W01-1 are refused)."""
    if not _DAY.fullmatch(text):
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {shown(text)}")
    try:
        return date.fromisoformat(text)
    except ValueError:
        year, month, _ = (int(part) for part in text.split("-"))
        if 1 <= month <= 12 and year >= 1:
            last = calendar.monthrange(year, month)[1]
            why = f"{calendar.month_name[month]} {year} has {last} days"
        else:
            why = "the month must be 01 to 12"
        raise argparse.ArgumentTypeError(f"not a date: {text} ({why})") from None


def connection_name_argument(text: str) -> str:
    """A connection name as :func:`validate_connection_name` allows it (a Dagster partition key
    and a value in SQL: lowercase letters, digits, ``-`` and ``_`` only)."""
    try:
        return validate_connection_name(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def whole_number(low: int, high: int) -> Callable[[str], int]:
    """An argparse type for a whole number from ``low`` to ``high``."""

    def parse(text: str) -> int:
        stripped = text.strip()
        if not (stripped.isascii() and stripped.lstrip("-").isdigit()) or not low <= int(stripped) <= high:
            raise argparse.ArgumentTypeError(
                f"must be a whole number from {low} to {high}, got {shown(text)}"
            )
        return int(stripped)

    return parse


def number(low: float, high: float) -> Callable[[str], float]:
    """An argparse type for a finite number from ``low`` to ``high``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not low <= value <= high:  # also refuses nan
            raise argparse.ArgumentTypeError(f"must be a number from {low:g} to {high:g}, got {shown(text)}")
        return value

    return parse


def read_admin_key(stdin: TextIO | None = None, prompt: str = "Admin key (input hidden): ") -> str:
    """The key from a hidden prompt on a terminal, else the first line of stdin, stripped.

    A closed or empty stdin gives ``""`` (the caller says "no key given"). At most
    :data:`MAX_PASTE_BYTES` are read: a longer line is refused without reading the rest, and
    bytes that are not UTF-8 become replacement characters (refused later as non-ASCII).
    """
    stream = sys.stdin if stdin is None else stdin
    if stream is None or stream.closed:
        return ""
    try:
        if stream.isatty():
            try:
                return getpass.getpass(prompt).strip()
            except EOFError:  # Ctrl-D at the prompt
                return ""
        binary = getattr(stream, "buffer", None)
        if binary is not None:
            raw = binary.readline(MAX_PASTE_BYTES + 1)
        else:  # a text stream with no bytes below it (embedding, tests)
            raw = stream.readline(MAX_PASTE_BYTES + 1).encode()
    except (OSError, ValueError):  # a descriptor that is not readable, or closed meanwhile
        return ""
    if len(raw.rstrip(b"\r\n")) > MAX_PASTE_BYTES:
        raise UsageError(
            f"the key is over {MAX_PASTE_BYTES} characters long, and an admin key has at most "
            f"{MAX_ADMIN_KEY_CHARS}: paste only the key, once. Nothing was stored."
        )
    return raw.decode("utf-8", errors="replace").strip()
