"""Checking an Anthropic admin key before anything is stored: its form, then one cheap request."""

from __future__ import annotations

from stax_pipeline.errors import CredentialError, ProviderError
from stax_pipeline.lib.http import HttpError, RetryPolicy
from stax_pipeline.sources.anthropic_admin.helpers import AnthropicAdminClient
from stax_pipeline.sources.anthropic_admin.key_format import ADMIN_KEYS_PAGE, check_admin_key_format
from stax_pipeline.sources.anthropic_admin.settings import BASE_URL_SETTING, COST_REPORT_PATH
from stax_pipeline.sources.contract import KeyCheck

NOT_AN_ADMIN_KEY_401 = (
    "the Anthropic Admin API refused the key (HTTP 401): it is not an admin key, or it was revoked; "
    f"an organization admin creates admin keys (sk-ant-admin01-…) at {ADMIN_KEYS_PAGE}. Nothing was stored."
)
NO_PERMISSION_403 = (
    "the Anthropic Admin API answered 403: this key lacks permission to read usage and cost; "
    f"have an organization admin create an admin key at {ADMIN_KEYS_PAGE}. Nothing was stored."
)


def validate_admin_key(base_url: str, api_key: str, *, expect_simulator: bool | None = None) -> KeyCheck:
    """Refuse a key before anything is stored, with one line saying what to do.

    The key's form first (:func:`check_admin_key_format`: nothing is sent for a key no API could
    accept), then one request to ``GET /organizations/cost_report`` (yesterday, ungrouped):
    401 means not an admin key or revoked, 403 means the key lacks permission. Only a key that
    passed is asked for its organization (``GET /organizations/me``, a few seconds of retries at
    most, None if the API does not say), so one organization is not connected twice. Raises
    :class:`~stax_pipeline.errors.UsageError` (form), :class:`CredentialError` (401/403) or
    :class:`ProviderError` (anything else); every message ends "Nothing was stored."
    """
    check_admin_key_format(api_key)
    # a person is waiting: a few seconds of retries, not the sync's minutes
    client = AnthropicAdminClient(
        base_url, api_key, retry=RetryPolicy.from_env().at_most(10), expect_simulator=expect_simulator
    )
    try:
        client.check_admin_key()
        simulated = bool(client.api.answered_by_simulator)
    except HttpError as exc:
        if exc.status == 401:
            raise CredentialError(NOT_AN_ADMIN_KEY_401) from None
        if exc.status == 403:
            raise CredentialError(NO_PERMISSION_403) from None
        raise ProviderError(
            f"the key check (GET {COST_REPORT_PATH} at {base_url}) failed with HTTP {exc.status}: "
            f"{exc.api_message}. Nothing was stored."
        ) from None
    except ProviderError:
        raise ProviderError(
            f"could not reach the Anthropic Admin API at {base_url} to check the key; check the "
            f"network (or {BASE_URL_SETTING}) and try again. Nothing was stored."
        ) from None
    finally:
        client.close()
    lookup = AnthropicAdminClient(
        base_url, api_key, retry=RetryPolicy.from_env().at_most(3), expect_simulator=expect_simulator
    )
    try:
        return KeyCheck(simulator=simulated, organization_id=lookup.organization_id())
    finally:
        lookup.close()
