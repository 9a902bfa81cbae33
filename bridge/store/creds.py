"""What a creds.json must contain before the store lets it replace the one on disk.

Legacy `useMultiFileAuthState` trusts whatever it finds: a truncated or foreign creds.json makes it
call `initAuthCreds()` and the tenant silently needs a new QR. The bridge refuses instead, so every
creds text passes through `validate_creds_text` on the way to disk and on the way back.

The required fields are those of Baileys 7.0.0-rc14 `initAuthCreds()` (Utils/auth-utils.js) that the
socket needs to log in again; optional extras (`me`, `account`, `routingInfo`, ...) are kept as-is.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Final

from bridge.errors import CredsCorruptError

#: Key pairs stored as {"private": Buffer, "public": Buffer}.
KEY_PAIR_FIELDS: Final = ("noiseKey", "signedIdentityKey")
#: Key pairs checked only when present: creds made before Baileys had pairing codes lack them and
#: still log in, so an adopted old folder must not be refused for it.
OPTIONAL_KEY_PAIR_FIELDS: Final = ("pairingEphemeralKeyPair",)
#: Integers the socket reads at start-up.
INT_FIELDS: Final = ("registrationId", "nextPreKeyId", "firstUnuploadedPreKeyId")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (JavaScript's JSON.parse would refuse it)")


def parse_json_text(text: str) -> Any:
    """`json.loads` as strict as JavaScript's `JSON.parse` (no NaN/Infinity), for values from Node."""
    return json.loads(text, parse_constant=_reject_constant)


def _buffer_bytes(value: Any) -> bytes | None:
    """Bytes of a BufferJSON-encoded Buffer (`{"type":"Buffer","data":"<base64>"}`), else None.

    Also accepts the older `data: [int, ...]` form, which BufferJSON.replacer still understands.
    """
    if not isinstance(value, dict) or value.get("type") != "Buffer":
        return None
    data = value.get("data")
    if isinstance(data, str):
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            return None
    if isinstance(data, list) and all(isinstance(b, int) and 0 <= b <= 255 for b in data):
        return bytes(data)
    return None


def _check_key_pair(path: str, pair: Any, problems: list[str]) -> None:
    if not isinstance(pair, dict):
        problems.append(f"{path} missing or not an object")
        return
    for part in ("private", "public"):
        raw = _buffer_bytes(pair.get(part))
        if raw is None:
            problems.append(f"{path}.{part} missing or not a Buffer")
        elif len(raw) not in (32, 33):
            problems.append(f"{path}.{part} is {len(raw)} bytes, expected 32")


def validate_creds(creds: Any) -> list[str]:
    """Every problem that makes `creds` unusable by Baileys (empty list = valid)."""
    if not isinstance(creds, dict):
        return [f"top level is {type(creds).__name__}, expected a JSON object"]
    problems: list[str] = []
    for name in KEY_PAIR_FIELDS:
        _check_key_pair(name, creds.get(name), problems)
    for name in OPTIONAL_KEY_PAIR_FIELDS:
        if creds.get(name) is not None:
            _check_key_pair(name, creds[name], problems)
    spk = creds.get("signedPreKey")
    if not isinstance(spk, dict):
        problems.append("signedPreKey missing or not an object")
    else:
        _check_key_pair("signedPreKey.keyPair", spk.get("keyPair"), problems)
        if _buffer_bytes(spk.get("signature")) is None:
            problems.append("signedPreKey.signature missing or not a Buffer")
        if not isinstance(spk.get("keyId"), int) or isinstance(spk.get("keyId"), bool):
            problems.append("signedPreKey.keyId missing or not an integer")
    for name in INT_FIELDS:
        value = creds.get(name)
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append(f"{name} missing or not an integer")
    adv = creds.get("advSecretKey")
    if not isinstance(adv, str) or not adv:
        problems.append("advSecretKey missing or not a string")
    me = creds.get("me")
    if me is not None and not (isinstance(me, dict) and isinstance(me.get("id"), str) and me["id"]):
        problems.append("me is present but has no string id")
    return problems


def validate_creds_text(text: str, *, source: str = "creds") -> dict[str, Any]:
    """Parse and validate creds JSON text; return the object or raise `CredsCorruptError`.

    The message names `source` (usually the file path) and every field that is missing or wrong, so
    an operator sees at once whether this is a truncated file, a foreign file or an old format.
    """
    if not isinstance(text, str) or not text.strip():
        raise CredsCorruptError(f"{source}: creds are empty; refusing to use or store empty creds")
    try:
        creds = parse_json_text(text)
    except ValueError as exc:
        raise CredsCorruptError(f"{source}: creds are not valid JSON ({exc})") from exc
    problems = validate_creds(creds)
    if problems:
        raise CredsCorruptError(f"{source}: creds are not usable by Baileys: {'; '.join(problems)}")
    assert isinstance(creds, dict)
    return creds


def is_registered(creds: dict[str, Any]) -> bool:
    """True when the creds belong to a LINKED device: losing them means scanning a QR again.

    Baileys 7.0.0-rc14 marks a link in two ways (checked against lib/Socket and lib/Utils):
    a QR link (`pair-success`, `configureSuccessfulPairing`) sets `account` (the ADV signed device
    identity) and `me`, and leaves `registered: false`; a pairing-code link sets `registered: true`
    when the phone confirms the code (`link_code_companion_reg`), then `account` on `pair-success`.
    `me` alone proves nothing: `requestPairingCode` sets it (name `~`) with a `pairingCode` before
    anything is linked, and such creds are worth no more than fresh ones.
    """
    me = creds.get("me")
    if not (isinstance(me, dict) and isinstance(me.get("id"), str) and me["id"]):
        return False
    account = creds.get("account")
    return (isinstance(account, dict) and bool(account)) or creds.get("registered") is True


def identity_key_bytes(creds: dict[str, Any]) -> bytes:
    """The public half of `signedIdentityKey`: made once by `initAuthCreds()`, kept for life.

    Raises `CredsCorruptError` when the creds have none (they would not pass `validate_creds`).
    """
    pair = creds.get("signedIdentityKey")
    raw = _buffer_bytes(pair.get("public")) if isinstance(pair, dict) else None
    if raw is None:
        raise CredsCorruptError("creds have no signedIdentityKey.public Buffer; they are not Baileys creds")
    return raw


def account_jid(creds: dict[str, Any]) -> str | None:
    """The account's user JID without the device part (`4915...@s.whatsapp.net`), None if not linked."""
    if not is_registered(creds):
        return None
    user, _, server = str(creds["me"]["id"]).partition("@")
    return f"{user.split(':', 1)[0]}@{server}" if server else None
