"""Creds validation: what Baileys needs to log in again, checked on real initAuthCreds() output."""

from __future__ import annotations

import json

import pytest

from bridge.errors import CredsCorruptError
from bridge.store.creds import account_jid, is_registered, validate_creds_text


def test_real_baileys_creds_are_valid(fresh_creds: str, registered_creds: str) -> None:
    assert validate_creds_text(fresh_creds)["registrationId"] == json.loads(fresh_creds)["registrationId"]
    assert not is_registered(validate_creds_text(fresh_creds))
    assert is_registered(validate_creds_text(registered_creds))


@pytest.mark.parametrize(
    "field",
    [
        "noiseKey",
        "signedIdentityKey",
        "signedPreKey",
        "registrationId",
        "advSecretKey",
        "nextPreKeyId",
        "firstUnuploadedPreKeyId",
    ],
)
def test_a_missing_required_field_is_named(fresh_creds: str, field: str) -> None:
    creds = json.loads(fresh_creds)
    del creds[field]
    with pytest.raises(CredsCorruptError) as err:
        validate_creds_text(json.dumps(creds), source="/auth/s1/creds.json")
    assert field in str(err.value)
    assert "/auth/s1/creds.json" in str(err.value)


def test_a_damaged_key_is_named(fresh_creds: str) -> None:
    creds = json.loads(fresh_creds)
    creds["noiseKey"]["private"]["data"] = "AAAA"
    creds["signedPreKey"]["keyPair"]["public"] = {"type": "Buffer", "data": "not base64!"}
    with pytest.raises(CredsCorruptError) as err:
        validate_creds_text(json.dumps(creds))
    assert "noiseKey.private is 3 bytes" in str(err.value)
    assert "signedPreKey.keyPair.public" in str(err.value)


@pytest.mark.parametrize("text", ["", "   ", "{", "null", "[]", '"creds"', "{}", '{"noiseKey": NaN}'])
def test_empty_truncated_or_foreign_text_is_refused(text: str) -> None:
    with pytest.raises(CredsCorruptError):
        validate_creds_text(text)


def test_truncated_real_creds_are_refused(registered_creds: str) -> None:
    for cut in (1, len(registered_creds) // 2, len(registered_creds) - 1):
        with pytest.raises(CredsCorruptError):
            validate_creds_text(registered_creds[:cut])


def test_me_without_an_id_is_not_registered_and_is_refused(fresh_creds: str) -> None:
    creds = json.loads(fresh_creds)
    creds["me"] = {"name": "x"}
    assert not is_registered(creds)
    with pytest.raises(CredsCorruptError, match="me is present"):
        validate_creds_text(json.dumps(creds))


def test_creds_from_before_pairing_codes_are_valid_but_a_damaged_pairing_key_is_not(fresh_creds: str) -> None:
    creds = json.loads(fresh_creds)
    del creds["pairingEphemeralKeyPair"]
    validate_creds_text(json.dumps(creds))
    creds["pairingEphemeralKeyPair"] = {"private": "x"}
    with pytest.raises(CredsCorruptError, match="pairingEphemeralKeyPair"):
        validate_creds_text(json.dumps(creds))


def test_a_pairing_code_request_is_not_a_link(fresh_creds: str) -> None:
    """What `requestPairingCode` leaves before the phone confirms: `me` named `~`, a code, no account."""
    creds = json.loads(fresh_creds)
    creds.update(me={"id": "4915112345678@s.whatsapp.net", "name": "~"}, pairingCode="ABCD1234", registered=False)
    assert not is_registered(validate_creds_text(json.dumps(creds)))
    assert account_jid(creds) is None


def test_a_confirmed_pairing_code_or_an_account_is_a_link(fresh_creds: str, registered_creds: str) -> None:
    creds = json.loads(fresh_creds)
    creds.update(me={"id": "4915112345678@s.whatsapp.net", "name": "~"}, pairingCode="ABCD1234", registered=True)
    assert is_registered(creds)
    qr_linked = json.loads(registered_creds)
    assert qr_linked["account"] and qr_linked["registered"] is False, "a QR link sets account, not registered"
    assert is_registered(qr_linked)
    assert account_jid(qr_linked) == "4915112345678@s.whatsapp.net", "the device part is not the account"
