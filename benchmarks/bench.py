"""`make bench`: the product's backfill against what a user would write instead, on a big customer.

One run starts the OpenAI Admin API simulator (large profile, and a small one for the nightly
sync) in this process on free loopback ports, warms its cache, then runs each scenario with a
fresh ``STAX_HOME`` as a separate process whose whole process tree is sampled for RSS every
50 ms. It prints a table and writes JSON (see benchmarks/README.md).

    .venv/bin/python benchmarks/bench.py [--only product,baseline] [--days 30]
        [--product-root ../older-checkout] [--out benchmarks/results/latest.json]

The simulator and the baseline always come from this checkout; ``--product-root`` only chooses
whose ``.venv/bin/stax`` is measured, so two commits can be compared on the same ground.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent

LARGE_KEY = "sk-admin-bench-large-org-5e0c41"  # any sk-admin- key is a simulated organization
SMALL_KEY = "sk-admin-bench-small-org-93ab7d"
CONNECTION = "big"
SMALL_CONNECTION = "small"
PRODUCT_BACKFILL_DAYS = 30  # what `stax connect` backfills
LATENCY_MS = 300
NIGHTLY_HISTORIES = (30, 365)
LONG_SYNC_DAYS = 3 * 365  # "a 3-year backfill of the small organization"
REPORT_RUNS = 3
SAMPLE_SECONDS = 0.05
PHASES = ("fetch", "extract", "normalize", "load", "dbt", "publish")

# How Stax requests the Admin API (never by user_id): read from the source's own settings, so the
# baseline and fetch-only always send what the product sends.
sys.path.insert(0, str(REPO_ROOT))
_source = importlib.import_module("stax_pipeline.sources.openai_admin.settings")

COSTS_GROUP_BY = _source.COSTS_GROUP_BY
USAGE_GROUP_BY = {e.name: e.group_by for e in _source.USAGE_ENDPOINTS}
COSTS_LIMIT, USAGE_LIMIT = _source.COSTS_PAGE_LIMIT, _source.USAGE_MAX_LIMIT_1D

SCENARIOS = ("fetch-only", "baseline", "product", "report", "latency", "memory", "nightly", "long")


# -- requests as Stax sends them ----------------------------------------------------------------


def midnight(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def endpoint_requests(start: date, end: date) -> list[tuple[str, list[tuple[str, str]]]]:
    """(path, params) of every endpoint for UTC days [start, end), as the product asks for them."""
    window = [("start_time", str(midnight(start))), ("end_time", str(midnight(end))), ("bucket_width", "1d")]
    requests = [
        (
            "/organization/costs",
            [*window, ("limit", str(COSTS_LIMIT)), *(("group_by", g) for g in COSTS_GROUP_BY)],
        )
    ]
    requests += [
        (
            f"/organization/usage/{name}",
            [*window, ("limit", str(USAGE_LIMIT)), *(("group_by", g) for g in dims)],
        )
        for name, dims in USAGE_GROUP_BY.items()
    ]
    return requests


def iter_pages(client: Any, path: str, params: list[tuple[str, str]]) -> Iterator[dict[str, Any]]:
    """Every page of one request with an ``httpx.Client``, following ``next_page`` and resending
    every original parameter with it."""
    page: str | None = None
    while True:
        response = client.get(path, params=params + ([("page", page)] if page else []))
        response.raise_for_status()
        body = response.json()
        yield body
        page = body.get("next_page")
        if not page or not body.get("has_more"):
            return


# -- the naive baseline and the I/O floor (each runs as its own process) ------------------------


def fetch_only(base_url: str, key: str, start: date, end: date) -> dict[str, Any]:
    """Fetch and parse every page, keep nothing: the floor any ingest pays for I/O and JSON."""
    import httpx

    began = time.perf_counter()
    rows: Counter[str] = Counter()
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=600) as client:
        for path, params in endpoint_requests(start, end):
            for body in iter_pages(client, path, params):
                rows[path] += sum(len(b["results"]) for b in body["data"])
    return {"rows": dict(rows), "seconds": {"fetch": time.perf_counter() - began}}


def _flatten(bucket: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    flat = {"start_time": bucket["start_time"], "end_time": bucket["end_time"]}
    for name, value in row.items():
        if isinstance(value, dict):  # costs' amount: {"value", "currency"}
            flat.update({f"{name}_{k}": v for k, v in value.items()})
        else:
            flat[name] = value
    return flat


def naive_baseline(base_url: str, key: str, start: date, end: date, database: Path) -> dict[str, Any]:
    """What a user writes instead of adopting Stax: page with httpx, one bulk insert per endpoint
    into a fresh DuckDB file, one SQL aggregate of cost per (day, model)."""
    import duckdb
    import httpx

    seconds: dict[str, float] = {"fetch": 0.0, "insert": 0.0}
    rows: dict[str, int] = {}
    con = duckdb.connect(str(database))
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=600) as client:
        for path, params in endpoint_requests(start, end):
            began = time.perf_counter()
            columns: dict[str, list[Any]] = {}
            for body in iter_pages(client, path, params):
                for bucket in body["data"]:
                    for row in bucket["results"]:
                        for name, value in _flatten(bucket, row).items():
                            columns.setdefault(name, []).append(value)
            seconds["fetch"] += time.perf_counter() - began
            began = time.perf_counter()
            table = path.rsplit("/", 1)[-1]
            if columns:  # one statement: every column as a list parameter, unnested side by side
                select = ", ".join(f'unnest(${i + 1}) as "{c}"' for i, c in enumerate(columns))
                con.execute(f'create table "{table}" as select {select}', list(columns.values()))
            rows[path] = len(next(iter(columns.values()), []))
            seconds["insert"] += time.perf_counter() - began
            del columns
    began = time.perf_counter()
    # model from the line item "[<product> | ]<model>, <charge>"; no comma: not a model
    spend = con.execute(r"""
        select to_timestamp(start_time)::date as day,
               nullif(regexp_extract(line_item, '^(?:[^|]*\| )?([^,]+), ', 1), '') as model,
               sum(amount_value) as cost_usd
        from costs group by all order by all
    """).fetchall()
    seconds["aggregate"] = time.perf_counter() - began
    con.close()
    return {
        "rows": rows,
        "seconds": seconds,
        "day_model_rows": len(spend),
        "cost_usd": sum(r[2] for r in spend),
    }


def _child_main(argv: list[str]) -> int:
    """``bench.py _child fetch-only|baseline SPEC``: run one function, print its result as JSON."""
    kind, spec = argv[0], json.loads(argv[1])
    start, end = date.fromisoformat(spec["start"]), date.fromisoformat(spec["end"])
    if kind == "fetch-only":
        result = fetch_only(spec["base_url"], spec["key"], start, end)
    else:
        result = naive_baseline(spec["base_url"], spec["key"], start, end, Path(spec["database"]))
    print(json.dumps(result))
    return 0


# -- measuring a process tree -------------------------------------------------------------------

_PAGE = os.sysconf("SC_PAGE_SIZE")


def tree_rss(root: int) -> tuple[int, int]:
    """(RSS of ``root`` plus all its descendants, RSS of ``root`` alone), in bytes.

    Descendants are found through the parent field of every /proc/<pid>/stat (psutil is not a
    dependency); RSS counts pages shared between processes once per process.
    """
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            parent = int(stat[stat.rindex(b")") + 2 :].split()[1])  # the name may hold spaces
            children.setdefault(parent, []).append(int(entry))
    tree, frontier = [root], [root]
    while frontier:
        kids = children.get(frontier.pop(), [])
        tree += kids
        frontier += kids
    total = main = 0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                rss = int(f.read().split()[1]) * _PAGE
        except OSError:  # it just exited
            continue
        total += rss
        main = rss if pid == root else main
    return total, main


@dataclass
class Measured:
    """One process run: its exit, wall time and the peak RSS of its tree."""

    argv: list[str]
    exit_code: int
    wall_seconds: float
    peak_rss_mb: float
    peak_rss_main_mb: float
    stdout: str = field(repr=False)
    stderr: str = field(repr=False)

    def tail(self, lines: int = 15) -> str:
        return "\n".join((self.stderr or self.stdout).rstrip().splitlines()[-lines:])


def run_measured(
    argv: list[str], env: dict[str, str], *, stdin: str = "", cwd: Path | None = None, timeout: float = 3600
) -> Measured:
    """Run ``argv`` to its end, sampling the RSS of its process tree every 50 ms."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        began = time.perf_counter()
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=out, stderr=err, env=env, cwd=cwd, start_new_session=True
        )  # its own group, so a timeout kills the tree
        assert proc.stdin is not None
        try:
            proc.stdin.write(stdin.encode())
            proc.stdin.close()
        except BrokenPipeError:
            pass  # it exited without reading its input: its exit code and stderr tell why
        peak = peak_main = 0
        timed_out = False
        while True:
            total, main = tree_rss(proc.pid)
            peak, peak_main = max(peak, total), max(peak_main, main)
            try:
                proc.wait(timeout=SAMPLE_SECONDS)
                break
            except subprocess.TimeoutExpired:
                if time.perf_counter() - began > timeout:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    timed_out = True
                    break
        wall = time.perf_counter() - began
        out.seek(0)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
        if timed_out:
            stderr += f"\n(bench: killed with its process group after the {timeout:g} s timeout)\n"
        return Measured(
            argv,
            proc.returncode,
            wall,
            peak / 2**20,
            peak_main / 2**20,
            out.read().decode(errors="replace"),
            stderr,
        )


