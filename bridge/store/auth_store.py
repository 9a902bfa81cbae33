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
- every write is atomic and durable (`bridge.store.durable`), a batch is one group commit.

The class is synchronous and thread-safe (one lock per store); `AsyncAuthStore` runs it in threads
so the event loop never blocks on fsync.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from bridge.errors import CredsCorruptError, HostileNameError, StoreError
from bridge.metrics import STORE_ERRORS
from bridge.store import durable
from bridge.store.creds import is_registered, parse_json_text, validate_creds, validate_creds_text
from bridge.store.creds_history import DEFAULT_KEEP, CredsHistory
from bridge.store.layout import CREDS_FILE, NAME_MAX, key_file_name, parse_key_file_name, validate_session_id

log = logging.getLogger(__name__)

DowngradeHook = Callable[[str], object]
TRASH: Final = "trash"
CREDS_BACKUPS: Final = "creds-backups"
SNAPSHOTS: Final = "snapshots"
#: The reason passed to `before_creds_downgrade`.
DOWNGRADE_REASON: Final = "creds-downgrade"
_REASON: Final = re.compile(r"[A-Za-z0-9-]{1,40}")
#: The reason when registered creds are replaced by creds of another identity (new identity key).
IDENTITY_CHANGE_REASON: Final = "creds-identity-change"


