"""`SessionAuth`: a session's auth store as its runtime sees it, with the session's own rules.

It wraps an `AsyncAuthStore` (composition: the store's rules stay the store's) and adds what only
the session knows:
- linking a new device over a logged-out folder: the next `auth.load` answers "no creds" once, so
  Baileys makes a fresh identity (the registered creds were snapshotted first, and the store
  snapshots them again before the fresh creds replace them);
- the identity check: creds handed to the runtime must be the identity recorded for this session
  (`IdentityBook.check`); foreign or swapped creds are refused (`identity_mismatch`, the refusal
  kept in `refusal` for the session to fail with) and nothing reaches Baileys, so nothing is
  overwritten. Skipped while a new device is being linked (`new_identity`);
- a missing creds.json while a snapshot holds linked creds is refused (`CredsCorruptError`)
  instead of being answered "no creds": the last line of defence against linking a new device over
  a linked account on a start path that skipped the restore (a runtime restarted after a crash);
- storage faults (`is_storage_fault`: full, read-only, permission, I/O). The first failed write
  makes the wrapper *faulted*: it tells the session (`on_fault`), which stops using the socket,
  and from then on every write is held back in memory, in order, without touching the disk, and
  answered with the same error. `flush()` writes what was held when storage works again, before
  anything reads the folder.

Why hold the failed writes instead of dropping them: Baileys commits a send's Signal key changes
only after the message went out (`relayMessage` runs `sendNode` inside `keys.transaction`, whose
commit follows the work). When that commit fails, the contact already has a message encrypted
with the new chain state; restarting from the old state on disk would reuse the same message key,
and the contact could not decrypt the next message ("Key used already"). Writing the held state
before the next start makes the disk say what the contact saw. Held writes live in memory only:
a bridge restart while a session is suspended loses them (the session then restarts from disk).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from bridge.errors import CredsCorruptError, ErrorCode, StoreError
from bridge.store.auth_store import AsyncAuthStore
from bridge.store.creds import parse_json_text
from bridge.store.durable import is_storage_fault
from bridge.store.identity import IdentityBook, IdentityMismatch, identity_of
from bridge.store.layout import CREDS_FILE

if TYPE_CHECKING:
    from bridge.store.snapshots import Snapshots

log = logging.getLogger(__name__)
T = TypeVar("T")


class SessionAuth:
    """The `AuthPort` a runtime slot serves for one session (see the module docstring)."""

    def __init__(
        self,
        store: AsyncAuthStore,
        *,
        session_id: str,
        folder: Path,
        snapshots: Snapshots,
        identities: IdentityBook,
        on_fault: Callable[[StoreError], None],
    ) -> None:
        self.store = store
        self.session_id = session_id
        self.folder = folder
        self.snapshots = snapshots
        self.identities = identities
        self.relink = False
        """True: answer the next `load_creds` with None (a new device is being linked)."""
        self.new_identity = False
        """True from a re-link until its identity is recorded: creds of a new identity are expected."""
        self.refusal: StoreError | None = None
        """Why the last `load_creds` refused the creds (identity), for the session to fail with."""
        self.mismatch: IdentityMismatch | None = None
        self.fault: StoreError | None = None
        """The storage fault that stopped writes, until `flush()` succeeds."""
        self._on_fault = on_fault
        self._held_keys: dict[str, dict[str, str | None]] = {}
        self._held_creds: str | None = None
        self.held_writes = 0
        """Writes held back since the fault (batches and creds saves), for logs and tests."""

    async def load_creds(self) -> str | None:
        if self.relink:
            self.relink = False
            log.warning("session %s: linking a new device; the old creds are kept in a snapshot", self.session_id)
            return None
        self.refusal, self.mismatch = None, None
        creds = await self._read(self.store.load_creds())
        if creds is not None and not self.new_identity:
            await self._check_identity(creds)
        if creds is None:
            linked = await asyncio.to_thread(self.snapshots.latest_good, self.session_id, registered=True)
            if linked is not None:
                raise CredsCorruptError(
                    f"session {self.session_id}: {self.folder / CREDS_FILE} is missing but snapshot {linked.id} "
                    f"holds linked creds; stop the session and run `python -m bridge restore {self.session_id} "
                    f"{linked.id}` (or let the monitor restore it) instead of linking anew"
                )
        return creds

    async def _check_identity(self, creds: str) -> None:
        """Refuse creds of another identity than the one recorded (see the module docstring)."""
        try:
            parsed = parse_json_text(creds)
            mismatch = await asyncio.to_thread(self.identities.check, self.session_id, parsed)
        except StoreError as exc:
            if is_storage_fault(exc):
                self._on_fault(exc)
                raise
            self.refusal = exc  # damaged evidence (an unreadable record, creds without a key)
            raise
        if mismatch is not None:
            self.mismatch = mismatch
            self.refusal = StoreError(mismatch.describe(), code=ErrorCode.IDENTITY_MISMATCH)
            log.critical("session %s: %s", self.session_id, self.refusal)
            raise self.refusal

    async def record_identity(self) -> None:
        """Record the identity of the linked creds on disk, if this session has none recorded yet or
        has just linked a new device; any other identity was checked at load and is left alone."""
        creds = await self.store.load_creds()
        if creds is None:
            return
        identity = identity_of(parse_json_text(creds))
        if identity.jid is None:
            return  # not linked (yet): nothing worth recording
        if not self.new_identity and await asyncio.to_thread(self.identities.expected, self.session_id) is not None:
            return
        await asyncio.to_thread(self.identities.record, self.session_id, identity)
        self.new_identity = False

    async def get_keys(self, key_type: str, ids: list[str]) -> dict[str, str | None]:
        return await self._read(self.store.get_keys(key_type, ids))

    async def set_keys(self, batch: Mapping[str, Mapping[str, str | None]]) -> None:
        if self.fault is None:
            try:
                await self.store.set_keys(batch)
                return
            except StoreError as exc:
                if not is_storage_fault(exc):
                    raise
                self._faulted(exc)
        for key_type, values in batch.items():
            self._held_keys.setdefault(key_type, {}).update(values)
        self.held_writes += 1
        assert self.fault is not None
        raise self.fault

    async def save_creds(self, text: str) -> None:
        if self.fault is None:
            try:
                await self.store.save_creds(text)
                return
            except StoreError as exc:
                if not is_storage_fault(exc):
                    raise
                self._faulted(exc)
        self._held_creds = text
        self.held_writes += 1
        assert self.fault is not None
        raise self.fault

    @property
    def holds_writes(self) -> bool:
        """True while writes held back by a storage fault wait for `flush()`."""
        return bool(self._held_keys) or self._held_creds is not None

    async def flush(self) -> None:
        """Write the held keys (merged in arrival order) and then the held creds; on success the
        fault is over. Raises the `StoreError` (still faulted, nothing forgotten) otherwise."""
        if self._held_keys:
            await self.store.set_keys(self._held_keys)
            self._held_keys = {}
        if self._held_creds is not None:
            await self.store.save_creds(self._held_creds)
            self._held_creds = None
        if self.fault is not None:
            log.warning("session %s: storage works again; wrote the %d write(s) held back since: %s",
                        self.session_id, self.held_writes, self.fault)
        self.fault = None
        self.held_writes = 0

    def drop_held(self) -> int:
        """Forget the held writes (the folder was replaced by a restore); returns how many."""
        count = self.held_writes if self.holds_writes else 0
        self._held_keys, self._held_creds, self.held_writes, self.fault = {}, None, 0, None
        return count

    def _faulted(self, exc: StoreError) -> None:
        self.fault = exc
        log.error("session %s: storage fault, holding back further writes: %s", self.session_id, exc)
        self._on_fault(exc)

    async def _read(self, work: Awaitable[T]) -> T:
        """A read that hits a storage fault tells the session too (not held: nothing to write)."""
        try:
            return await work
        except StoreError as exc:
            if is_storage_fault(exc):
                self._on_fault(exc)
            raise
