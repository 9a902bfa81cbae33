"""Portable backups: one tar archive of snapshots and their objects, checkable on its own.

Why: snapshots live on the same disk as the auth folders; a lost disk or a wrong `rm -rf` on the
auth root takes both. A backup is one file an operator can copy anywhere and bring back.

Layout of `bridge-backup-<UTC time>.tar.gz`:
- `BACKUP.json` (first member): format, creation time, the snapshots inside, and the size and
  sha256 of every other member.
- `snapshots/<session>/<id>.json`: the snapshot manifests, byte for byte.
- `objects/<sha[:2]>/<sha>`: every object those manifests reference.
Beside it, `<archive>.sha256` holds the sha256 of the whole archive in `sha256sum` format, so
`sha256sum -c` works too.

`verify_backup` checks the archive checksum, then every member against BACKUP.json, every object
against its name, and that every manifest's objects are present. `import_backup` and
`restore_from_backup` refuse any archive that fails. Archives are read into memory and never
extracted with tarfile's extractall (no path can escape); auth folders are small.
"""

from __future__ import annotations

import hashlib
import io
import lzma
import re
import tarfile
import time
import zlib
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from bridge.errors import ErrorCode, SnapshotError
from bridge.store import durable
from bridge.store.layout import SESSION_ID
from bridge.store.snapshots import RestoreOutcome, SnapshotManifest, Snapshots, sha256_hex

BACKUP_MANIFEST = "BACKUP.json"
BACKUP_FORMAT = 1
CHECKSUM_SUFFIX = ".sha256"
MAX_MEMBER_BYTES = 64 << 20
_SNAPSHOT_MEMBER = re.compile(rf"snapshots/({SESSION_ID})/([A-Za-z0-9_.-]{{1,100}})\.json")
_OBJECT_MEMBER = re.compile(r"objects/([0-9a-f]{2})/([0-9a-f]{64})")


class MemberEntry(msgspec.Struct, frozen=True):
    """Size and sha256 of one archive member."""

    size: int
    sha256: str


class BackupManifest(msgspec.Struct):
    """`BACKUP.json`: what the archive holds and the checksum of every other member."""

    format: int
    created_at: float
    snapshots: list[str]
    members: dict[str, MemberEntry]


class BackupResult(msgspec.Struct):
    """Where `create_backup` wrote the archive and what it contains."""

    archive: str
    checksum_file: str
    sha256: str
    size: int
    snapshots: list[str]
    objects: int


class BackupReport(msgspec.Struct):
    """Result of `verify_backup`; `problems` empty means the archive is intact and complete."""

    archive: str
    snapshots: list[str] = []
    objects: int = 0
    problems: list[str] = []

    @property
    def ok(self) -> bool:
        """True when every checksum matched and nothing is missing."""
        return not self.problems


class _Contents(msgspec.Struct):
    manifests: dict[str, bytes]
    objects: dict[str, bytes]


