"""The durable auth store: the only code that writes a session's auth folder (docs/storage.md)."""

from bridge.store.auth_store import AsyncAuthStore, AuthStore
from bridge.store.creds import is_registered, validate_creds_text
from bridge.store.layout import (
    CREDS_FILE,
    KEY_TYPES,
    is_bridge_private,
    key_file_name,
    parse_key_file_name,
    validate_session_id,
)

__all__ = [
    "CREDS_FILE",
    "KEY_TYPES",
    "AsyncAuthStore",
    "AuthStore",
    "is_bridge_private",
    "is_registered",
    "key_file_name",
    "parse_key_file_name",
    "validate_creds_text",
    "validate_session_id",
]
