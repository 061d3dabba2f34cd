"""Checking an OpenAI admin key with one cheap request, and what to say when OpenAI refuses it."""

from __future__ import annotations

from stax_pipeline.errors import CredentialError, ProviderError
from stax_pipeline.lib.http import HttpError, RetryPolicy
from stax_pipeline.sources.contract import KeyCheck
from stax_pipeline.sources.openai_admin.helpers import OpenAIAdminClient
from stax_pipeline.sources.openai_admin.key_format import ADMIN_KEYS_PAGE, check_admin_key_format

WRONG_KEY_TYPE = (
    "wrong key type: paste an admin key (sk-admin-…), not a regular API key "
    "(the API answered 401: the key is not a valid admin key, or it was revoked). Nothing was stored."
)
NON_OWNER_KEY = (
    "this admin key was created by a non-owner; have an organization owner create it "
    f"at {ADMIN_KEYS_PAGE} (the API answered 403). Nothing was stored."
)
# A person is waiting: a few seconds of retries, not the sync's minutes.
KEY_CHECK_MAX_RETRY_S = 10


def validate_admin_key(base_url: str, api_key: str, *, expect_simulator: bool | None = None) -> KeyCheck:
    """Refuse a key before anything is stored: what it is made of first (nothing is sent for a
    key no API could accept), then one cheap request to ``base_url`` (``GET /organization/costs``),
    which also tells whether the Stax simulator answered (``expect_simulator``, if not None,
    refuses the other kind of API) and the organization behind the key."""
    check_admin_key_format(api_key)
    client = OpenAIAdminClient(
        base_url,
        api_key,
        retry=RetryPolicy.from_env().at_most(KEY_CHECK_MAX_RETRY_S),
        expect_simulator=expect_simulator,
    )
    try:
        organization = client.check_admin_key()
        return KeyCheck(bool(client.api.answered_by_simulator), organization)
    except HttpError as exc:
        if exc.status == 401:
            raise CredentialError(WRONG_KEY_TYPE) from None
        if exc.status == 403:
            raise CredentialError(NON_OWNER_KEY) from None
        raise ProviderError(
            f"the key check at {base_url} failed with HTTP {exc.status}: {exc.api_message}. "
            "Nothing was stored."
        ) from None
    except ProviderError:
        raise ProviderError(
            f"could not reach the OpenAI Admin API at {base_url} to check the key; check the "
            "network (or STAX_OPENAI_BASE_URL) and try again. Nothing was stored."
        ) from None
    finally:
        client.close()
