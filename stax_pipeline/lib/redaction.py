"""Secrets never reach a message: keys this process knows are masked in every encoding.

Error bodies, redirect targets and proxies' pages sometimes echo the request's credentials, and
not always as they were sent: URL-encoded in a query string, base64 inside a ``Basic`` header,
hex in a debug dump. The HTTP client registers its token here (:func:`register_secret`) before
it sends anything; :func:`redact` masks every registered secret in all those forms, and also
anything shaped like an OpenAI key (``sk-…``) for keys this process never held.
"""

from __future__ import annotations

import base64
import re
import threading
from urllib.parse import quote, quote_plus

_SECRET_PATTERN = re.compile(r"sk-[A-Za-z0-9_\-]{4,}")
_known_secrets: dict[str, re.Pattern[str]] = {}  # every token a client was made with, and its forms
_known_secrets_lock = threading.Lock()
# Shorter pieces of an encoded key are not masked: they would mask ordinary words.
_MIN_SECRET_PIECE = 12


def _encoded_forms(secret: str) -> set[str]:
    """The ways a secret can show up in a body, a URL or a header someone echoes: as is,
    URL-encoded, hex, and base64 (standard and URL-safe) at each of the three alignments it can
    have inside a longer encoded text (e.g. ``Basic base64(user:key)``). Of the base64 forms,
    only the characters that depend on the secret's bits alone are kept."""
    raw = secret.encode()
    forms = {secret, quote(secret, safe=""), quote_plus(secret), raw.hex(), raw.hex().upper()}
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode()
        piece = encoded[-(-4 * offset // 3) : 8 * (offset + len(raw)) // 6]
        forms |= {piece, piece.replace("+", "-").replace("/", "_")}
    return {form for form in forms if len(form) >= _MIN_SECRET_PIECE}


def register_secret(secret: str) -> None:
    """Have :func:`redact` mask ``secret`` and its encodings from now on (in this process)."""
    if len(secret) < _MIN_SECRET_PIECE:
        return
    with _known_secrets_lock:
        if secret not in _known_secrets:
            forms = sorted(_encoded_forms(secret), key=len, reverse=True)
            _known_secrets[secret] = re.compile("|".join(re.escape(form) for form in forms))


def redact_secrets(text: str) -> str:
    """Mask every registered secret: as is, URL-encoded, base64 and hex."""
    with _known_secrets_lock:
        patterns = list(_known_secrets.values())
    for pattern in patterns:
        text = pattern.sub("[redacted]", text)
    return text


def redact(text: str) -> str:
    """Mask every registered secret (:func:`redact_secrets`) and anything that looks like an API
    key (some error bodies echo part of the key): for text that comes from an API."""
    return _SECRET_PATTERN.sub("sk-…", redact_secrets(text))
