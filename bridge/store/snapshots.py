"""Content-addressed, immutable snapshots of session auth folders (restic's shape, tiny scale).

Why: a monitor script once `rm -rf`ed an auth folder and every tenant had to scan a QR again.
A snapshot is the way back. Its design follows restic (doc/design.rst):

- Objects: every file's bytes are stored once under `.bridge/objects/<sha[:2]>/<sha>` (sha256 of the
  bytes), read-only (0444), never rewritten. Identical files across snapshots and sessions share
  one object, so ten snapshots of an unchanged session cost one copy (`dedup_stats`).
- Manifests: `.bridge/snapshots/<session>/<id>.json` (0444) lists every file with size and sha256
  and references objects only. Ids sort by creation time.
- `verify` re-hashes every referenced object and names the exact path of each missing or corrupt
  one. `restore` builds the folder in a staging dir, verifies it, then swaps it in with renames;
  the folder it replaces is snapshotted first and moved under `.bridge/replaced/`, never deleted.
- Deletion happens only in `prune`, an explicit act with a keep-policy that by default never
  drops the newest snapshot or any snapshot holding registered creds.

Snapshots only read a session folder; the only writer of a session folder here is `restore`.
All of this is synchronous file logic; async callers use `asyncio.to_thread`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import hashlib
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from bridge import metrics
from bridge.errors import CredsCorruptError, ErrorCode, HostileNameError, SnapshotError
from bridge.store.adopt import read_adopted, session_folder
from bridge.store.creds import is_registered, validate_creds_text
from bridge.store.creds_history import CredsHistory, linked_creds_of
from bridge.store.durable import explain_os_error, fsync_dir, make_dirs, remove, store_errors, write_temp
from bridge.store.identity import Identity, identity_of
from bridge.store.layout import (
    BRIDGE_DIR_NAME,
    CREDS_FILE,
    is_bridge_private,
    parse_key_file_name,
    validate_session_id,
)
from bridge.store.lock import RepositoryLock

log = logging.getLogger(__name__)

OBJECTS = "objects"
SNAPSHOTS = "snapshots"
STAGING = "staging"
REPLACED = "replaced"
MANIFEST_FORMAT = 1
#: Threads that write and fsync objects/staged files in parallel (fsync latency, not CPU, is the cost).
FSYNC_WORKERS = 16


class FileEntry(msgspec.Struct, frozen=True):
    """One file of a snapshot: its name in the session folder, size in bytes and sha256 (hex)."""

    name: str
    size: int
    sha256: str


class SnapshotManifest(msgspec.Struct, frozen=True):
    """An immutable record of one session folder at one moment; references objects only."""

    id: str
    session: str
    created_at: float
    reason: str
    registered: bool
    files: list[FileEntry]
    source: str = ""
    format: int = MANIFEST_FORMAT

    @property
    def created_iso(self) -> str:
        """Creation time as ISO 8601 UTC, for humans."""
        return datetime.fromtimestamp(self.created_at, UTC).isoformat(timespec="seconds")

    @property
    def total_bytes(self) -> int:
        """Sum of the sizes of every file in the snapshot."""
        return sum(f.size for f in self.files)


class Problem(msgspec.Struct, frozen=True):
    """One thing `verify` found wrong: `kind` is missing, corrupt or bad_manifest."""

    kind: str
    path: str
    detail: str
    snapshots: list[str] = []


class VerifyReport(msgspec.Struct):
    """What `verify` checked and every problem found (exact paths)."""

    snapshots_checked: int = 0
    objects_checked: int = 0
    bytes_checked: int = 0
    problems: list[Problem] = []

    @property
    def ok(self) -> bool:
        """True when nothing is missing or corrupt."""
        return not self.problems


class KeepPolicy(msgspec.Struct, frozen=True):
    """Which snapshots `prune` keeps: the last N, the newest per day for D days, per ISO week for W."""

    last: int = 10
    daily: int = 7
    weekly: int = 4

    def keeps_anything(self) -> bool:
        """A policy keeping nothing is refused: it would delete every snapshot."""
        return self.last > 0 or self.daily > 0 or self.weekly > 0


class PruneReport(msgspec.Struct):
    """What `prune` kept, removed, and why it kept protected snapshots."""

    session: str
    kept: list[str] = []
    removed: list[str] = []
    protected: list[str] = []
    objects_removed: int = 0
    bytes_freed: int = 0
    dry_run: bool = False


class DedupStats(msgspec.Struct):
    """Logical bytes referenced by all manifests vs bytes actually stored as objects."""

    snapshots: int
    files_referenced: int
    logical_bytes: int
    objects: int
    stored_bytes: int

    @property
    def ratio(self) -> float:
        """logical / stored (1.0 = no sharing; 10.0 = ten references per stored byte)."""
        return self.logical_bytes / self.stored_bytes if self.stored_bytes else 1.0


class RestoreOutcome(msgspec.Struct):
    """Result of a restore: what was restored, the safety snapshot, where the old folder went."""

    restored: SnapshotManifest
    folder: str
    pre_restore_snapshot: str | None
    replaced_path: str | None
    #: Key files in the folder before the restore, and in it after (the snapshot's).
    keys_before: int = 0
    keys_after: int = 0


ManifestList = list[SnapshotManifest]
ShaList = list[str]
#: sha256 -> the `session/id:file` entries that reference it.
ObjectRefs = dict[str, list[str]]
_MANIFEST_DECODER = msgspec.json.Decoder(SnapshotManifest)


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of `data`: the name of its object."""
    return hashlib.sha256(data).hexdigest()


