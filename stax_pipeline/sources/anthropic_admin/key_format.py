"""What a pasted Anthropic admin key may look like before it is sent anywhere or stored.

The generic checks (control characters, non-ASCII, spaces, quotes, length) are the provider-
agnostic :func:`~stax_pipeline.credentials.key_format.check_key_characters`; this adds
Anthropic's prefix and the guidance for the commonest mistake, an inference key
(``sk-ant-api03-…``) pasted where an admin key belongs.
"""

from __future__ import annotations

from stax_pipeline.credentials.key_format import check_key_characters
from stax_pipeline.errors import UsageError

ADMIN_KEY_PREFIX = "sk-ant-admin01-"
INFERENCE_KEY_PREFIX = "sk-ant-api"
ADMIN_KEYS_PAGE = "https://console.anthropic.com/settings/admin-keys"
_HOW_TO_GET_ONE = (
    f"Anthropic admin keys start with {ADMIN_KEY_PREFIX} and are created by an organization admin "
    f"in the Console's admin keys page ({ADMIN_KEYS_PAGE})"
)
NOT_AN_ADMIN_KEY = f"that is not an admin key: {_HOW_TO_GET_ONE}. Nothing was stored."
INFERENCE_KEY = (
    "that is an Anthropic API key for inference (sk-ant-api…), not an admin key: it cannot read "
    f"usage or cost. {_HOW_TO_GET_ONE}. Nothing was stored."
)


def check_admin_key_format(key: str) -> None:
    """Raise a one-line UsageError unless ``key`` looks like an Anthropic admin key; nothing is
    sent for a key no Admin API could accept, and the message never echoes the key."""
    if not key:
        raise UsageError(f"no key given: {NOT_AN_ADMIN_KEY}")
    check_key_characters(key)
    if key.startswith(INFERENCE_KEY_PREFIX):
        raise UsageError(INFERENCE_KEY)
    if not key.startswith(ADMIN_KEY_PREFIX) or len(key) == len(ADMIN_KEY_PREFIX):
        raise UsageError(NOT_AN_ADMIN_KEY)
