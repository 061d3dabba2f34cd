"""The providers Stax knows: one :class:`Provider` per folder ``sources/<provider>_admin/``.

Everything else — ``stax connect <provider>``, the credential store, ingest, the doctor — asks
this registry, never a provider's module by name. A provider's folder follows one contract
(README, "Adding a provider"):

- ``settings.py``: ``DATASET_NAME`` (its raw schema), ``DEFAULT_BASE_URL`` and the raw-table
  catalogue;
- ``key_format.py``: ``ADMIN_KEY_PREFIX`` and ``check_admin_key_format(key)`` (its guidance,
  before any request);
- ``validate.py``: ``validate_admin_key(base_url, key, *, expect_simulator=None) -> KeyCheck``
  (one cheap request, its 401/403 guidance);
- ``helpers.py``: its admin API client on ``lib/http.ApiClient``;
- ``__init__.py``: its ``@dlt.source`` taking ``(client, request, stats)``, ``DATA_RESOURCES``,
  ``LISTING_RESOURCES`` and ``sync_windows(request, tables)`` (the commit marker).

The registry itself imports no provider module: a folder is imported the first time one of its
facts is asked for (importing a dlt source takes seconds, and ``stax connections`` or an argument
error must answer at once).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from stax_pipeline.errors import UsageError

if TYPE_CHECKING:
    from stax_pipeline.sources.contract import KeyCheck, LoadStats, SyncRequest

SOURCES_PACKAGE = "stax_pipeline.sources"


@dataclass(frozen=True)
class Provider:
    """One provider API: its name, its folder, and what the rest of Stax asks of it.

    Only ``name``, ``title`` and the folder are known without importing the folder; every other
    fact is read from the folder (its settings, key format, validation, client and source).
    """

    name: str  # as typed in `stax connect <name>`, stored on the connection, `provider` in the marts
    title: str  # as messages name it
    folder: str  # its folder under sources/
    client_class: str  # its admin API client, in helpers.py
    source_function: str  # its @dlt.source, in __init__.py
    known_gaps: tuple[str, ...] = ()  # what its API cannot tell, said by `stax doctor`

    # --- configuration (no import of the folder) ---------------------------------------------

    @property
    def base_url_variable(self) -> str:
        """The environment variable that points new connections at another API (the simulator)."""
        return f"STAX_{self.name.upper()}_BASE_URL"

    def configured_base_url(self) -> str | None:
        """:attr:`base_url_variable` checked (https, or http only to this machine), None if unset."""
        from stax_pipeline.lib.endpoints import configured_base_url

        return configured_base_url(self.base_url_variable)

    def new_connection_base_url(self) -> str:
        """The API a new connection is made against: the configured one, else the provider's own."""
        return self.configured_base_url() or self.default_base_url

    # --- facts of the folder -----------------------------------------------------------------

    def module(self, name: str | None = None) -> ModuleType:
        """The folder's package, or one of its modules (``settings``, ``key_format``, …)."""
        package = f"{SOURCES_PACKAGE}.{self.folder}"
        return importlib.import_module(f"{package}.{name}" if name else package)

    @property
    def dataset_name(self) -> str:
        """The raw schema its source writes (``raw_<provider>``)."""
        return self.module("settings").DATASET_NAME

    @property
    def cost_resource(self) -> str:
        """Its day table of dollars: a commit marker of this table is a synced day."""
        return self.module("settings").COST_RESOURCE

    @property
    def default_base_url(self) -> str:
        return self.module("settings").DEFAULT_BASE_URL

    @property
    def key_prefix(self) -> str:
        """How its admin keys start: what a key hint shows and the prompt asks for."""
        return self.module("key_format").ADMIN_KEY_PREFIX

    def key_hint(self, api_key: str) -> str:
        """The displayable hint of one of its admin keys, e.g. ``sk-admin-…abcd``."""
        return f"{self.key_prefix}…{api_key[-4:]}"

    def check_key_format(self, api_key: str) -> None:
        """Raise a one-line UsageError, with the provider's guidance, unless ``api_key`` looks
        like one of its admin keys (no request is made)."""
        self.module("key_format").check_admin_key_format(api_key)

    def validate_key(self, base_url: str, api_key: str, *, expect_simulator: bool | None = None) -> KeyCheck:
        """Check the key with one cheap request to ``base_url``; one-line errors saying what to do."""
        validate = self.module("validate").validate_admin_key
        return validate(base_url, api_key, expect_simulator=expect_simulator)

    def client(self, base_url: str, api_key: str, **options: Any) -> Any:
        """Its admin API client (``.api``: the shared ApiClient; ``.close()``)."""
        return getattr(self.module("helpers"), self.client_class)(base_url, api_key, **options)

    def source(self, client: Any, request: SyncRequest, stats: LoadStats) -> Any:
        """Its dlt source for one connection's window."""
        return getattr(self.module(), self.source_function)(client, request, stats)

    def describe_source(self) -> Any:
        """Its dlt source with no client: only to describe its resources (the Dagster asset specs)."""
        return getattr(self.module(), self.source_function)()

    @property
    def data_resources(self) -> tuple[str, ...]:
        """The resources a load pulls: its day tables and its listings."""
        return tuple(self.module().DATA_RESOURCES)

    @property
    def listing_resources(self) -> tuple[str, ...]:
        """The listings (no days, merged): pulled with every window, never in its commit marker."""
        return tuple(self.module().LISTING_RESOURCES)

    def sync_windows(self, request: SyncRequest, tables: list[str]) -> Any:
        """The commit marker of a load: one ``sync_windows`` row per (table, day) of its window."""
        return self.module().sync_windows(request, tables)


# One line per provider folder.
PROVIDERS: tuple[Provider, ...] = (
    Provider(
        "openai",
        "OpenAI",
        "openai_admin",
        "OpenAIAdminClient",
        "openai_admin_source",
        known_gaps=(
            "the OpenAI Admin API does not expose organization names",
            "costs carry no user dimension: spend per user is not available (usage only)",
        ),
    ),
    Provider(
        "anthropic",
        "Anthropic",
        "anthropic_admin",
        "AnthropicAdminClient",
        "anthropic_admin_source",
        known_gaps=(
            "Priority Tier spend is not in the Anthropic cost report (its usage is)",
            "code execution appears in cost only, with no usage",
            "the Anthropic API reports no cost per API key (per-key figures are usage only)",
        ),
    ),
)


def provider_names() -> tuple[str, ...]:
    """The names ``stax connect`` accepts, in registry order."""
    return tuple(p.name for p in PROVIDERS)


def connect_command() -> str:
    """How to make a connection, for messages: ``stax connect openai --name NAME``."""
    return f"stax connect {'|'.join(provider_names())} --name NAME"


def get_provider(name: str) -> Provider:
    """The registered provider called ``name``; a one-line UsageError naming the known ones."""
    for provider in PROVIDERS:
        if provider.name == name:
            return provider
    raise UsageError(f"unsupported provider {name!r}; supported: {', '.join(provider_names())}")


__all__ = ["PROVIDERS", "Provider", "connect_command", "get_provider", "provider_names"]
