"""The master key and AES-256-GCM encryption of stored provider keys.

The master key comes from ``STAX_MASTER_KEY`` (base64 of 32 bytes) or else from the key file
``$STAX_HOME/master.key``, which is created on first use readable by its owner only. Nothing here
logs, prints or puts a key or ciphertext into an exception message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from stax_pipeline.errors import ConfigError, CredentialError, SettingError
from stax_pipeline.settings import Settings

MASTER_KEY_ENV = "STAX_MASTER_KEY"
NEW_MASTER_KEY_ENV = "STAX_NEW_MASTER_KEY"
KEY_BYTES = 32
NONCE_BYTES = 12
_GENERATE_HINT = (
    'generate one with: python -c "import base64, os; print(base64.b64encode(os.urandom(32)).decode())"'
)


@dataclass(frozen=True)
class MasterKey:
    """The AES-256 key that encrypts stored provider keys.

    Attributes:
        key: The 32 raw key bytes; kept out of ``repr``.
        key_id: The key version stored with every ciphertext: the first 16 hex characters of
            ``sha256(b"stax-master-key-id:" + key)``, so a wrong or rotated key is detected
            explicitly instead of as a failed decryption.
    """

    key: bytes = field(repr=False)
    key_id: str = field(init=False)

    def __post_init__(self) -> None:
        if len(self.key) != KEY_BYTES:
            raise ConfigError(f"a master key must be exactly {KEY_BYTES} bytes")
        digest = hashlib.sha256(b"stax-master-key-id:" + self.key).hexdigest()
        object.__setattr__(self, "key_id", digest[:16])


def generate_master_key() -> bytes:
    """Return 32 fresh random bytes for a new master key."""
    return os.urandom(KEY_BYTES)


def encode_master_key(key: bytes) -> str:
    """Return the base64 text form of a master key, as stored in files and env variables."""
    return base64.b64encode(key).decode("ascii")


def decode_master_key(text: str, *, source: str) -> MasterKey:
    """Parse base64 text into a master key; ``source`` names where it came from for the error."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != KEY_BYTES:
        # Never echo the value: it may be a real key with a typo in it.
        raise ConfigError(f"{source} must be base64 of exactly {KEY_BYTES} bytes; {_GENERATE_HINT}")
    return MasterKey(raw)


def master_key_from_env(variable: str = MASTER_KEY_ENV) -> MasterKey | None:
    """Return the master key in env ``variable``, or None when it is unset or empty; a malformed
    value is a SettingError (exit 2), which never echoes it."""
    value = os.environ.get(variable)
    if not value:
        return None
    try:
        return decode_master_key(value, source=variable)
    except ConfigError as exc:
        raise SettingError(str(exc)) from None


def read_key_file(path: Path) -> MasterKey:
    """Read a master key file, refusing one that other users could read."""
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigError(
            f"the master key file {path} is accessible to other users (mode {mode:o}); "
            f"run `chmod 600 {path}` and retry"
        )
    text = path.read_text(encoding="ascii", errors="replace")
    return decode_master_key(text, source=f"the master key file {path}")


def write_key_file(path: Path, key: bytes) -> None:
    """Create ``path`` (mode 0600) holding ``key``; raise FileExistsError if it already exists.

    The key is written to a private temporary file first and then hard-linked into place, so the
    file is never world readable and no other process ever sees it half written.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(encode_master_key(key) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Flush a directory entry change (create, rename) to disk."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_master_key(settings: Settings) -> MasterKey:
    """Return the master key from ``STAX_MASTER_KEY``, else the key file (created if missing).

    Use :class:`~stax_pipeline.credentials.store.ConnectionStore` rather than this directly: it
    also finishes an interrupted rotation before the key file is read.
    """
    from_env = master_key_from_env()
    if from_env is not None:
        return from_env
    path = settings.master_key_path
    if not path.exists():
        try:
            write_key_file(path, generate_master_key())
        except FileExistsError:
            pass  # another process created it first; use theirs
    return read_key_file(path)


def encrypt(master: MasterKey, plaintext: str, aad: bytes) -> tuple[bytes, bytes]:
    """Encrypt ``plaintext`` bound to ``aad``; return ``(nonce, ciphertext)``, a fresh nonce each call."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce, AESGCM(master.key).encrypt(nonce, plaintext.encode("utf-8"), aad)


def decrypt(master: MasterKey, nonce: bytes, ciphertext: bytes, aad: bytes) -> str:
    """Decrypt and authenticate; raise CredentialError if the data, ``aad`` or key do not match."""
    try:
        return AESGCM(master.key).decrypt(nonce, ciphertext, aad).decode("utf-8")
    except (InvalidTag, ValueError):
        raise CredentialError(
            "a stored key failed authentication: it was tampered with, moved, or encrypted under a "
            "different master key"
        ) from None
