"""WhatsApp's media encryption, both ways, streaming (a 100 MB document never sits in memory).

A media key is 32 random bytes; HKDF-SHA256 (no salt, `info` per kind family: "WhatsApp Image
Keys"...) expands it to 112 bytes: IV (16), AES-256 key (32), MAC key (32). The blob on the media
host is AES-256-CBC(PKCS7) ciphertext followed by the first 10 bytes of HMAC-SHA256(MAC key,
IV || ciphertext). `fileEncSha256` is the sha256 of that whole blob, `fileSha256` the sha256 of the
plaintext. A phone checks all three; so does `MediaDecryptor.finish`.

Why Python encrypts outgoing media (not Baileys): Baileys writes the encrypted file to the
system temp folder before uploading, and the Node runtime has no write access anywhere. Python
writes the encrypted blob into the spool; Node only reads it to upload.
"""

from __future__ import annotations

import hashlib
import hmac
import os

import msgspec
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bridge.errors import BridgeError, ErrorCode

MAC_LENGTH = 10
BLOCK = 16


class MediaCorrupt(BridgeError):
    """The blob does not match its message (HMAC, encrypted or plaintext sha256): nothing is served (502)."""

    code: str = ErrorCode.MEDIA_CORRUPT


class MediaKeys(msgspec.Struct, frozen=True):
    iv: bytes
    cipher_key: bytes
    mac_key: bytes


def media_keys(media_key: bytes, info: str) -> MediaKeys:
    expanded = HKDF(algorithm=hashes.SHA256(), length=112, salt=None, info=info.encode()).derive(media_key)
    return MediaKeys(iv=expanded[:16], cipher_key=expanded[16:48], mac_key=expanded[48:80])


def new_media_key() -> bytes:
    return os.urandom(32)


class Sealed(msgspec.Struct, frozen=True):
    """What the message carries about an encrypted file."""

    media_key: bytes
    file_sha256: bytes
    file_enc_sha256: bytes
    file_length: int


class MediaEncryptor:
    """Feed plaintext chunks, get ciphertext chunks; `finish()` gives the tail (last block + MAC)."""

    def __init__(self, media_key: bytes, info: str) -> None:
        self.media_key = media_key
        keys = media_keys(media_key, info)
        self._aes = Cipher(algorithms.AES(keys.cipher_key), modes.CBC(keys.iv)).encryptor()
        self._pad = padding.PKCS7(128).padder()
        self._mac = hmac.new(keys.mac_key, keys.iv, hashlib.sha256)
        self._plain = hashlib.sha256()
        self._enc = hashlib.sha256()
        self._length = 0

    def _out(self, data: bytes) -> bytes:
        self._mac.update(data)
        self._enc.update(data)
        return data

    def update(self, chunk: bytes) -> bytes:
        self._plain.update(chunk)
        self._length += len(chunk)
        return self._out(self._aes.update(self._pad.update(chunk)))

    def finish(self) -> tuple[bytes, Sealed]:
        tail = self._out(self._aes.update(self._pad.finalize()) + self._aes.finalize())
        mac = self._mac.digest()[:MAC_LENGTH]
        self._enc.update(mac)
        return tail + mac, Sealed(media_key=self.media_key, file_sha256=self._plain.digest(),
                                  file_enc_sha256=self._enc.digest(), file_length=self._length)


class MediaVerifier:
    """Check a downloaded blob before any of it is decrypted: HMAC over IV || ciphertext, and the
    sha256 of the whole blob against `fileEncSha256` (when the message gives one)."""

    def __init__(self, keys: MediaKeys, file_enc_sha256: bytes | None) -> None:
        self._mac = hmac.new(keys.mac_key, keys.iv, hashlib.sha256)
        self._enc = hashlib.sha256()
        self._expected_enc = file_enc_sha256
        self._tail = b""
        self.size = 0

    def update(self, chunk: bytes) -> bytes:
        """Take the next bytes of the blob; returns those now known to be ciphertext (not the MAC)."""
        self._enc.update(chunk)
        self.size += len(chunk)
        data = self._tail + chunk
        body = data[:-MAC_LENGTH]
        self._mac.update(body)
        self._tail = data[-MAC_LENGTH:]
        return body

    def finish(self) -> None:
        if self.size < MAC_LENGTH + BLOCK or (self.size - MAC_LENGTH) % BLOCK:
            raise MediaCorrupt(f"media corrupt: the blob is {self.size} bytes, not AES blocks plus a MAC")
        if not hmac.compare_digest(self._mac.digest()[:MAC_LENGTH], self._tail):
            raise MediaCorrupt("media corrupt: the HMAC of the downloaded blob does not match its media key")
        if self._expected_enc and not hmac.compare_digest(self._enc.digest(), self._expected_enc):
            raise MediaCorrupt("media corrupt: the sha256 of the downloaded blob differs from fileEncSha256")


class MediaDecryptor:
    """Decrypt a blob chunk by chunk (the trailing MAC is dropped), checking the plaintext's sha256
    against `fileSha256` in `finish()`. Its output is not to be used before `MediaVerifier.finish`
    and `finish()` both passed."""

    def __init__(self, keys: MediaKeys, ciphertext_length: int, file_sha256: bytes | None) -> None:
        self._aes = Cipher(algorithms.AES(keys.cipher_key), modes.CBC(keys.iv)).decryptor()
        self._unpad = padding.PKCS7(128).unpadder()
        self._left = ciphertext_length
        self._plain = hashlib.sha256()
        self._expected = file_sha256

    def update(self, chunk: bytes) -> bytes:
        chunk = chunk[: max(self._left, 0)]
        self._left -= len(chunk)
        out = self._unpad.update(self._aes.update(chunk))
        self._plain.update(out)
        return out

    def finish(self) -> bytes:
        try:
            out = self._unpad.update(self._aes.finalize()) + self._unpad.finalize()
        except ValueError as exc:
            raise MediaCorrupt(f"media corrupt: bad padding after decryption ({exc})") from None
        self._plain.update(out)
        if self._expected and not hmac.compare_digest(self._plain.digest(), self._expected):
            raise MediaCorrupt("media corrupt: the sha256 of the decrypted file differs from fileSha256")
        return out
