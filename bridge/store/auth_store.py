"""`AuthStore`: one session's auth folder, byte-compatible with legacy `useMultiFileAuthState`.

This is the only code that writes a session's credentials. Node never touches the disk; its
`auth.load`, `auth.get`, `auth.set` and `creds.save` requests end here. Values arrive as the exact
JSON text Baileys' `BufferJSON.replacer` makes and are stored as exactly those bytes, so a folder the
bridge wrote reads back identically in a legacy Node process and vice versa.

What the store adds over legacy, and why:
- creds.json is never deleted, emptied, or replaced by text that fails `validate_creds_text`;
  a creds.json that exists but cannot be read is an error (`CredsCorruptError` naming the latest
  snapshot), never a reason to start fresh (legacy silently makes a new identity = new QR);
- replacing registered creds (linked: `creds.is_registered`) by unregistered ones, or by creds of another identity
  (different `signedIdentityKey`), first calls `before_creds_downgrade(reason)` (the snapshot hook;
  default: a plain copy into `.bridge/creds-backups/<session>/`), and aborts if that hook fails;
- a key set to null is moved to `.bridge/trash/<session>/`, never unlinked;
- every `keys.set` and `creds.save` is one record of the session's write-ahead journal
  (`bridge.store.journal`, the default `AuthBackend`): all or nothing across a crash, durable with
  one fdatasync before it is acknowledged; the legacy files follow by atomic rename, and
  `checkpoint()` makes the folder alone exact again (before stop, snapshot, restore, export).

The class is synchronous and thread-safe (one lock per store); `AsyncAuthStore` runs it in threads
so the event loop does not wait for the disk, except for one session's key batches while commits
are short (`bridge.store.inline`: there the hand-over to a thread cost more than the fsync).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from bridge.errors import CredsCorruptError, HostileNameError, StoreError
from bridge.metrics import STORE_ERRORS
from bridge.store import durable, group_commit
from bridge.store.creds import is_registered, parse_json_text, validate_creds, validate_creds_text
from bridge.store.creds_history import DEFAULT_KEEP, CredsHistory
from bridge.store.journal import AuthBackend, JournalBackend, Staged, open_session_backend
from bridge.store.layout import CREDS_FILE, BridgeDirs, key_file_name, parse_key_file_name, validate_session_id
from bridge.store.snapshots.manifests import ManifestStore, latest_good
from bridge.store.snapshots.objects import ObjectStore

log = logging.getLogger(__name__)

DowngradeHook = Callable[[str], object]
#: The reason passed to `before_creds_downgrade`.
DOWNGRADE_REASON: Final = "creds-downgrade"
_REASON: Final = re.compile(r"[A-Za-z0-9-]{1,40}")
#: The reason when registered creds are replaced by creds of another identity (new identity key).
IDENTITY_CHANGE_REASON: Final = "creds-identity-change"


class AuthStore:
    """The auth folder of one session (see module docstring for the guarantees).

    `folder` is created (mode 0700) if missing; `bridge_dir` is `AUTH_ROOT/.bridge`, which holds
    trash, creds backups, the journal and the snapshots named in error messages. `backend` is where
    the bytes go (default: the session's journal, opened here, which replays what a crash left);
    call `close()` when the session stops.
    """

    def __init__(
        self,
        folder: Path,
        *,
        session_id: str,
        bridge_dir: Path,
        before_creds_downgrade: DowngradeHook | None = None,
        creds_history_keep: int = DEFAULT_KEEP,
        backend: AuthBackend | None = None,
        keep_creds_history: bool = True,
    ) -> None:
        self.session_id = validate_session_id(session_id)
        self.folder = Path(folder)
        self.bridge_dir = Path(bridge_dir)
        dirs = BridgeDirs(self.bridge_dir)
        self.trash_dir = dirs.session_trash(self.session_id)
        self.creds_backup_dir = dirs.session_creds_backups(self.session_id)
        self.snapshot_dir = dirs.session_snapshots(self.session_id)
        self.creds_path = self.folder / CREDS_FILE
        self.history = CredsHistory(self.bridge_dir, self.session_id, creds_history_keep)
        self.keep_creds_history = keep_creds_history
        """False: the backend keeps the creds history itself (cluster mode: in the database, in the
        same transaction as each creds write), so nothing goes to `history` on this host's disk."""
        self._before_downgrade: DowngradeHook = before_creds_downgrade or self.backup_creds_copy
        self._lock = threading.RLock()
        with durable.store_errors(self.folder, "opening the session folder"):
            self._ensure_folder()
            durable.sweep_temp_files(self.folder)
        self.backend: AuthBackend = backend or open_session_backend(
            self.bridge_dir, self.session_id, self.folder, self.trash_dir
        )

    # ----- folder -------------------------------------------------------------------------
    def _ensure_folder(self) -> None:
        if self.folder.is_dir():
            return
        if self.folder.exists() or self.folder.is_symlink():
            raise StoreError(
                f"{self.folder} exists but is not a folder; move it aside so the session "
                f"{self.session_id} can keep its auth files there"
            )
        durable.make_dirs(self.folder)

    # ----- creds --------------------------------------------------------------------------
    def load_creds(self) -> str | None:
        """creds.json text, or None only when there is no creds.json at all.

        Raises `CredsCorruptError` naming the file and the snapshot to restore when the file
        exists but cannot be decoded or validated. When the storage fails (permission, I/O,
        read-only) it raises the classified `StoreError` instead: the file may be intact, and
        nothing should be restored over it.
        """
        with self._lock:
            try:
                raw = self.backend.read([CREDS_FILE])[CREDS_FILE]
            except StoreError as reason:
                STORE_ERRORS.labels(op="load_creds").inc()
                if durable.is_storage_fault(reason):
                    raise
                raise CredsCorruptError(
                    f"{reason} If the file itself is damaged: {self._restore_hint()}"
                ) from reason
            if raw is None:
                self._warn_if_orphan_keys()
                return None
            try:
                text = raw.decode("utf-8")
                validate_creds_text(text, source=str(self.creds_path))
            except (UnicodeDecodeError, CredsCorruptError) as exc:
                STORE_ERRORS.labels(op="load_creds").inc()
                raise CredsCorruptError(f"{exc}. {self._restore_hint()}") from exc
            return text

    def save_creds(self, text: str) -> None:
        """Replace creds.json with `text` after validating it (see module docstring)."""
        try:
            new = validate_creds_text(text, source=f"new creds for session {self.session_id}")
        except CredsCorruptError:
            STORE_ERRORS.labels(op="save_creds").inc()
            raise
        data = text.encode("utf-8")
        with self._lock:
            old_raw = self._read_creds()
            if old_raw == data:
                return
            old_valid = False
            if old_raw is not None:
                old = _parse_creds_quietly(old_raw)
                old_valid = old is not None and not validate_creds(old)
                if old is None:
                    log.warning("%s is unreadable; keeping a copy before replacing it", self.creds_path)
                    self._run_hook(self.backup_creds_copy, "replace-corrupt-creds")
                elif is_registered(old) and not is_registered(new):
                    log.warning("session %s: registered creds replaced by unregistered ones", self.session_id)
                    self._run_hook(self._before_downgrade, DOWNGRADE_REASON)
                elif is_registered(old) and old.get("signedIdentityKey") != new.get("signedIdentityKey"):
                    log.warning("session %s: registered creds replaced by another identity", self.session_id)
                    self._run_hook(self._before_downgrade, IDENTITY_CHANGE_REASON)
            kept = self._in_history(lambda names: self._keep_previous(old_raw if old_valid else None, names))
            self._commit({CREDS_FILE: data}, [], f"saving {self.creds_path}", "save_creds")
            if kept is not None:
                self._in_history(lambda names: self.history.add(data, durable_copy=False, names=names), kept)

    def _keep_previous(self, old_raw: bytes | None, names: list[str]) -> list[str]:
        """Durably keep valid creds about to be replaced, unless the history has them already."""
        if old_raw is not None and not self.history.contains(old_raw, names):
            self.history.add(old_raw, durable_copy=True, names=names)
        return names

    def _in_history(self, step: Callable[[list[str]], object], names: list[str] | None = None) -> list[str] | None:
        """Run one creds-history step on `names` (default: a fresh listing); None if it failed.

        The history never fails a save: refusing creds Node already uses would split the state
        in Node's memory from the one on disk, which costs more than a missing history entry.
        """
        if not self.keep_creds_history:
            return None
        try:
            if names is None:
                names = self.history.names()
            step(names)
        except StoreError as exc:
            STORE_ERRORS.labels(op="creds_history").inc()
            log.warning("session %s: creds history not updated: %s", self.session_id, exc)
            return None
        return names

    def _run_hook(self, hook: DowngradeHook, reason: str) -> None:
        try:
            hook(reason)
        except Exception as exc:
            STORE_ERRORS.labels(op="save_creds").inc()
            code = durable.fault_code(exc)
            raise StoreError(
                f"session {self.session_id}: could not keep a copy of the current creds before replacing them "
                f"({exc}); creds.json was NOT changed. Fix the cause (disk space, permissions of "
                f"{self.bridge_dir}) and retry.",
                code=code,
            ) from exc

    def backup_creds_copy(self, reason: str) -> Path | None:
        """Default downgrade hook: a durable copy of creds.json into `.bridge/creds-backups/<session>/`.

        The copy name carries the UTC time, the reason and a content hash, so copies never collide.
        """
        raw = self._read_creds()
        if raw is None:
            return None
        return self._keep_copy(raw, reason)

    def _keep_copy(self, raw: bytes, reason: str) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        target = self.creds_backup_dir / f"creds-{stamp}-{reason}-{hashlib.sha256(raw).hexdigest()[:12]}.json"
        durable.make_dirs(self.creds_backup_dir)
        durable.atomic_write(target, raw)
        log.info("session %s: kept a copy of creds.json at %s (%s)", self.session_id, target, reason)
        return target

    def restore_creds(self, text: str, *, reason: str) -> Path | None:
        """Repair: atomically put `text` back as creds.json; key files are not touched.

        The creds.json found (damaged, foreign, whatever it is) is first kept as evidence in
        `.bridge/creds-backups/<session>/creds-<UTC>-<reason>-<sha>.json`, whose path is returned
        (None when there was no creds.json or it already held `text`). `reason` names the repair
        in that file name (letters, digits, `-`). Refuses creds that fail `validate_creds_text`.
        """
        if not _REASON.fullmatch(reason):
            raise StoreError(f"restore reason {reason!r} must be 1-40 characters from a-z A-Z 0-9 -")
        validate_creds_text(text, source=f"creds to restore for session {self.session_id}")
        data = text.encode("utf-8")
        with self._lock:
            current = self._read_creds()
            if current == data:
                return None
            evidence = None if current is None else self._keep_copy(current, reason)
            self._commit({CREDS_FILE: data}, [], f"saving {self.creds_path}", "save_creds")
            self._in_history(lambda names: self.history.add(data, durable_copy=False, names=names))
        log.warning("session %s: creds.json restored (%s); evidence kept at %s", self.session_id, reason, evidence)
        return evidence

    # ----- keys ---------------------------------------------------------------------------
    def get_keys(self, key_type: str, ids: list[str]) -> dict[str, str | None]:
        """The exact JSON text stored for each id (None = absent or unreadable, as legacy reads it)."""
        names = {key_id: self._key_name(key_type, key_id) for key_id in ids}
        try:
            raws = self.backend.read(list(names.values()))
        except StoreError:
            STORE_ERRORS.labels(op="read").inc()
            raise
        result: dict[str, str | None] = {}
        for key_id, name in names.items():
            raw = raws[name]
            result[key_id] = None if raw is None else self._checked_key_text(name, raw)
        return result

    def set_keys(self, batch: Mapping[str, Mapping[str, str | None]]) -> None:
        """Apply one Baileys `keys.set`: write values, trash nulls, as one journal record.

        Everything is validated before anything is written: a hostile name or a value that is not
        JSON refuses the whole batch. Ids that the legacy escaping maps to the same file: last wins.
        """
        writes, deletes = self._key_ops(batch)
        if not writes and not deletes:
            return
        with self._lock:
            self._commit(writes, deletes, f"updating keys in {self.folder}", "set_keys")

    def stage_keys(self, batch: Mapping[str, Mapping[str, str | None]]) -> Staged | None:
        """`set_keys` in the journal's steps (`bridge.store.group_commit` runs many sessions' at once).

        Validates and appends the record; the caller must then `acknowledge_keys` the result before
        answering, and `Journal.materialise` it. None: nothing to write. Raises StoreError (nothing
        was appended) or TypeError when the backend is not a journal (`can_stage` says).
        """
        if not isinstance(self.backend, JournalBackend):
            raise TypeError(f"session {self.session_id}: the auth backend {type(self.backend).__name__} cannot stage")
        writes, deletes = self._key_ops(batch)
        if not writes and not deletes:
            return None
        with self._lock, self._commit_errors(f"updating keys in {self.folder}", "set_keys"):
            return self.backend.stage(writes, deletes)

    def acknowledge_keys(self, staged: Staged) -> None:
        """Wait until a `stage_keys` batch is durable and readable; raises StoreError if it never will be."""
        with self._commit_errors(f"updating keys in {self.folder}", "set_keys"):
            staged.journal.acknowledge(staged)

    @property
    def can_stage(self) -> bool:
        """True when `stage_keys` works: the backend is the session's journal."""
        return isinstance(self.backend, JournalBackend)

    def _key_ops(self, batch: Mapping[str, Mapping[str, str | None]]) -> tuple[dict[str, bytes], list[str]]:
        ops: dict[str, bytes | None] = {}
        for key_type, values in batch.items():
            for key_id, value in values.items():
                name = self._key_name(key_type, key_id)
                ops[name] = None if value is None else self._checked_value(key_type, key_id, value)
        writes = {name: data for name, data in ops.items() if data is not None}
        deletes = [name for name, data in ops.items() if data is None]
        return writes, deletes

    def list_keys(self) -> list[tuple[str, str]]:
        """`(type, escaped_id)` of every key file in the folder (see `parse_key_file_name`)."""
        found = []
        with durable.store_errors(self.folder, "listing"):
            names = self.backend.list_names()
        for name in names:
            parsed = parse_key_file_name(name)
            if parsed is not None:
                found.append(parsed)
        return found

    # ----- helpers ------------------------------------------------------------------------
    def _key_name(self, key_type: str, key_id: str) -> str:
        try:
            return key_file_name(key_type, key_id)
        except HostileNameError as exc:
            STORE_ERRORS.labels(op="hostile_name").inc()
            log.warning("session %s: %s", self.session_id, exc)
            raise

    def _checked_value(self, key_type: str, key_id: str, value: str) -> bytes | None:
        if not isinstance(value, str):
            raise StoreError(f"key {key_type}/{key_id!r}: value must be JSON text, got {type(value).__name__}")
        try:
            parsed = parse_json_text(value)
        except ValueError as exc:
            STORE_ERRORS.labels(op="set_keys").inc()
            raise StoreError(f"key {key_type}/{key_id!r}: value is not valid JSON ({exc}); batch refused") from exc
        # Legacy writes only truthy values; JSON null means "delete", exactly like a None.
        return None if parsed is None else value.encode("utf-8")

    def _checked_key_text(self, name: str, raw: bytes) -> str | None:
        try:
            text = raw.decode("utf-8")
            parse_json_text(text)
        except ValueError:
            STORE_ERRORS.labels(op="get_keys").inc()
            log.warning("session %s: key file %s is not valid JSON; treating it as absent", self.session_id, name)
            return None
        return text

    def _commit(self, writes: Mapping[str, bytes], trash: list[str], what: str, op: str) -> None:
        """One batch into the backend; its error names the legacy path the operator knows."""
        with self._commit_errors(what, op):
            self.backend.commit(writes, trash)

    @contextmanager
    def _commit_errors(self, what: str, op: str) -> Iterator[None]:
        try:
            yield
        except StoreError as exc:
            STORE_ERRORS.labels(op=op).inc()
            raise StoreError(f"session {self.session_id}: {what} failed: {exc}", code=exc.code) from exc

    def _read_creds(self) -> bytes | None:
        try:
            return self.backend.read([CREDS_FILE])[CREDS_FILE]
        except StoreError:
            STORE_ERRORS.labels(op="read").inc()
            raise

    # ----- journal ------------------------------------------------------------------------
    def checkpoint(self) -> None:
        """Make the folder alone hold exactly what was acknowledged, durably (see `AuthBackend`)."""
        with self._lock:
            self.backend.checkpoint()

    def close(self) -> None:
        """Checkpoint and release the backend: when the session stops. The store is unusable after."""
        with self._lock:
            self.backend.close()

    def latest_snapshot(self) -> tuple[str, bool] | None:
        """Id of the newest good snapshot of this session (linked creds preferred) and whether its
        creds are linked; None when there is none (or the snapshots cannot be read)."""
        dirs = BridgeDirs(self.bridge_dir)
        try:
            manifest = latest_good(ManifestStore(dirs), ObjectStore(dirs), self.session_id, prefer_registered=True)
        except StoreError as exc:
            log.warning("session %s: cannot look for a snapshot to name: %s", self.session_id, exc)
            return None
        return None if manifest is None else (manifest.id, manifest.registered)

    def _restore_hint(self) -> str:
        latest = self.latest_snapshot()
        if latest is None:
            return (
                f"No snapshot of session {self.session_id} exists under {self.snapshot_dir}; restore creds.json "
                f"from a backup. The bridge will not start this session fresh over it."
            )
        snap_id, registered = latest
        kind = "registered " if registered else ""
        return (
            f"Restore the latest {kind}snapshot {snap_id}: `python -m bridge restore {self.session_id} {snap_id}`. "
            "The bridge will not start this session fresh over it."
        )

    def _warn_if_orphan_keys(self) -> None:
        try:
            if any(parse_key_file_name(n) for n in self.backend.list_names()):
                log.warning(
                    "session %s: %s has key files but no creds.json; if creds were lost, restore a snapshot (%s)",
                    self.session_id,
                    self.folder,
                    self.latest_snapshot(),
                )
        except (OSError, StoreError):
            pass


class AsyncAuthStore:
    """`AuthStore` for the event loop: the same methods as coroutines, run in worker threads.

    Writes (`set_keys`, `save_creds`) are applied in the order they were requested: an asyncio
    lock (FIFO) admits them one at a time, because worker threads would otherwise race for the
    store lock and a later `keys.set` of the same key could be overwritten by an earlier one.
    """

    def __init__(self, store: AuthStore) -> None:
        self.store = store
        self._write_order = asyncio.Lock()

    async def load_creds(self) -> str | None:
        """See `AuthStore.load_creds`."""
        return await asyncio.to_thread(self.store.load_creds)

    async def save_creds(self, text: str) -> None:
        """See `AuthStore.save_creds`."""
        async with self._write_order:
            await asyncio.to_thread(self.store.save_creds, text)

    async def get_keys(self, key_type: str, ids: list[str]) -> dict[str, str | None]:
        """See `AuthStore.get_keys`."""
        return await asyncio.to_thread(self.store.get_keys, key_type, ids)

    async def set_keys(self, batch: Mapping[str, Mapping[str, str | None]]) -> None:
        """See `AuthStore.set_keys`. On the journal, batches of every session that arrive together
        share one worker job (`bridge.store.group_commit`)."""
        async with self._write_order:
            if self.store.can_stage:
                await group_commit.set_keys(self.store, batch)
            else:
                await asyncio.to_thread(self.store.set_keys, batch)

    async def checkpoint(self) -> None:
        """See `AuthStore.checkpoint`; waits for the writes requested before it."""
        async with self._write_order:
            await asyncio.to_thread(self.store.checkpoint)

    async def close(self) -> None:
        """See `AuthStore.close`; waits for the writes requested before it."""
        async with self._write_order:
            await asyncio.to_thread(self.store.close)


def _parse_creds_quietly(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None