class AuthStore:
    """The auth folder of one session (see module docstring for the guarantees).

    `folder` is created (mode 0700) if missing; `bridge_dir` is `AUTH_ROOT/.bridge`, which holds
    trash, creds backups and the snapshots named in error messages.
    """

    def __init__(
        self,
        folder: Path,
        *,
        session_id: str,
        bridge_dir: Path,
        before_creds_downgrade: DowngradeHook | None = None,
        creds_history_keep: int = DEFAULT_KEEP,
    ) -> None:
        self.session_id = validate_session_id(session_id)
        self.folder = Path(folder)
        self.bridge_dir = Path(bridge_dir)
        self.trash_dir = self.bridge_dir / TRASH / self.session_id
        self.creds_backup_dir = self.bridge_dir / CREDS_BACKUPS / self.session_id
        self.snapshot_dir = self.bridge_dir / SNAPSHOTS / self.session_id
        self.creds_path = self.folder / CREDS_FILE
        self.history = CredsHistory(self.bridge_dir, self.session_id, creds_history_keep)
        self._before_downgrade: DowngradeHook = before_creds_downgrade or self.backup_creds_copy
        self._lock = threading.RLock()
        with durable.store_errors(self.folder, "opening the session folder"):
            self._ensure_folder()
            durable.sweep_temp_files(self.folder)

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
                raw = self.creds_path.read_bytes()
            except FileNotFoundError:
                self._warn_if_orphan_keys()
                return None
            except OSError as exc:
                STORE_ERRORS.labels(op="load_creds").inc()
                reason = durable.explain_os_error(exc, self.creds_path, "reading")
                if durable.is_storage_fault(reason):
                    raise reason from exc
                raise CredsCorruptError(
                    f"{reason} If the file itself is damaged: {self._restore_hint()}"
                ) from exc
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
            old_raw = self._read_optional(self.creds_path)
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
            durable.atomic_write(self.creds_path, data)
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
        raw = self._read_optional(self.creds_path)
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
            current = self._read_optional(self.creds_path)
            if current == data:
                return None
            evidence = None if current is None else self._keep_copy(current, reason)
            durable.atomic_write(self.creds_path, data)
            self._in_history(lambda names: self.history.add(data, durable_copy=False, names=names))
        log.warning("session %s: creds.json restored (%s); evidence kept at %s", self.session_id, reason, evidence)
        return evidence

    # ----- keys ---------------------------------------------------------------------------
    def get_keys(self, key_type: str, ids: list[str]) -> dict[str, str | None]:
        """The exact JSON text stored for each id (None = absent or unreadable, as legacy reads it)."""
        names = {key_id: self._key_name(key_type, key_id) for key_id in ids}
        result: dict[str, str | None] = {}
        for key_id, name in names.items():
            raw = self._read_optional(self.folder / name)
            result[key_id] = None if raw is None else self._checked_key_text(name, raw)
        return result

    def set_keys(self, batch: Mapping[str, Mapping[str, str | None]]) -> None:
        """Apply one Baileys `keys.set`: write values, trash nulls, one group commit.

        Everything is validated before anything is written: a hostile name or a value that is not
        JSON refuses the whole batch. Ids that the legacy escaping maps to the same file: last wins.
        """
        ops: dict[str, bytes | None] = {}
        for key_type, values in batch.items():
            for key_id, value in values.items():
                name = self._key_name(key_type, key_id)
                ops[name] = None if value is None else self._checked_value(key_type, key_id, value)
        if not ops:
            return
        writes = {name: data for name, data in ops.items() if data is not None}
        deletes = [name for name, data in ops.items() if data is None]
        with self._lock:
            try:
                durable.atomic_write_many(self.folder, writes, sync_dir=False)
                moved = self._move_to_trash(deletes)
                if writes or moved:
                    durable.fsync_dir(self.folder)
            except OSError as exc:
                STORE_ERRORS.labels(op="set_keys").inc()
                raise durable.explain_os_error(exc, self.folder, "updating keys in") from exc

    def _move_to_trash(self, names: list[str]) -> int:
        """Move existing key files into the trash folder (durably); absent ones are ignored."""
        present = [name for name in names if (self.folder / name).is_file()]
        if not present:
            return 0
        durable.make_dirs(self.trash_dir)
        stamp = time.time_ns()
        for name in present:
            target = self.trash_dir / _trash_name(stamp, name)
            try:
                os.rename(self.folder / name, target)
            except FileNotFoundError:
                continue
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                # .bridge on another file system: copy durably first, then remove the original.
                raw = (self.folder / name).read_bytes()
                durable.atomic_write(target, raw)
                os.unlink(self.folder / name)
        durable.fsync_dir(self.trash_dir)
        return len(present)

    def list_keys(self) -> list[tuple[str, str]]:
        """`(type, escaped_id)` of every key file in the folder (see `parse_key_file_name`)."""
        found = []
        with durable.store_errors(self.folder, "listing"):
            names = sorted(os.listdir(self.folder))
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

    def _read_optional(self, path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            STORE_ERRORS.labels(op="read").inc()
            raise durable.explain_os_error(exc, path, "reading") from exc

    def latest_snapshot(self) -> tuple[str, bool] | None:
        """Id of the newest snapshot manifest of this session and whether it is registered."""
        try:
            names = sorted(
                (n for n in os.listdir(self.snapshot_dir) if n.endswith(".json") and not n.startswith(".")),
                reverse=True,
            )
        except OSError:
            return None
        fallback: tuple[str, bool] | None = None
        for name in names:
            try:
                manifest = json.loads((self.snapshot_dir / name).read_bytes())
            except (OSError, ValueError):
                continue
            registered = bool(isinstance(manifest, dict) and manifest.get("registered"))
            if registered:
                return name[: -len(".json")], True
            if fallback is None:
                fallback = (name[: -len(".json")], False)
        return fallback

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
            if any(parse_key_file_name(n) for n in os.listdir(self.folder)):
                log.warning(
                    "session %s: %s has key files but no creds.json; if creds were lost, restore a snapshot (%s)",
                    self.session_id,
                    self.folder,
                    self.latest_snapshot(),
                )
        except OSError:
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
        """See `AuthStore.set_keys`."""
        async with self._write_order:
            await asyncio.to_thread(self.store.set_keys, batch)


def _parse_creds_quietly(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _trash_name(stamp: int, name: str) -> str:
    """`<time_ns>-<name>`, shortened with a hash when it would exceed NAME_MAX."""
    candidate = f"{stamp}-{name}"
    if len(candidate.encode("utf-8")) <= NAME_MAX:
        return candidate
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:16]
    return f"{stamp}-{digest}-{name.encode('utf-8')[:180].decode('utf-8', 'ignore')}"
