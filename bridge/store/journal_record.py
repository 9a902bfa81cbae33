"""The journal's on-disk record: one `keys.set` or `creds.save` batch, framed and checksummed.

A record is a 28-byte header followed by the payload:

    magic "BJR1" | crc32 (4) | payload length (4) | seq (8) | acked_through (8) | payload

all little-endian. The crc covers everything after itself (length, seq, acked_through, payload),
so a torn or bit-flipped record never passes. `seq` numbers records 1, 2, 3... without gaps across
segments; a record whose seq is not the expected next one is stale and treated like damage.
`acked_through` is the highest seq that was already fsynced when this record was appended: it
lets recovery tell a torn, never-acknowledged tail (nothing after it claims it was acknowledged)
from an acknowledged record that the disk damaged later (a valid later record says it was).

The payload is a msgpack `Record`: the session, the exact bytes of each legacy file to write (the
JSON text Baileys' `BufferJSON.replacer` made) and the names to move to the trash. Checksum:
zlib's crc32 (in the standard library, ~4.6 GB/s here, i.e. ~17 us for a 100-key batch). crc32c
has the same 32-bit strength against torn writes and bit rot and is faster in hardware, but needs a
third-party package; sha256 defends against forgery, which is not the threat here (only the bridge
process can write these files).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping, Sequence
from typing import Final

import msgspec

from bridge.errors import StoreError
from bridge.store.layout import CREDS_FILE

MAGIC: Final = b"BJR1"
_HEADER: Final = struct.Struct("<4sIIQQ")
HEADER_SIZE: Final = _HEADER.size
_CRC_FROM: Final = 8
#: A header claiming a longer payload is damage (the IPC line limit keeps real batches far below).
MAX_PAYLOAD: Final = 256 * 1024 * 1024


class Record(msgspec.Struct, array_like=True, frozen=True):
    """One acknowledged batch of one session: exact file bytes to write, names to move to trash."""

    session: str
    writes: dict[str, bytes]
    trash: list[str]


def make_record(session: str, writes: Mapping[str, bytes], trash: Sequence[str]) -> Record:
    """A `Record`, refusing what the store's rules forbid (creds.json can never be trashed)."""
    if CREDS_FILE in trash:
        raise StoreError(f"session {session}: refused a batch that deletes {CREDS_FILE}; creds are never deleted")
    both = set(writes) & set(trash)
    if both:
        raise StoreError(f"session {session}: a batch both writes and deletes {sorted(both)}; refused")
    return Record(session=session, writes=dict(writes), trash=list(trash))


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Record)


def encode_payload(record: Record) -> bytes:
    """The msgpack bytes of `record`."""
    return _encoder.encode(record)


def decode_payload(payload: bytes) -> Record:
    """Inverse of `encode_payload`; raises msgspec.DecodeError on bytes that are not a Record."""
    return _decoder.decode(payload)


def frame(seq: int, acked_through: int, payload: bytes) -> bytes:
    """Header + payload, ready to append."""
    body = _HEADER.pack(MAGIC, 0, len(payload), seq, acked_through)[_CRC_FROM:] + payload
    return MAGIC + struct.pack("<I", zlib.crc32(body)) + body


class Frame(msgspec.Struct, frozen=True):
    """One valid record found by `scan`: its numbers, its payload and where it ends in the file."""

    seq: int
    acked_through: int
    payload: bytes
    end: int


class Damage(msgspec.Struct, frozen=True):
    """Where a scan stopped before the end of the data, and whether that loses acknowledged data.

    `acknowledged` is True when a valid record after the damage says (through `acked_through`) that
    the damaged record had been fsynced and acknowledged: the disk lost data, it was not a crash.
    """

    offset: int
    expected_seq: int
    bytes_after: int
    valid_after: int
    acknowledged: bool
    reason: str


class ScanResult(msgspec.Struct, frozen=True):
    frames: list[Frame]
    good_end: int
    damage: Damage | None


def _read_frame(data: bytes, pos: int) -> tuple[Frame | None, str]:
    if len(data) - pos < HEADER_SIZE:
        return None, "incomplete header"
    magic, crc, length, seq, acked = _HEADER.unpack_from(data, pos)
    if magic != MAGIC:
        return None, "no record marker"
    if length > MAX_PAYLOAD or pos + HEADER_SIZE + length > len(data):
        return None, "incomplete payload"
    end = pos + HEADER_SIZE + length
    if zlib.crc32(memoryview(data)[pos + _CRC_FROM : end]) != crc:
        return None, "checksum mismatch"
    return Frame(seq=seq, acked_through=acked, payload=bytes(data[pos + HEADER_SIZE : end]), end=end), ""


def scan(data: bytes, first_seq: int) -> ScanResult:
    """Every valid record from the start of `data`, stopping at the first one that is not valid.

    Records must carry seqs `first_seq, first_seq + 1, ...`. After a bad spot the rest is searched
    for valid records only to classify the damage (see `Damage`); none of them is returned.
    """
    frames: list[Frame] = []
    pos = 0
    expected = first_seq
    while pos < len(data):
        found, reason = _read_frame(data, pos)
        if found is not None and found.seq != expected:
            reason = f"sequence {found.seq} where {expected} was expected"
            found = None
        if found is None:
            return ScanResult(frames=frames, good_end=pos, damage=_classify(data, pos, expected, reason))
        frames.append(found)
        pos = found.end
        expected += 1
    return ScanResult(frames=frames, good_end=pos, damage=None)


def _classify(data: bytes, pos: int, expected: int, reason: str) -> Damage:
    valid_after = 0
    acknowledged = False
    probe = data.find(MAGIC, pos + 1)
    while probe != -1:
        found, _ = _read_frame(data, probe)
        if found is not None and found.seq > expected:
            valid_after += 1
            acknowledged = acknowledged or found.acked_through >= expected
            probe = data.find(MAGIC, found.end)
        else:
            probe = data.find(MAGIC, probe + 1)
    return Damage(
        offset=pos,
        expected_seq=expected,
        bytes_after=len(data) - pos,
        valid_after=valid_after,
        acknowledged=acknowledged,
        reason=reason,
    )
