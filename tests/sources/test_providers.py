"""The provider registry (``stax_pipeline/providers.py``) and the contract every provider folder
keeps: what ``stax connect``, the credential store, ingest and the doctor rely on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stax_pipeline.errors import UsageError
from stax_pipeline.providers import PROVIDERS, Provider, connect_command, get_provider, provider_names

PACKAGE = Path(__file__).resolve().parents[2] / "stax_pipeline"


@pytest.mark.parametrize("provider", PROVIDERS, ids=lambda p: p.name)
def test_each_folder_keeps_the_contract(provider: Provider):
    assert get_provider(provider.name) is provider
    assert provider.dataset_name == f"raw_{provider.name}"
    assert provider.default_base_url.startswith("https://")
    assert provider.base_url_variable == f"STAX_{provider.name.upper()}_BASE_URL"
    assert set(provider.listing_resources) <= set(provider.data_resources)
    # Its source describes its resources without a client (the Dagster asset specs), the commit
    # marker among them.
    described = set(provider.describe_source().resources)
    assert set(provider.data_resources) | {"sync_windows"} <= described
    assert set(provider.module("settings").RAW_TABLES) == described
    # A key of another shape is refused with the provider's guidance, before any request.
    for wrong in ("", "sk-proj-abcdefghijklmnop", provider.key_prefix):
        with pytest.raises(UsageError, match="Nothing was stored") as refused:
            provider.check_key_format(wrong)
        assert "abcdefgh" not in str(refused.value)
    key = provider.key_prefix + "Qx7vLr2NpW9sKd4TmYb8HcZf3JgE6uRa"
    provider.check_key_format(key)
    assert provider.key_hint(key) == f"{provider.key_prefix}…6uRa"


def test_unknown_provider_is_one_line_naming_the_known_ones():
    with pytest.raises(UsageError) as unknown:
        get_provider("nosuch")
    assert str(unknown.value) == f"unsupported provider 'nosuch'; supported: {', '.join(provider_names())}"
    assert connect_command() == f"stax connect {'|'.join(provider_names())} --name NAME"


def test_the_registry_and_the_cli_import_no_provider_folder():
    """`stax connections` and argument errors answer at once: the registry names the folders but
    imports one (and dlt with it) only when one of its facts is asked for."""
    probe = (
        "import sys, stax_pipeline.providers, stax_pipeline.cli, stax_pipeline.cli.commands, "
        "stax_pipeline.credentials; stax_pipeline.cli.build_parser(); "
        "print(sorted(m for m in sys.modules if m == 'dlt' or m.startswith('stax_pipeline.sources.')))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"


def test_nothing_outside_a_provider_folder_names_it_in_the_credential_store():
    """The credential store is provider-agnostic: it asks the registry for the key format."""
    for path in sorted((PACKAGE / "credentials").glob("*.py")):
        text = path.read_text().lower()
        for provider in PROVIDERS:
            assert provider.name not in text, path
            assert provider.key_prefix not in text, path