# -- the product --------------------------------------------------------------------------------


class ProductFailed(Exception):
    """A product process exited non-zero: the bench reports it and exits non-zero."""

    def __init__(self, what: str, run: Measured) -> None:
        super().__init__(
            f"{what}: `{' '.join(run.argv[1:])}` exited {run.exit_code} after "
            f"{run.wall_seconds:.1f} s; last lines:\n{run.tail()}"
        )
        self.run = run


@dataclass
class Product:
    """The checkout whose ``.venv/bin/stax`` is measured, and where scenario homes go."""

    root: Path
    work: Path
    timeout: float

    @property
    def stax(self) -> str:
        return str(self.root / ".venv" / "bin" / "stax")

    def home(self, name: str) -> Path:
        home = self.work / name
        shutil.rmtree(home, ignore_errors=True)
        return home

    def env(self, home: Path, base_url: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STAX_", "DAGSTER_"))}
        return {**env, "STAX_HOME": str(home), "STAX_OPENAI_BASE_URL": base_url}

    def run(self, what: str, home: Path, base_url: str, *args: str, key: str | None = None) -> Measured:
        run = run_measured(
            [self.stax, *args],
            self.env(home, base_url),
            stdin=(key or "") + "\n",
            cwd=self.root,
            timeout=self.timeout,
        )
        if run.exit_code != 0:
            raise ProductFailed(what, run)
        return run


def timings_path(home: Path) -> Path:
    return home / "logs" / "timings.jsonl"


def timings_offset(home: Path) -> int:
    """Where the next run's lines will start in ``timings.jsonl`` (earlier runs stay out of its sum)."""
    path = timings_path(home)
    return path.stat().st_size if path.exists() else 0


def read_phases(home: Path, wall: float, offset: int = 0) -> dict[str, float] | None:
    """Seconds per phase from ``$STAX_HOME/logs/timings.jsonl`` (from byte ``offset``: the measured
    run's lines) plus orchestration (the rest of the wall time); None when the product does not
    write that file (older versions)."""
    path = timings_path(home)
    if not path.exists():
        return None
    phases = dict.fromkeys(PHASES, 0.0)
    rows: dict[str, int] = {}
    with path.open("rb") as f:
        f.seek(offset)
        lines = f.read().decode().splitlines()
    for line in lines:
        if line.strip():
            entry = json.loads(line)
            phases[entry["phase"]] = phases.get(entry["phase"], 0.0) + float(entry["seconds"])
            if entry.get("rows") is not None:
                rows[entry["phase"]] = rows.get(entry["phase"], 0) + int(entry["rows"])
    phases["orchestration"] = wall - sum(phases.values())
    return {**phases, **{f"rows_{p}": n for p, n in rows.items()}}


def requests_by_endpoint(sim: Any) -> dict[str, int]:
    return dict(Counter(path.removeprefix("/v1/organization/") for path, _ in sim.requests))


def measured(run: Measured, **extra: Any) -> dict[str, Any]:
    return {
        "wall_seconds": round(run.wall_seconds, 2),
        "peak_rss_mb": round(run.peak_rss_mb),
        "peak_rss_main_mb": round(run.peak_rss_main_mb),
        **extra,
    }


# -- the run ------------------------------------------------------------------------------------


@dataclass
class Bench:
    product: Product
    large: Any  # Simulator
    small: Any  # Simulator
    today: date
    days: int
    rows_served: int  # rows of the backfill window as Stax groups them, all endpoints
    product_home: Path | None = None

    @property
    def window(self) -> tuple[date, date]:
        return self.today - timedelta(days=self.days), self.today

    def _child(self, kind: str) -> dict[str, Any]:
        start, end = self.window
        spec = {
            "base_url": self.large.base_url,
            "key": LARGE_KEY,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "database": str(self.product.home(kind) / "naive.duckdb"),
        }
        Path(spec["database"]).parent.mkdir(parents=True)
        self.large.reset_requests()
        run = run_measured(
            [sys.executable, __file__, "_child", kind, json.dumps(spec)],
            dict(os.environ),
            timeout=self.product.timeout,
        )
        if run.exit_code != 0:
            raise RuntimeError(f"the {kind} script failed (exit {run.exit_code}):\n{run.tail()}")
        result = json.loads(run.stdout)
        return measured(
            run,
            requests=requests_by_endpoint(self.large),
            rows=sum(result["rows"].values()),
            seconds=result["seconds"],
            **{k: v for k, v in result.items() if k not in ("rows", "seconds")},
        )

    def fetch_only(self) -> dict[str, Any]:
        return self._child("fetch-only")

    def baseline(self) -> dict[str, Any]:
        return self._child("baseline")

    def _backfill(
        self, home: Path, sim: Any, days: int, key: str, connection: str, *, connect_backfills: bool = True
    ) -> dict[str, Any]:
        """`stax connect` with its backfill when ``days`` is what it backfills (unless told not
        to), else connect with --no-backfill and `stax sync` the ``days`` days before today;
        measures the process that syncs."""
        sim.reset_requests()
        offset = 0
        if days == PRODUCT_BACKFILL_DAYS and connect_backfills:
            run = self.product.run(
                "stax connect", home, sim.base_url, "connect", "openai", "--name", connection, key=key
            )
        else:
            self.product.run(
                "stax connect",
                home,
                sim.base_url,
                "connect",
                "openai",
                "--name",
                connection,
                "--no-backfill",
                key=key,
            )
            sim.reset_requests()
            offset = timings_offset(home)
            run = self.product.run(
                "stax sync",
                home,
                sim.base_url,
                "sync",
                "--connection",
                connection,
                "--start",
                (self.today - timedelta(days=days)).isoformat(),
                "--end",
                (self.today - timedelta(days=1)).isoformat(),
            )
        return measured(
            run, requests=requests_by_endpoint(sim), phases=read_phases(home, run.wall_seconds, offset)
        )

    def product_backfill(self) -> dict[str, Any]:
        home = self.product.home("product")
        result = self._backfill(home, self.large, self.days, LARGE_KEY, CONNECTION)
        self.product_home = home
        return {**result, "rows_served": self.rows_served}

    def report(self) -> dict[str, Any]:
        setup = None
        if self.product_home is None:  # `stax report` needs a large backfill to read
            setup = self.product_backfill()["wall_seconds"]
        assert self.product_home is not None
        runs = [
            self.product.run("stax report", self.product_home, self.large.base_url, "report")
            for _ in range(REPORT_RUNS)
        ]
        walls = sorted(r.wall_seconds for r in runs)
        return {
            "wall_seconds": round(walls[len(walls) // 2], 2),
            "runs": [round(w, 2) for w in walls],
            "peak_rss_mb": round(max(r.peak_rss_mb for r in runs)),
            "setup_backfill_seconds": setup,
        }

    def latency(self) -> dict[str, Any]:
        self.large.faults.latency_ms = LATENCY_MS
        try:
            result = self._backfill(
                self.product.home("latency"), self.large, self.days, LARGE_KEY, CONNECTION
            )
        finally:
            self.large.faults.latency_ms = 0
        return {**result, "rows_served": self.rows_served, "latency_ms": LATENCY_MS}

    def memory(self) -> dict[str, Any]:
        self.large.faults.page_size = 1
        try:
            runs = {
                str(days): self._backfill(
                    self.product.home(f"memory-{days}"), self.large, days, LARGE_KEY, CONNECTION
                )
                for days in (self.days, 3 * self.days)
            }
        finally:
            self.large.faults.page_size = None
        short, long = runs[str(self.days)], runs[str(3 * self.days)]
        return {
            "page_size": 1,
            "by_days": runs,
            "peak_ratio": round(long["peak_rss_mb"] / short["peak_rss_mb"], 2),
        }

    def nightly(self) -> dict[str, Any]:
        by_history = {}
        for history in NIGHTLY_HISTORIES:
            home = self.product.home(f"nightly-{history}")
            load = self._backfill(
                home, self.small, history, SMALL_KEY, SMALL_CONNECTION, connect_backfills=False
            )
            self.small.reset_requests()
            offset = timings_offset(home)
            run = self.product.run("stax sync (nightly)", home, self.small.base_url, "sync")
            by_history[str(history)] = measured(
                run,
                requests=requests_by_endpoint(self.small),
                phases=read_phases(home, run.wall_seconds, offset),
                history_load_seconds=load["wall_seconds"],
            )
        first, last = (by_history[str(h)] for h in NIGHTLY_HISTORIES)
        return {
            "by_history_days": by_history,
            "wall_ratio": round(last["wall_seconds"] / first["wall_seconds"], 2),
        }

    def long_sync(self) -> dict[str, Any]:
        """A 3-year `stax sync` of the small organization: its wall time, and the Dagster storage
        it leaves against the warehouse it fills (both as bytes on disk)."""
        home = self.product.home("long")
        result = self._backfill(home, self.small, LONG_SYNC_DAYS, SMALL_KEY, SMALL_CONNECTION)
        dagster, warehouse = tree_bytes(home / "dagster"), tree_bytes(home, "warehouse.duckdb*")
        return {
            **result,
            "days": LONG_SYNC_DAYS,
            "dagster_storage_mb": round(dagster / 2**20, 1),
            "warehouse_mb": round(warehouse / 2**20, 1),
            "dagster_to_warehouse": round(dagster / warehouse, 2),
        }


def tree_bytes(root: Path, pattern: str = "*") -> int:
    """Bytes of the files under ``root`` whose names match ``pattern`` (recursively)."""
    return sum(p.stat().st_size for p in root.rglob(pattern) if p.is_file())


def serve_days(sim: Any, key: str, start: date, today: date) -> dict[str, int]:
    """Have ``sim`` serve every page of the days [start, today) as Stax asks for them (it caches
    what it generates); the rows of each endpoint."""
    rows = {}
    for path, params in endpoint_requests(start, today):
        rows[path.removeprefix("/organization/")] = 0
        while True:
            query = "&".join(f"{k}={v}" for k, v in params)
            body = sim.handle(f"/v1{path}?{query}", f"Bearer {key}").body
            # one "organization.*" object per result row; the page's tail says if more follow
            rows[path.removeprefix("/organization/")] += body.count(b'"object": "organization.')
            cursor = json.loads(b"{" + body[body.rindex(b'"has_more"') :])
            if not cursor["has_more"]:
                break
            params = [*(p for p in params if p[0] != "page"), ("page", cursor["next_page"])]
    return rows


def warm_up(sim: Any, key: str, today: date, days: int, total_days: int) -> dict[str, Any]:
    """Serve every closed day the scenarios ask for once, so no timed run pays for the simulator's
    first pass (generating and rendering a large day); time that first pass and a cached one
    over the backfill window, and count its rows as Stax groups them."""

    began = time.perf_counter()
    rows = serve_days(sim, key, today - timedelta(days=days), today)
    first = time.perf_counter() - began
    began = time.perf_counter()
    serve_days(sim, key, today - timedelta(days=days), today)
    cached = time.perf_counter() - began
    began = time.perf_counter()
    if total_days > days:
        serve_days(sim, key, today - timedelta(days=total_days), today)
    return {
        "days": days,
        "first_pass_seconds": round(first, 2),
        "cached_pass_seconds": round(cached, 2),
        "days_warmed": total_days,
        "older_days_seconds": round(time.perf_counter() - began, 2),
        "rows": rows,
        "rows_total": sum(rows.values()),
    }


# -- output -------------------------------------------------------------------------------------

TARGETS = (  # (name, how to read it from the results, comparison, limit, unit)
    ("backfill / baseline", ("ratios", "product/baseline"), "<=", 3.0, "x"),
    ("backfill wall", ("scenarios", "product", "wall_seconds"), "<=", 45.0, "s"),
    ("backfill peak RSS", ("scenarios", "product", "peak_rss_mb"), "<=", 1024.0, "MB"),
    ("90-day / 30-day peak RSS", ("scenarios", "memory", "peak_ratio"), "<=", 1.2, "x"),
    (
        "nightly wall (365-day history)",
        ("scenarios", "nightly", "by_history_days", "365", "wall_seconds"),
        "<=",
        15.0,
        "s",
    ),
    ("nightly 365 / 30", ("scenarios", "nightly", "wall_ratio"), "<=", 1.3, "x"),
    ("report wall", ("scenarios", "report", "wall_seconds"), "<=", 1.0, "s"),
    # "finishes in a few minutes with Dagster storage a small fraction of the warehouse": the
    # limits are our reading of those words
    ("3-year sync wall", ("scenarios", "long", "wall_seconds"), "<=", 300.0, "s"),
    ("3-year sync Dagster / warehouse", ("scenarios", "long", "dagster_to_warehouse"), "<=", 0.5, "x"),
)


def _dig(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for name, path, op, limit, unit in TARGETS:
        value = _dig(results, path)
        out.append(
            {
                "name": name,
                "value": value,
                "target": f"{op} {limit:g} {unit}",
                "met": None if value is None else value <= limit,
            }
        )
    return out


def _table_rows(results: dict[str, Any]) -> list[tuple[str, ...]]:
    lines = [
        (
            "scenario",
            "wall s",
            "peak RSS MB",
            "requests",
            "rows",
            "fetch",
            "extract+norm",
            "load",
            "transform",
            "publish",
            "orchestration",
        )
    ]

    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    def add(name: str, r: dict[str, Any], rows: int | None, split: dict[str, float | None]) -> None:
        lines.append(
            (
                name,
                f"{r['wall_seconds']:.1f}",
                f"{r['peak_rss_mb']:,}",
                str(sum(r.get("requests", {}).values()) or "-"),
                "-" if rows is None else f"{rows:,}",
                *(
                    seconds(split.get(k))
                    for k in ("fetch", "extract", "load", "transform", "publish", "orchestration")
                ),
            )
        )

    def product(name: str, r: dict[str, Any]) -> None:
        p = r.get("phases")
        split = (
            {}
            if not p
            else {
                "fetch": p["fetch"],
                "extract": p["extract"] + p["normalize"],
                "load": p["load"],
                "transform": p["dbt"],
                "publish": p["publish"],
                "orchestration": p["orchestration"],
            }
        )
        add(name, r, r.get("rows_served"), split)

    s = results["scenarios"]
    if "fetch-only" in s:
        add("fetch-only", s["fetch-only"], s["fetch-only"]["rows"], s["fetch-only"]["seconds"])
    if "baseline" in s:
        sec = s["baseline"]["seconds"]
        add(
            "naive baseline",
            s["baseline"],
            s["baseline"]["rows"],
            {"fetch": sec["fetch"], "load": sec["insert"], "transform": sec["aggregate"]},
        )
    if "product" in s:
        product("product backfill", s["product"])
    if "latency" in s:
        product(f"backfill, +{LATENCY_MS} ms latency", s["latency"])
    for days, r in s.get("memory", {}).get("by_days", {}).items():
        product(f"backfill {days} d, 1 bucket/page", r)
    for history, r in s.get("nightly", {}).get("by_history_days", {}).items():
        product(f"nightly, {history} d history (small)", r)
    if "long" in s:
        product(f"sync {s['long']['days']} d (small)", s["long"])
    if "report" in s:
        add("stax report (median)", s["report"], None, {})
    return lines


def format_report(results: dict[str, Any]) -> str:
    lines = _table_rows(results)
    widths = [max(len(row[i]) for row in lines) for i in range(len(lines[0]))]
    text = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in lines
    ]
    text.insert(1, "  ".join("-" * w for w in widths))
    ratios = results.get("ratios", {})
    if ratios:
        text += ["", "  ".join(f"{k}: {v:.2f}x" for k, v in ratios.items())]
    long = results["scenarios"].get("long")
    if long:
        text.append(
            f"{long['days']}-day sync: Dagster storage {long['dagster_storage_mb']:g} MB, "
            f"warehouse {long['warehouse_mb']:g} MB ({long['dagster_to_warehouse']:.2f}x)"
        )
    text += ["", "targets (issue 6):"]
    for t in results["targets"]:
        mark = {True: "ok  ", False: "MISS", None: "-   "}[t["met"]]
        value = "not measured" if t["value"] is None else f"{t['value']:g}"
        text.append(f"  {mark} {t['name']}: {value} (target {t['target']})")
    for failure in results.get("failures", []):
        text += ["", f"FAILED {failure}"]
    return "\n".join(text)


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))  # type: ignore[union-attr]
    return {
        "nproc": os.cpu_count(),
        "ram_gb": round(mem_kb / 2**20, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def git_commit(root: Path) -> str | None:
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


# -- entry point --------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help=f"comma-separated scenarios, of: {', '.join(SCENARIOS)} (default all)")
    parser.add_argument(
        "--days",
        type=int,
        default=PRODUCT_BACKFILL_DAYS,
        help="backfill window in days (memory growth runs DAYS and 3*DAYS)",
    )
    parser.add_argument(
        "--product-root",
        type=Path,
        default=REPO_ROOT,
        help="the checkout whose .venv/bin/stax is measured (default: this one)",
    )
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "latest.json")
    parser.add_argument(
        "--profile",
        choices=("large", "small"),
        default="large",
        help="simulator profile of the backfill organization (small: to test the bench)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=REPO_ROOT / ".bench",
        help="where scenario STAX_HOMEs go (removed afterwards unless --keep)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scenario homes")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds before a process is killed")
    args = parser.parse_args(argv)
    args.only = SCENARIOS if not args.only else tuple(s.strip() for s in args.only.split(","))
    unknown = set(args.only) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}; choose from {', '.join(SCENARIOS)}")
    if args.days < 1:
        parser.error("--days must be >= 1")
    if not (args.product_root / ".venv" / "bin" / "stax").exists():
        parser.error(f"no {args.product_root}/.venv/bin/stax: run `make install` in that checkout first")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_child"]:
        return _child_main(argv[1:])
    args = parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))  # the simulator of this checkout, whatever product is measured
    from stax_pipeline.simulator import run_simulator

    work = args.work_dir.resolve() / datetime.now(UTC).strftime("run-%Y%m%dT%H%M%S")
    work.mkdir(parents=True)
    today = datetime.now(UTC).date()
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "bench_commit": git_commit(REPO_ROOT),
        "product_root": str(args.product_root.resolve()),
        "product_commit": git_commit(args.product_root),
        "profile": args.profile,
        "days": args.days,
        "window": {
            "start": (today - timedelta(days=args.days)).isoformat(),
            "end_exclusive": today.isoformat(),
        },
        "scenarios": {},
    }
    exit_code = 0
    with ExitStack() as stack:
        large = stack.enter_context(run_simulator(profile=args.profile))
        small = stack.enter_context(run_simulator())
        total = 3 * args.days if "memory" in args.only else args.days
        print(f"simulator: warming {total} {args.profile} days…", file=sys.stderr, flush=True)
        results["simulator"] = warm_up(large, LARGE_KEY, today, args.days, total)
        if "long" in args.only:  # the small organization's 3 years (the nightly's 365 days too)
            serve_days(small, SMALL_KEY, today - timedelta(days=LONG_SYNC_DAYS), today)
        bench = Bench(
            Product(args.product_root.resolve(), work, args.timeout),
            large,
            small,
            today,
            args.days,
            results["simulator"]["rows_total"],
        )
        runners: dict[str, Callable[[], dict[str, Any]]] = {
            "fetch-only": bench.fetch_only,
            "baseline": bench.baseline,
            "product": bench.product_backfill,
            "report": bench.report,
            "latency": bench.latency,
            "memory": bench.memory,
            "nightly": bench.nightly,
            "long": bench.long_sync,
        }
        for name in SCENARIOS:
            if name not in args.only:
                continue
            print(f"{name}…", file=sys.stderr, flush=True)
            try:
                results["scenarios"][name] = runners[name]()
            except (ProductFailed, RuntimeError) as failure:
                results.setdefault("failures", []).append(f"{name}: {failure}")
                print(f"FAILED {name}: {failure}", file=sys.stderr, flush=True)
                exit_code = 1
    s = results["scenarios"]
    results["ratios"] = {
        f"product/{other}": round(s["product"]["wall_seconds"] / s[other]["wall_seconds"], 2)
        for other in ("baseline", "fetch-only")
        if "product" in s and other in s
    }
    results["targets"] = evaluate_targets(results)
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(format_report(results))
    print(f"\nwrote {args.out}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
