"""What no pasted admin key may look like, whatever its provider, before it is sent anywhere or
stored (each provider's own prefix and guidance: ``sources/<provider>_admin/key_format.py``).

A key is checked for what no key has — control characters (a terminal escape, a NUL), non-ASCII
(a typographic quote, a look-alike letter), spaces inside, quotes around it, or an absurd length
(a whole file pasted) — before any request, so a bad paste costs no network round trip and is
never stored. The messages never echo the key.
"""

from __future__ import annotations

from stax_pipeline.errors import UsageError

MAX_ADMIN_KEY_CHARS = 200
_QUOTES = "\"'`"


def check_key_characters(key: str) -> None:
    """Raise a one-line UsageError if ``key`` has characters or a length no admin key has (of
    any provider)."""
    if not key.isascii():
        raise UsageError(
            "the key contains non-ASCII characters (a typographic quote or a look-alike letter?): "
            "copy it again from the provider's console. Nothing was stored."
        )
    if any(not c.isprintable() and c not in "\t\r\n" for c in key):
        raise UsageError(
            "the key contains control characters (a terminal escape or a stray keystroke?): paste "
            "the key alone, as one line. Nothing was stored."
        )
    if any(c.isspace() for c in key):
        raise UsageError("the key contains spaces or line breaks: paste it as one piece. Nothing was stored.")
    if len(key) > MAX_ADMIN_KEY_CHARS:
        raise UsageError(
            f"the key is {len(key)} characters long, and an admin key has at most "
            f"{MAX_ADMIN_KEY_CHARS}: paste only the key, once. Nothing was stored."
        )
    if key[:1] in _QUOTES or key[-1:] in _QUOTES:
        raise UsageError("the key is in quotes: paste it without them. Nothing was stored.")
