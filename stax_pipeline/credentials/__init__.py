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
    Connection,
    ConnectionStore,
    backfill_retry_delay,
    unknown_connection,
    validate_connection_name,
)

__all__ = [
    "MASTER_KEY_ENV",
    "NEW_MASTER_KEY_ENV",
    "Connection",
    "ConnectionStore",
    "MasterKey",
    "backfill_retry_delay",
    "decrypt",
    "encode_master_key",
    "encrypt",
    "generate_master_key",
    "load_master_key",
    "unknown_connection",
    "validate_connection_name",
]
