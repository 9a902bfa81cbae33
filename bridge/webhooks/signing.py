"""Standard Webhooks signatures (https://www.standardwebhooks.com), so receivers verify with the
published `standardwebhooks` libraries.

Each request carries `webhook-id` (stable across retries: receivers drop duplicates with it),
`webhook-timestamp` (Unix seconds of this attempt) and `webhook-signature`:
`v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`. The key is the secret's bytes: for a
`whsec_<base64>` secret the decoded base64, for an older plain secret its UTF-8 bytes (such a
receiver passes `whsec_` + base64 of its secret to the library). The first header of the bridge,
`X-Bridge-Signature: sha256=<hex HMAC-SHA256(key, body)>`, is still sent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

PREFIX = "whsec_"


def new_secret() -> str:
    """A fresh secret in the Standard Webhooks form (`whsec_` + base64 of 32 random bytes)."""
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of `secret` (see the module docstring)."""
    if secret.startswith(PREFIX):
        try:
            return base64.b64decode(secret[len(PREFIX):], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("a whsec_ secret must be whsec_ followed by base64") from None
    return secret.encode()


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Every signature header of one attempt."""
    key = secret_key(secret)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(key, msg_id, timestamp, body),
        "X-Bridge-Signature": "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest(),
    }
