"""What every provider folder under ``sources/`` takes and returns, so the rest of Stax (the
registry, ingest, the use-cases) treats them alike: the request of one load, what the load saw,
and what a key check learned."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, TypeAlias

from stax_pipeline.lib.window import SyncWindow

if TYPE_CHECKING:
    from dlt.common.schema.typing import TColumnSchema

# A raw table's columns as dlt takes them: the shape of each provider's raw-schema catalogue.
Columns: TypeAlias = "dict[str, TColumnSchema]"


@dataclass(frozen=True)
class SyncRequest:
    """Which connection and which window of UTC days one load covers, and when it pulled."""

    connection: str
    window: SyncWindow
    lookback_days: int
    loaded_at: datetime
    sync_id: str


@dataclass
class LoadStats:
    """What a run of a source pulled, for Dagster metadata and progress lines."""

    rows: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    cost_usd_by_day: dict[date, float] = field(default_factory=lambda: defaultdict(float))
    cost_rows_by_day: dict[date, int] = field(default_factory=lambda: defaultdict(int))
    notes: list[str] = field(default_factory=list)
    skipped: set[str] = field(default_factory=set)
    organization_ids: set[str] = field(default_factory=set)  # the organizations the cost rows name
    # Called with each organization id the first time a cost row carries it; raising stops
    # the extract (nothing of it is loaded).
    on_organization: Callable[[str], None] | None = None
    # Called (at most once) when the source has processed and let go of its biggest page (a
    # large organization's costs: ~100 MB of JSON): the sync may start what needs memory beside
    # it (its dbt). A source that never calls it has its sync start them after the extract.
    on_biggest_page_done: Callable[[], None] | None = None


@dataclass(frozen=True)
class KeyCheck:
    """What a provider's key validation learned: whether the Stax simulator answered it, and the
    organization behind the key (its id; None if the API did not say)."""

    simulator: bool
    organization_id: str | None


__all__ = ["KeyCheck", "LoadStats", "SyncRequest"]
