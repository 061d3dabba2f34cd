"""Stored provider connections and their admin keys, encrypted at rest under a master key."""

from stax_pipeline.credentials.crypto import (
    MASTER_KEY_ENV,
    NEW_MASTER_KEY_ENV,
    MasterKey,
    decrypt,
    encode_master_key,
    encrypt,
    generate_master_key,
    load_master_key,
)
from stax_pipeline.credentials.store import (
    ADMIN_KEY_PREFIX,
    PROVIDERS,
    Connection,
    ConnectionStore,
    backfill_retry_delay,
    key_hint,
    validate_connection_name,
)

__all__ = [
    "ADMIN_KEY_PREFIX",
    "MASTER_KEY_ENV",
    "NEW_MASTER_KEY_ENV",
    "PROVIDERS",
    "Connection",
    "ConnectionStore",
    "MasterKey",
    "backfill_retry_delay",
    "decrypt",
    "encode_master_key",
    "encrypt",
    "generate_master_key",
    "key_hint",
    "load_master_key",
    "validate_connection_name",
]
