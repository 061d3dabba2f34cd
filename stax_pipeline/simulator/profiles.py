"""Organization sizes the simulator can generate: ``small`` (the default) and ``large``.

A profile only sets sizes and catalogues; the generator in :mod:`.data` is one code path for
both. The small profile's values are exactly those the generator had before profiles existed,
drawn in the same order from the same random streams, so its data (which tests compare marts
against, on fixed dates) never changes. The large profile is a big customer for ``make bench``:
about 40 projects, 30 models and 200 API keys, so 30 days grouped as Stax groups them (never by
``user_id``) are over 250k cost rows and 100k completions rows.
"""

from __future__ import annotations

from dataclasses import dataclass

FINE_TUNED = "ft:gpt-4o-mini-2024-07-18:acme::Ab12Cd34"

_SMALL_PROJECT_NAMES = (
    "Support Bot",
    "Search",
    "Data Labeling",
    "Marketing Copy",
    "Internal Tools",
    "Voice Agent",
    "Research Sandbox",
    "Evals",
)
_LARGE_PROJECT_NAMES = tuple(
    f"{team} {purpose}"
    for team in ("Support", "Sales", "Search", "Legal", "Finance", "Marketing", "Platform", "Research")
    for purpose in ("Bot", "Copilot", "Evals", "Batch Jobs", "Agents", "Sandbox")
)

# (model, weight): how often a completions fact uses the model.
_SMALL_CHAT = (
    ("gpt-4o-mini-2024-07-18", 5),
    ("gpt-4o-2024-08-06", 3),
    ("gpt-4.1-2025-04-14", 2),
    ("gpt-4.1-mini-2025-04-14", 3),
    ("o3-mini-2025-01-31", 1),
    (FINE_TUNED, 1),
)
_LARGE_CHAT = (
    *_SMALL_CHAT,
    ("gpt-4o-2024-11-20", 3),
    ("gpt-4o-2024-05-13", 1),
    ("gpt-4.1-nano-2025-04-14", 3),
    ("o3-2025-04-16", 2),
    ("o4-mini-2025-04-16", 3),
    ("o1-2024-12-17", 1),
    ("o1-mini-2024-09-12", 1),
    ("gpt-4-turbo-2024-04-09", 1),
    ("gpt-3.5-turbo-0125", 1),
    ("gpt-4o-audio-preview-2024-12-17", 1),
    ("gpt-4o-search-preview-2025-03-11", 1),
    ("chatgpt-4o-latest", 1),
    ("gpt-5-2025-08-07", 4),
    ("gpt-5-mini-2025-08-07", 4),
    ("gpt-5-nano-2025-08-07", 2),
    ("codex-mini-latest", 1),
    ("gpt-4.5-preview-2025-02-27", 1),
    ("ft:gpt-4.1-mini-2025-04-14:acme:support-v2:Xy98Zw76", 1),
)


@dataclass(frozen=True)
class Profile:
    """Sizes and catalogues of one kind of organization.

    Ranges are inclusive ``(low, high)`` as :meth:`random.Random.randint` takes them. ``draws``
    is how many facts of each usage endpoint a busy day draws; the number of distinct rows is a
    little lower, as draws that land on the same dimensions are summed.
    """

    name: str
    projects: tuple[int, int]
    project_names: tuple[str, ...]  # sampled; "Default project" comes first and is not in here
    project_spacing_days: int  # each project is created up to this many days after the previous one
    keys_per_project: tuple[int, int]
    users: tuple[int, int]
    quiet_day_rate: float  # share of days with no traffic at all
    chat_models: tuple[str, ...]
    chat_weights: tuple[int, ...]
    embedding_models: tuple[str, ...]  # drawn uniformly: repeat a model to weight it
    web_search_models: tuple[str, ...]
    draws: dict[str, tuple[int, int]]


SMALL = Profile(
    name="small",
    projects=(3, 6),
    project_names=_SMALL_PROJECT_NAMES,
    project_spacing_days=60,
    keys_per_project=(1, 3),
    users=(3, 8),
    quiet_day_rate=0.12,
    chat_models=tuple(m for m, _ in _SMALL_CHAT),
    chat_weights=tuple(w for _, w in _SMALL_CHAT),
    embedding_models=("text-embedding-3-small",) * 3 + ("text-embedding-3-large",),
    web_search_models=("gpt-4o-2024-08-06", "gpt-4.1-mini-2025-04-14"),
    draws={
        "completions": (4, 14),
        "embeddings": (0, 4),
        "moderations": (0, 3),
        "images": (0, 3),
        "audio_speeches": (0, 2),
        "audio_transcriptions": (0, 2),
        "code_interpreter_sessions": (0, 2),
        "file_search_calls": (0, 3),
        "web_search_calls": (0, 3),
    },
)

LARGE = Profile(
    name="large",
    projects=(39, 41),
    project_names=_LARGE_PROJECT_NAMES,
    project_spacing_days=12,
    keys_per_project=(4, 6),
    users=(250, 350),
    quiet_day_rate=0.0,  # a big customer has traffic every day
    chat_models=tuple(m for m, _ in _LARGE_CHAT),
    chat_weights=tuple(w for _, w in _LARGE_CHAT),
    embedding_models=("text-embedding-3-small",) * 3 + ("text-embedding-3-large", "text-embedding-ada-002"),
    web_search_models=(
        "gpt-4o-2024-08-06",
        "gpt-4.1-mini-2025-04-14",
        "gpt-4.1-2025-04-14",
        "gpt-5-2025-08-07",
        "o4-mini-2025-04-16",
    ),
    draws={
        "completions": (4500, 4900),
        "embeddings": (350, 450),
        "moderations": (100, 200),
        "images": (100, 200),
        "audio_speeches": (60, 120),
        "audio_transcriptions": (60, 120),
        "code_interpreter_sessions": (20, 40),
        "file_search_calls": (100, 200),
        "web_search_calls": (200, 300),
    },
)

PROFILES = {p.name: p for p in (SMALL, LARGE)}


def profile_named(name: str) -> Profile:
    """The profile called ``name``; a ValueError listing the choices otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(
            f"unknown simulator profile {name!r}; choose one of: {', '.join(PROFILES)}"
        ) from None