def write_file_once(path: Path, data: bytes, mode: int = 0o444) -> None:
    """Durably create (or replace) `path` with `data` and `mode` via durable's temp+fsync+rename.

    The file appears whole or not at all; a half-written object or manifest is never visible.
    """
    make_dirs(path.parent)
    try:
        tmp = write_temp(path.parent, data, mode)
    except OSError as exc:
        raise explain_os_error(exc, path, "writing") from exc
    try:
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise explain_os_error(exc, path, "renaming into") from exc


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with renameat2(RENAME_EXCHANGE); False if unsupported here."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    func = getattr(libc, "renameat2", None)
    if func is None:
        return False
    res = func(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if res == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


class Snapshots:
    """The snapshot repository under `auth_root/.bridge/`; one instance may serve many sessions."""

    def __init__(self, auth_root: Path, *, clock: Callable[[], float] = time.time) -> None:
        """`clock` gives snapshot times (unix seconds); tests pass one to build a history."""
        self.auth_root = Path(auth_root)
        self._clock = clock
        self.bridge_dir = self.auth_root / BRIDGE_DIR_NAME
        self.objects_dir = self.bridge_dir / OBJECTS
        self.snapshots_dir = self.bridge_dir / SNAPSHOTS

    # ----- objects -------------------------------------------------------------------------
    def object_path(self, sha: str) -> Path:
        """Where the object with this sha256 lives."""
        return self.objects_dir / sha[:2] / sha

    def put_object(self, data: bytes) -> str:
        """Store `data` once (0444) and return its sha256 (see `put_objects`)."""
        return self.put_objects([data])[0]

    def put_objects(self, blobs: Sequence[bytes], *, fresh: list[str] | None = None) -> list[str]:
        """Store each blob once (0444); return their sha256s in order. Durable when it returns.

        Existing healthy objects are reused. One whose bytes no longer hash to its name (bit rot)
        is replaced by the good bytes, since the name says exactly what they must be. New objects
        are written and fsynced in parallel and each object folder is fsynced once (group commit),
        so a first snapshot of thousands of keys costs a few fsync rounds, not thousands.
        The shas of objects that did not exist before are appended to `fresh` before any is
        written, so a caller can take back what a failed call may have left (`_discard`).
        """
        shas = [sha256_hex(data) for data in blobs]
        todo: dict[str, bytes] = {}
        for sha, data in zip(shas, blobs, strict=True):
            state = self._object_state(sha)
            if state != "ok":
                todo[sha] = data
                if state == "missing" and fresh is not None:
                    fresh.append(sha)
        if not todo:
            return shas
        folders = {self.object_path(sha).parent for sha in todo}
        try:
            created_root = not self.objects_dir.exists()
            new_folders = [f for f in folders if not f.exists()]
            for folder in folders:
                folder.mkdir(parents=True, exist_ok=True)
            if created_root:
                fsync_dir(self.bridge_dir)
            if new_folders or created_root:
                fsync_dir(self.objects_dir)
            with ThreadPoolExecutor(max_workers=min(FSYNC_WORKERS, len(todo))) as pool:
                list(pool.map(self._write_object, todo.items()))
                list(pool.map(fsync_dir, folders))
        except OSError as exc:
            raise explain_os_error(exc, Path(exc.filename or self.objects_dir), "storing object") from exc
        return shas

    def _object_state(self, sha: str) -> str:
        """`ok`, `missing`, or `corrupt` (bytes that no longer hash to the name: rewritten)."""
        path = self.object_path(sha)
        try:
            existing = path.read_bytes()
        except FileNotFoundError:
            return "missing"
        except OSError as exc:
            raise explain_os_error(exc, path, "reading") from exc
        if sha256_hex(existing) == sha:
            return "ok"
        log.warning("object %s was corrupt; rewriting it from a good copy", path)
        return "corrupt"

    def _discard(self, shas: Sequence[str]) -> int:
        """Remove objects a failed snapshot wrote, unless a manifest references them by now.

        Runs under the exclusive repository lock, so a concurrent snapshot that reused one of
        them has either written its manifest (the object stays) or not started yet. Returns how
        many were removed; leaves everything when any manifest is unreadable.
        """
        removed = 0
        with RepositoryLock(self.bridge_dir, exclusive=True):
            referenced = self._referenced()
            if referenced is None:
                return 0
            folders: set[Path] = set()
            for sha in set(shas) - referenced:
                path = self.object_path(sha)
                if remove(path, sync_dir=False):
                    removed += 1
                    folders.add(path.parent)
            for folder in folders:
                with store_errors(folder, "syncing the folder of"):
                    fsync_dir(folder)
        if removed:
            log.warning("removed %d object(s) a failed snapshot had written", removed)
        return removed

    def _referenced(self) -> set[str] | None:
        """Every object sha some manifest references; None if any manifest is unreadable."""
        referenced: set[str] = set()
        for path in self._iter_manifest_files():
            try:
                referenced.update(f.sha256 for f in self.load_manifest(path).files)
            except SnapshotError as exc:
                log.error("not removing any object: %s", exc)
                return None
        return referenced

    def _write_object(self, item: tuple[str, bytes]) -> None:
        sha, data = item
        path = self.object_path(sha)
        tmp = write_temp(path.parent, data, 0o444)
        try:
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise

    def read_object(self, sha: str) -> bytes:
        """The bytes of an object, checked against its name; raises SnapshotError naming the path."""
        path = self.object_path(sha)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise SnapshotError(f"object {path} is missing; restore from another snapshot or a backup") from None
        except OSError as exc:
            raise explain_os_error(exc, path, "reading", error_type=SnapshotError) from exc
        if sha256_hex(data) != sha:
            raise SnapshotError(f"object {path} is corrupt (sha256 mismatch); use another snapshot or a backup")
        return data

    # ----- manifests -----------------------------------------------------------------------
    def _session_dir(self, session_id: str) -> Path:
        return self.snapshots_dir / validate_session_id(session_id)

    def manifest_path(self, manifest: SnapshotManifest) -> Path:
        """Where a manifest is stored."""
        return self._session_dir(manifest.session) / f"{manifest.id}.json"

    def _new_id(self, session_id: str) -> tuple[str, float]:
        """A time-sortable id, strictly after the session's newest existing one."""
        now = self._clock()
        newest = self._newest_created(session_id)
        if newest is not None and now <= newest:
            now = newest + 1e-6
        stamp = datetime.fromtimestamp(now, UTC)
        return f"{stamp:%Y%m%dT%H%M%S}{stamp.microsecond:06d}Z-{secrets.token_hex(3)}", now

    def _newest_created(self, session_id: str) -> float | None:
        found = self.list(session_id)
        return found[0].created_at if found else None

    def _iter_manifest_files(self, session_id: str | None = None) -> Iterator[Path]:
        with store_errors(self.snapshots_dir, "listing", error_type=SnapshotError):
            if session_id is not None:
                folders = [self._session_dir(session_id)]
            elif self.snapshots_dir.is_dir():
                folders = sorted(p for p in self.snapshots_dir.iterdir() if p.is_dir())
            else:
                folders = []
            found = [
                sorted(p for p in folder.iterdir() if p.suffix == ".json" and not p.name.startswith("."))
                for folder in folders
                if folder.is_dir()
            ]
        for names in found:
            yield from names

    def load_manifest(self, path: Path) -> SnapshotManifest:
        """Decode one manifest file; raises SnapshotError naming it if unreadable."""
        try:
            return _MANIFEST_DECODER.decode(path.read_bytes())
        except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise SnapshotError(f"manifest {path} is unreadable ({exc}); run `verify`") from exc

    def sessions(self) -> list[str]:
        """Sessions that have at least one snapshot folder."""
        if not self.snapshots_dir.is_dir():
            return []
        found = []
        for path in self.snapshots_dir.iterdir():
            if path.is_dir() and not path.name.startswith("."):
                try:
                    found.append(validate_session_id(path.name))
                except HostileNameError:
                    log.warning("ignoring %s: not a valid session id", path)
        return sorted(found)

    def live_sessions(self) -> list[str]:
        """Sessions with a folder now: `AUTH_ROOT/<id>` holding creds.json, plus adopted folders."""
        found = set(read_adopted(self.auth_root).sessions)
        if self.auth_root.is_dir():
            for path in self.auth_root.iterdir():
                if not path.name.startswith(".") and (path / CREDS_FILE).is_file():
                    try:
                        found.add(validate_session_id(path.name))
                    except HostileNameError:
                        continue
        return sorted(found)

    def list(self, session_id: str) -> list[SnapshotManifest]:
        """Every readable snapshot of a session, newest first (unreadable ones are logged)."""
        found: list[SnapshotManifest] = []
        for path in self._iter_manifest_files(session_id):
            try:
                found.append(self.load_manifest(path))
            except SnapshotError as exc:
                log.warning("%s", exc)
        found.sort(key=lambda m: (m.created_at, m.id), reverse=True)
        return found

    def get(self, session_id: str, snapshot_id: str) -> SnapshotManifest:
        """One snapshot by id (a unique prefix is accepted); raises SnapshotError if unknown."""
        matches = [m for m in self.list(session_id) if m.id == snapshot_id]
        if not matches:
            matches = [m for m in self.list(session_id) if m.id.startswith(snapshot_id)]
        if len(matches) != 1:
            what = "is ambiguous" if matches else "does not exist"
            raise SnapshotError(
                f"snapshot {snapshot_id!r} of session {session_id!r} {what}; list them with `snapshots {session_id}`",
                code="snapshot_not_found" if not matches else "snapshot_ambiguous",
            )
        return matches[0]

    def latest(self, session_id: str, *, registered: bool = False) -> SnapshotManifest | None:
        """The newest snapshot (with registered creds if asked), or None."""
        for manifest in self.list(session_id):
            if manifest.registered or not registered:
                return manifest
        return None

    def latest_good(self, session_id: str, *, registered: bool = False) -> SnapshotManifest | None:
        """The newest snapshot whose every object is intact and whose creds.json validates
        (and, with `registered`, whose creds belong to a linked device, judged from the creds
        themselves: manifests written before "registered" meant linked may say so wrongly)."""
        for manifest in self.list(session_id):
            if registered and not manifest.registered:
                continue
            creds = self._good_creds(manifest)
            if creds is not None and (not registered or is_registered(creds)):
                return manifest
        return None

    def _good_creds(self, manifest: SnapshotManifest) -> dict[str, Any] | None:
        """The snapshot's creds if every object is intact and creds.json validates, else None."""
        creds: dict[str, Any] | None = None
        try:
            for entry in manifest.files:
                data = self.read_object(entry.sha256)
                if entry.name == CREDS_FILE:
                    creds = validate_creds_text(data.decode("utf-8"))
        except (SnapshotError, CredsCorruptError, UnicodeDecodeError):
            return None
        return creds

    def newest_intact_creds(self, session_id: str, identity: Identity) -> tuple[str, str] | None:
        """(creds text, where it came from) of the newest valid, registered creds of `identity`.

        Searches the session's creds history first (normally the creds last saved), then the
        creds of its snapshots newest first (objects checked against their hash). What the monitor
        puts back for creds-only damage, leaving every key file in place.
        """
        history = CredsHistory(self.bridge_dir, validate_session_id(session_id))
        found = history.newest_intact(identity)
        if found is not None:
            return found[0], f"creds history {found[1]}"
        for manifest in self.list(session_id):
            entry = next((f for f in manifest.files if f.name == CREDS_FILE), None)
            if entry is None:
                continue
            try:
                data = self.read_object(entry.sha256)
            except SnapshotError as exc:
                log.warning("%s", exc)
                continue
            if linked_creds_of(data, identity) is not None:
                return data.decode("utf-8"), f"snapshot {manifest.id} ({manifest.reason}, {manifest.created_iso})"
        return None

    # ----- create --------------------------------------------------------------------------
    def session_folder(self, session_id: str) -> Path:
        """The session's auth folder: `auth_root/<id>`, or the external path it was adopted at."""
        return session_folder(self.auth_root, session_id)

    def hook_for(self, session_id: str) -> Callable[[str], SnapshotManifest]:
        """`create` bound to one session: what sessions pass as AuthStore's `before_creds_downgrade`."""
        validate_session_id(session_id)
        return functools.partial(self.create, session_id)

    def create(self, session_id: str, reason: str = "manual") -> SnapshotManifest:
        """Snapshot the session folder now (read-only); returns the stored manifest.

        This is what sessions pass as AuthStore's `before_creds_downgrade`. Every regular top-level
        file except bridge-private dot names is captured. Raises SnapshotError if the folder is
        missing or unreadable.
        """
        folder = self.session_folder(session_id)
        if not folder.is_dir():
            raise SnapshotError(
                f"cannot snapshot session {session_id!r}: {folder} is not a folder; restore it with `restore`",
                code="session_folder_missing",
            )
        fresh: list[str] = []
        try:
            return self._create(session_id, reason, folder, fresh)
        except BaseException as exc:
            if fresh:
                try:
                    self._discard(fresh)
                except Exception as cleanup:
                    log.error("could not remove the objects of a failed snapshot: %s", cleanup)
            if isinstance(exc, OSError):
                raise explain_os_error(exc, folder, "snapshotting", error_type=SnapshotError) from exc
            raise

    def _create(self, session_id: str, reason: str, folder: Path, fresh: ShaList) -> SnapshotManifest:
        with RepositoryLock(self.bridge_dir, exclusive=False):
            contents: dict[str, bytes] = {}
            with store_errors(folder, "reading for a snapshot", error_type=SnapshotError):
                for path in sorted(folder.iterdir()):
                    if is_bridge_private(path.name):
                        continue
                    if not path.is_file() or path.is_symlink():
                        log.warning("snapshot of %s skips %s: not a regular file", session_id, path)
                        continue
                    contents[path.name] = path.read_bytes()
            shas = self.put_objects(list(contents.values()), fresh=fresh)
            files = [
                FileEntry(name=name, size=len(data), sha256=sha)
                for (name, data), sha in zip(contents.items(), shas, strict=True)
            ]
            registered = CREDS_FILE in contents and _creds_registered(contents[CREDS_FILE])
            snap_id, created = self._new_id(session_id)
            manifest = SnapshotManifest(
                id=snap_id,
                session=session_id,
                created_at=created,
                reason=reason,
                registered=registered,
                files=files,
                source=str(folder),
            )
            path = self.manifest_path(manifest)
            new_folder = not path.parent.exists()
            write_file_once(path, msgspec.json.encode(manifest))
            if new_folder:
                fsync_dir(path.parent.parent)
        metrics.SNAPSHOTS_TOTAL.labels(reason=reason).inc()
        metrics.SNAPSHOT_LAST_TIMESTAMP.labels(session=session_id).set(created)
        log.info("snapshot %s of %s (%s): %d files", snap_id, session_id, reason, len(files))
        return manifest

    def create_if_due(self, session_id: str, max_age: float, reason: str) -> SnapshotManifest | None:
        """Snapshot only if the newest snapshot is older than `max_age` seconds (or there is none).

        For the scheduled snapshot (`BRIDGE_SNAPSHOT_INTERVAL`) and the one on creds change
        (`BRIDGE_SNAPSHOT_MIN_INTERVAL`): callers decide when to ask, this decides whether it is due.
        """
        newest = self.latest(session_id)
        if newest is not None and self._clock() - newest.created_at < max_age:
            return None
        return self.create(session_id, reason=reason)

    # ----- verify --------------------------------------------------------------------------
    def verify(self, snapshot: SnapshotManifest | None = None, *, session_id: str | None = None) -> VerifyReport:
        """Re-hash every object referenced by `snapshot`, by a session's snapshots, or by all.

        Each missing or corrupt object is reported once with its exact path and the snapshots that
        reference it; unreadable manifests are reported too. Holds the shared repository lock, so
        a concurrent prune cannot make objects look missing.
        """
        report = VerifyReport(problems=[])
        with RepositoryLock(self.bridge_dir, exclusive=False):
            manifests: list[SnapshotManifest] = []
            if snapshot is not None:
                manifests = [snapshot]
            else:
                for path in self._iter_manifest_files(session_id):
                    try:
                        manifests.append(self.load_manifest(path))
                    except SnapshotError as exc:
                        report.problems.append(Problem(kind="bad_manifest", path=str(path), detail=str(exc)))
            refs: ObjectRefs = {}
            sizes: dict[str, int] = {}
            for manifest in manifests:
                for entry in manifest.files:
                    refs.setdefault(entry.sha256, []).append(f"{manifest.session}/{manifest.id}:{entry.name}")
                    sizes[entry.sha256] = entry.size
            report.snapshots_checked = len(manifests)
            self._check_objects(refs, sizes, report)
        return report

    def _check_objects(self, refs: ObjectRefs, sizes: dict[str, int], report: VerifyReport) -> None:
        for sha in sorted(refs):
            path = self.object_path(sha)
            report.objects_checked += 1
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                report.problems.append(Problem("missing", str(path), "object file does not exist", refs[sha]))
                continue
            except OSError as exc:
                report.problems.append(Problem("missing", str(path), f"unreadable: {exc.strerror}", refs[sha]))
                continue
            report.bytes_checked += len(data)
            if sha256_hex(data) != sha or len(data) != sizes[sha]:
                detail = f"sha256 {sha256_hex(data)} size {len(data)}; expected {sha} size {sizes[sha]}"
                report.problems.append(Problem("corrupt", str(path), detail, refs[sha]))

    # ----- restore -------------------------------------------------------------------------
    def restore(self, session_id: str, snapshot_id: str) -> SnapshotManifest:
        """Restore a snapshot into the session folder; returns the restored manifest.

        The caller guarantees the session is stopped. See `restore_detailed` for the steps.
        """
        return self.restore_detailed(session_id, snapshot_id).restored

    def restore_detailed(
        self, session_id: str, snapshot_id: str, *, refuse_fewer_keys: bool = False
    ) -> RestoreOutcome:
        """Stage, verify, snapshot what is there now, then swap the staged folder in.

        Only the snapshot's files end up in the folder. The folder replaced is snapshotted (reason
        `pre-restore`) and moved under `.bridge/replaced/`, never deleted; snapshots and objects are
        never touched. Works when the session folder is gone entirely. Refuses (SnapshotError,
        nothing changed) when any object is missing or corrupt.

        The outcome counts key files before and after (`keys_before`, `keys_after`). With
        `refuse_fewer_keys`, a restore that would leave fewer key files than the folder holds is
        refused (`restore_loses_keys`, nothing changed) unless the folder's creds are valid creds
        of another identity (then its keys are not this account's anyway).
        """
        manifest = self.get(session_id, snapshot_id)
        target = self.session_folder(session_id)
        with store_errors(target, "restoring"):
            keys_before = count_key_files(target)
            keys_after = sum(1 for f in manifest.files if parse_key_file_name(f.name) is not None)
            if refuse_fewer_keys and keys_after < keys_before and not self._other_identity(target, manifest):
                raise SnapshotError(
                    f"restoring snapshot {manifest.id} of session {session_id!r} would leave {keys_after} key "
                    f"files where {target} holds {keys_before} of the same account; nothing was changed. "
                    "Repair creds.json alone, or restore this snapshot on purpose without the check",
                    code=ErrorCode.RESTORE_LOSES_KEYS,
                )
            outcome = self._restore(session_id, manifest, target)
        outcome.keys_before, outcome.keys_after = keys_before, keys_after
        return outcome

    def _other_identity(self, folder: Path, manifest: SnapshotManifest) -> bool:
        """True when `folder` holds valid creds of another identity than the snapshot's creds."""
        entry = next((f for f in manifest.files if f.name == CREDS_FILE), None)
        try:
            here = validate_creds_text((folder / CREDS_FILE).read_text(encoding="utf-8"))
            there = validate_creds_text(self.read_object(entry.sha256).decode("utf-8")) if entry else None
        except (OSError, UnicodeDecodeError, CredsCorruptError, SnapshotError):
            return False
        return there is not None and not identity_of(here).same_account(identity_of(there))

    def _restore(self, session_id: str, manifest: SnapshotManifest, target: Path) -> RestoreOutcome:
        staging_root, replaced_root = self._work_dirs(target)
        staging = staging_root / f"{session_id}-{manifest.id}-{secrets.token_hex(3)}"
        staging.mkdir(parents=True, mode=0o700)
        try:
            with RepositoryLock(self.bridge_dir, exclusive=False):
                self._build_staging(manifest, staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        pre_id: str | None = None
        replaced: Path | None = None
        if target.is_dir() and any(not is_bridge_private(p.name) for p in target.iterdir()):
            pre_id = self.create(session_id, reason="pre-restore").id
        replaced_root.mkdir(parents=True, exist_ok=True, mode=0o700)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() or target.is_symlink():
            replaced = replaced_root / f"{session_id}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
            if _exchange(staging, target):
                os.rename(staging, replaced)
            else:
                os.rename(target, replaced)
                os.rename(staging, target)
            fsync_dir(replaced_root)
        else:
            os.rename(staging, target)
        fsync_dir(target.parent)
        fsync_dir(staging_root)
        log.warning(
            "restored %s of %s into %s (previous folder: %s)", manifest.id, session_id, target, replaced or "none"
        )
        return RestoreOutcome(
            restored=manifest,
            folder=str(target),
            pre_restore_snapshot=pre_id,
            replaced_path=str(replaced) if replaced else None,
        )

    def _work_dirs(self, target: Path) -> tuple[Path, Path]:
        """Staging and replaced folders on the same file system as `target`, so renames work.

        Normally `.bridge/staging` and `.bridge/replaced`; for an adopted folder on another file
        system, hidden siblings of the folder are used instead.
        """
        self.bridge_dir.mkdir(parents=True, exist_ok=True)
        parent = target.parent if target.parent.exists() else self.auth_root
        if os.stat(parent).st_dev == os.stat(self.bridge_dir).st_dev:
            return self.bridge_dir / STAGING, self.bridge_dir / REPLACED
        return parent / f"{BRIDGE_DIR_NAME}-staging", parent / f"{BRIDGE_DIR_NAME}-replaced"

    def _build_staging(self, manifest: SnapshotManifest, staging: Path) -> None:
        for entry in manifest.files:
            if "/" in entry.name or is_bridge_private(entry.name) or entry.name in ("", "..", "."):
                raise SnapshotError(f"snapshot {manifest.id} names an unsafe file {entry.name!r}; refusing")
        blobs = {entry.name: self.read_object(entry.sha256) for entry in manifest.files}

        def stage(item: tuple[str, bytes]) -> None:
            fd = os.open(staging / item[0], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                view = memoryview(item[1])
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)

        if blobs:
            with ThreadPoolExecutor(max_workers=min(FSYNC_WORKERS, len(blobs))) as pool:
                list(pool.map(stage, blobs.items()))
        fsync_dir(staging)
        for entry in manifest.files:
            data = (staging / entry.name).read_bytes()
            if sha256_hex(data) != entry.sha256 or len(data) != entry.size:
                raise SnapshotError(f"staged {entry.name} does not match snapshot {manifest.id}; disk trouble?")
        staged = {p.name for p in staging.iterdir()}
        if staged != {f.name for f in manifest.files}:
            raise SnapshotError(f"staging folder {staging} does not hold exactly the snapshot's files")

    # ----- prune ---------------------------------------------------------------------------
    def plan_prune(
        self, session_id: str, policy: KeepPolicy, *, force: bool = False
    ) -> tuple[ManifestList, ManifestList, ManifestList]:
        """(keep, remove, protected) for a session under `policy`; decides, deletes nothing."""
        if not policy.keeps_anything():
            raise SnapshotError(
                "refusing a keep-policy that keeps nothing; keep at least --keep-last 1", code="bad_policy"
            )
        snaps = self.list(session_id)
        keep_ids: set[str] = {m.id for m in snaps[: policy.last]}
        for fmt, count in (("%Y-%m-%d", policy.daily), ("%G-W%V", policy.weekly)):
            buckets: set[str] = set()
            for m in snaps:
                bucket = datetime.fromtimestamp(m.created_at, UTC).strftime(fmt)
                if bucket not in buckets and len(buckets) < count:
                    buckets.add(bucket)
                    keep_ids.add(m.id)
        protected: list[SnapshotManifest] = []
        if not force:
            for i, m in enumerate(snaps):
                if m.id not in keep_ids and (i == 0 or m.registered):
                    protected.append(m)
        protected_ids = {m.id for m in protected}
        keep = [m for m in snaps if m.id in keep_ids or m.id in protected_ids]
        remove = [m for m in snaps if m.id not in keep_ids and m.id not in protected_ids]
        return keep, remove, protected

    def prune(self, session_id: str, policy: KeepPolicy, force: bool = False, *, dry_run: bool = False) -> PruneReport:
        """Delete the snapshots `policy` does not keep, then every object no manifest references.

        Without `force`, the newest snapshot and every snapshot with registered creds are kept
        whatever the policy says. Objects are deleted only here, under the exclusive repository
        lock, and not at all while any manifest is unreadable (its references are unknown).
        """
        keep, remove, protected = self.plan_prune(session_id, policy, force=force)
        report = PruneReport(
            session=session_id,
            kept=[m.id for m in keep],
            removed=[m.id for m in remove],
            protected=[m.id for m in protected],
            dry_run=dry_run,
        )
        if dry_run:
            return report
        with RepositoryLock(self.bridge_dir, exclusive=True):
            for m in remove:
                self.manifest_path(m).unlink(missing_ok=True)
            fsync_dir(self._session_dir(session_id))
            report.objects_removed, report.bytes_freed = self._collect_garbage()
        log.warning("pruned %d snapshots of %s (%d objects)", len(remove), session_id, report.objects_removed)
        return report

    def _collect_garbage(self) -> tuple[int, int]:
        referenced = self._referenced()
        if referenced is None:
            return 0, 0
        removed = freed = 0
        for obj in self._iter_objects():
            if obj.name not in referenced:
                size = obj.stat().st_size
                obj.unlink()
                removed += 1
                freed += size
        return removed, freed

    def _iter_objects(self) -> Iterator[Path]:
        if not self.objects_dir.is_dir():
            return
        for sub in sorted(self.objects_dir.iterdir()):
            if sub.is_dir():
                yield from sorted(p for p in sub.iterdir() if p.is_file() and not p.name.startswith("."))

    # ----- stats ---------------------------------------------------------------------------
    def dedup_stats(self) -> DedupStats:
        """How much sharing the object store achieves across every snapshot of every session."""
        snapshots = files = logical = 0
        for path in self._iter_manifest_files():
            try:
                manifest = self.load_manifest(path)
            except SnapshotError:
                continue
            snapshots += 1
            files += len(manifest.files)
            logical += manifest.total_bytes
        objects = stored = 0
        for obj in self._iter_objects():
            objects += 1
            stored += obj.stat().st_size
        return DedupStats(snapshots, files, logical, objects, stored)


def count_key_files(folder: Path) -> int:
    """Signal key files (`<type>-<id>.json`) in a session folder; 0 when it is gone."""
    try:
        return sum(1 for name in os.listdir(folder) if parse_key_file_name(name) is not None)
    except FileNotFoundError:
        return 0


def _creds_registered(data: bytes) -> bool:
    try:
        return is_registered(validate_creds_text(data.decode("utf-8")))
    except (CredsCorruptError, UnicodeDecodeError):
        return False


class TrashReport(msgspec.Struct):
    """What `prune_trash` removed (or would remove) and how many bytes that freed."""

    removed: list[str]
    kept: int
    bytes_freed: int
    dry_run: bool


def prune_trash(
    bridge_dir: Path, max_age_days: float, session_id: str | None = None, *, dry_run: bool = False
) -> TrashReport:
    """Delete trashed key files older than `max_age_days` (explicit operator act only).

    Trash holds key files Baileys asked to delete, named `<time_ns>-<name>` by the AuthStore; the
    age comes from that stamp (else the file's mtime). A file named like creds is never deleted.
    """
    if max_age_days < 0:
        raise SnapshotError("--older-than must be zero or more days", code="bad_policy")
    trash_root = bridge_dir / "trash"
    cutoff = time.time() - max_age_days * 86400
    folders = [trash_root / validate_session_id(session_id)] if session_id else []
    if session_id is None and trash_root.is_dir():
        folders = sorted(p for p in trash_root.iterdir() if p.is_dir())
    report = TrashReport(removed=[], kept=0, bytes_freed=0, dry_run=dry_run)
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if not path.is_file() or path.name.startswith(".") or path.name.endswith(CREDS_FILE):
                report.kept += 1
                continue
            stamp, _, _rest = path.name.partition("-")
            age_from = int(stamp) / 1e9 if stamp.isdigit() else path.stat().st_mtime
            if age_from >= cutoff:
                report.kept += 1
                continue
            report.bytes_freed += path.stat().st_size
            report.removed.append(str(path))
            if not dry_run:
                path.unlink()
        if not dry_run and report.removed:
            fsync_dir(folder)
    return report
