"""What an OpenAI admin key looks like, and what to tell someone who pasted something else.

Checked before any request and before anything is stored: the characters and length no key has
(``credentials/key_format.py``, the same for every provider), then OpenAI's own prefix.
"""

from __future__ import annotations

from stax_pipeline.credentials.key_format import check_key_characters
from stax_pipeline.errors import UsageError

ADMIN_KEY_PREFIX = "sk-admin-"
ADMIN_KEYS_PAGE = "https://platform.openai.com/settings/organization/admin-keys"
NOT_AN_ADMIN_KEY = (
    f"that is not an admin key: OpenAI admin keys start with {ADMIN_KEY_PREFIX} and are created "
    f"by an organization owner at {ADMIN_KEYS_PAGE} (read-only scope is enough). Nothing was stored."
)


def check_admin_key_format(key: str) -> None:
    """Raise a one-line UsageError unless ``key`` looks like an OpenAI admin key: the one check
    the key validation (before any request) and the credential store (before anything is
    stored) share."""
    if not key:
        raise UsageError(f"no key given: {NOT_AN_ADMIN_KEY}")
    check_key_characters(key)
    if not key.startswith(ADMIN_KEY_PREFIX) or len(key) == len(ADMIN_KEY_PREFIX):
        raise UsageError(NOT_AN_ADMIN_KEY)