def _tar_member(tar: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o444
    info.mtime = int(mtime)
    tar.addfile(info, io.BytesIO(data))


def create_backup(
    snapshots: Snapshots, dest_dir: Path, sessions: list[str] | None = None, *, all_snapshots: bool = False
) -> BackupResult:
    """Write one archive with the latest (or every) snapshot of the given (or every) session.

    Objects are read through `read_object`, so a corrupt object fails the backup (SnapshotError)
    instead of being copied into it. Raises SnapshotError when there is nothing to back up.
    """
    chosen: list[SnapshotManifest] = []
    for session in sessions if sessions is not None else snapshots.sessions():
        found = snapshots.list(session)
        if not found:
            raise SnapshotError(f"session {session!r} has no snapshot; take one with `snapshot {session}` first")
        chosen.extend(found if all_snapshots else found[:1])
    if not chosen:
        raise SnapshotError("there are no snapshots to back up; take one with `snapshot <session>` first")
    members: dict[str, bytes] = {}
    for manifest in chosen:
        members[f"snapshots/{manifest.session}/{manifest.id}.json"] = snapshots.manifest_path(manifest).read_bytes()
        for entry in manifest.files:
            name = f"objects/{entry.sha256[:2]}/{entry.sha256}"
            if name not in members:
                members[name] = snapshots.read_object(entry.sha256)
    now = time.time()
    header = BackupManifest(
        format=BACKUP_FORMAT,
        created_at=now,
        snapshots=[f"{m.session}/{m.id}" for m in chosen],
        members={n: MemberEntry(len(d), sha256_hex(d)) for n, d in sorted(members.items())},
    )
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        _tar_member(tar, BACKUP_MANIFEST, msgspec.json.format(msgspec.json.encode(header), indent=2), now)
        for name, data in sorted(members.items()):
            _tar_member(tar, name, data, now)
    blob = buffer.getvalue()
    digest = sha256_hex(blob)
    dest_dir = Path(dest_dir)
    durable.make_dirs(dest_dir)
    archive = dest_dir / f"bridge-backup-{datetime.fromtimestamp(now, UTC):%Y%m%dT%H%M%SZ}-{digest[:8]}.tar.gz"
    durable.atomic_write(archive, blob, mode=0o444)
    checksum = archive.with_name(archive.name + CHECKSUM_SUFFIX)
    durable.atomic_write(checksum, f"{digest}  {archive.name}\n".encode(), mode=0o444)
    return BackupResult(
        archive=str(archive),
        checksum_file=str(checksum),
        sha256=digest,
        size=len(blob),
        snapshots=header.snapshots,
        objects=sum(1 for n in members if n.startswith("objects/")),
    )


def _read_checksum(archive: Path, problems: list[str]) -> str | None:
    checksum = archive.with_name(archive.name + CHECKSUM_SUFFIX)
    try:
        text = checksum.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        problems.append(f"checksum file {checksum} is missing or unreadable; refusing an unverifiable archive")
        return None
    match = re.fullmatch(r"([0-9a-f]{64})\s+\*?(\S+)\s*", text)
    if not match:
        problems.append(f"checksum file {checksum} is not in sha256sum format")
        return None
    return match.group(1)


def _read_members(archive: Path, problems: list[str]) -> dict[str, bytes]:
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            for info in tar:
                if not info.isreg():
                    problems.append(f"member {info.name!r} is not a regular file")
                    continue
                if info.size > MAX_MEMBER_BYTES:
                    problems.append(f"member {info.name!r} is {info.size} bytes, over the {MAX_MEMBER_BYTES} limit")
                    continue
                if info.name in members:
                    problems.append(f"member {info.name!r} appears twice")
                    continue
                handle = tar.extractfile(info)
                members[info.name] = handle.read() if handle else b""
    except (OSError, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as exc:
        # a damaged compressed stream fails in the decompressor (zlib.error, not an OSError)
        problems.append(f"archive {archive} cannot be read as tar: {exc}")
    return members


def _check_members(members: dict[str, bytes], problems: list[str]) -> tuple[BackupManifest | None, _Contents]:
    contents = _Contents(manifests={}, objects={})
    try:
        header = msgspec.json.decode(members.pop(BACKUP_MANIFEST), type=BackupManifest)
    except KeyError:
        problems.append(f"{BACKUP_MANIFEST} is missing")
        return None, contents
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        problems.append(f"{BACKUP_MANIFEST} is unreadable: {exc}")
        return None, contents
    for name in sorted(set(header.members) - set(members)):
        problems.append(f"member {name} is listed in {BACKUP_MANIFEST} but missing")
    for name, data in sorted(members.items()):
        expected = header.members.get(name)
        if expected is None:
            problems.append(f"member {name} is not listed in {BACKUP_MANIFEST}")
            continue
        if sha256_hex(data) != expected.sha256 or len(data) != expected.size:
            problems.append(f"member {name} does not match its sha256 in {BACKUP_MANIFEST} (tampered or corrupt)")
            continue
        if (obj := _OBJECT_MEMBER.fullmatch(name)) is not None:
            if obj.group(2)[:2] != obj.group(1) or sha256_hex(data) != obj.group(2):
                problems.append(f"object {name} does not hash to its name")
            else:
                contents.objects[obj.group(2)] = data
        elif _SNAPSHOT_MEMBER.fullmatch(name):
            contents.manifests[name] = data
        else:
            problems.append(f"member {name!r} is not a snapshot or an object")
    return header, contents


def _decode_manifests(contents: _Contents, problems: list[str]) -> list[SnapshotManifest]:
    decoded: list[SnapshotManifest] = []
    for name, data in sorted(contents.manifests.items()):
        try:
            manifest = msgspec.json.decode(data, type=SnapshotManifest)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            problems.append(f"snapshot {name} is unreadable: {exc}")
            continue
        if name != f"snapshots/{manifest.session}/{manifest.id}.json":
            problems.append(f"snapshot {name} names session/id {manifest.session}/{manifest.id}")
            continue
        missing = [f.name for f in manifest.files if f.sha256 not in contents.objects]
        if missing:
            problems.append(f"snapshot {name} references objects absent from the archive: {', '.join(missing)}")
            continue
        decoded.append(manifest)
    return decoded


def _load(archive: Path) -> tuple[BackupReport, list[SnapshotManifest], _Contents]:
    archive = Path(archive)
    report = BackupReport(archive=str(archive), snapshots=[], problems=[])
    expected = _read_checksum(archive, report.problems)
    try:
        actual = hashlib.sha256(archive.read_bytes()).hexdigest()
    except OSError as exc:
        report.problems.append(f"archive {archive} cannot be read: {exc.strerror}")
        return report, [], _Contents(manifests={}, objects={})
    if expected is not None and actual != expected:
        report.problems.append(
            f"archive {archive} does not match its checksum file (sha256 {actual}, expected {expected})"
        )
    members = _read_members(archive, report.problems)
    _header, contents = _check_members(members, report.problems)
    manifests = _decode_manifests(contents, report.problems)
    report.snapshots = [f"{m.session}/{m.id}" for m in manifests]
    report.objects = len(contents.objects)
    return report, manifests, contents


def verify_backup(archive: Path) -> BackupReport:
    """Check an archive completely; never raises for a bad archive, lists the problems instead."""
    return _load(archive)[0]


def import_backup(snapshots: Snapshots, archive: Path) -> list[SnapshotManifest]:
    """Add an intact archive's objects and snapshots to the repository (existing ones are kept).

    Refuses (SnapshotError, nothing written) an archive with any problem, and a snapshot whose id
    already exists locally with different content.
    """
    report, manifests, contents = _load(archive)
    if not report.ok:
        raise SnapshotError(
            f"refusing backup {archive}: " + "; ".join(report.problems[:5]), code=ErrorCode.BACKUP_INVALID
        )
    for manifest in manifests:
        path = snapshots.manifest_path(manifest)
        data = contents.manifests[f"snapshots/{manifest.session}/{manifest.id}.json"]
        if path.exists() and path.read_bytes() != data:
            raise SnapshotError(f"snapshot {path} exists locally with different content; refusing to import over it")
    with snapshots.repo.shared_lock():
        snapshots.put_objects(list(contents.objects.values()))
        for manifest in manifests:
            if not snapshots.manifest_path(manifest).exists():
                data = contents.manifests[f"snapshots/{manifest.session}/{manifest.id}.json"]
                snapshots.manifests.write(manifest, data)
    return manifests


def restore_from_backup(
    snapshots: Snapshots, archive: Path, session_id: str, snapshot_id: str | None = None
) -> RestoreOutcome:
    """Import an intact archive, then restore the session from it (its newest snapshot by default).

    The caller guarantees the session is stopped, exactly as for `Snapshots.restore`.
    """
    imported = [m for m in import_backup(snapshots, archive) if m.session == session_id]
    if snapshot_id is None:
        if not imported:
            raise SnapshotError(f"backup {archive} holds no snapshot of session {session_id!r}")
        snapshot_id = max(imported, key=lambda m: (m.created_at, m.id)).id
    elif not any(m.id == snapshot_id for m in imported):
        raise SnapshotError(f"backup {archive} holds no snapshot {snapshot_id!r} of session {session_id!r}")
    return snapshots.restore_detailed(session_id, snapshot_id)
