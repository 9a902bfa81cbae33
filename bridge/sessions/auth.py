"""`SessionAuth`: a session's auth store as its runtime sees it, with the session's own rules.

It wraps an `AsyncAuthStore` (composition: the store's rules stay the store's) and adds what only
the session knows:
- linking a new device over a logged-out folder: the next `auth.load` answers "no creds" once, so
  Baileys makes a fresh identity (the registered creds were snapshotted first, and the store
  snapshots them again before the fresh creds replace them);
- a missing creds.json while a snapshot holds linked creds is refused (`CredsCorruptError`)
  instead of being answered "no creds": the last line of defence against linking a new device over
  a linked account on a start path that skipped the restore (a runtime restarted after a crash).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from bridge.errors import CredsCorruptError
from bridge.store.auth_store import AsyncAuthStore
from bridge.store.layout import CREDS_FILE

if TYPE_CHECKING:
    from bridge.store.snapshots import Snapshots

log = logging.getLogger(__name__)


class SessionAuth:
    """The `AuthPort` a runtime slot serves for one session (see the module docstring)."""

    def __init__(self, store: AsyncAuthStore, *, session_id: str, folder: Path, snapshots: Snapshots) -> None:
        self.store = store
        self.session_id = session_id
        self.folder = folder
        self.snapshots = snapshots
        self.relink = False
        """True: answer the next `load_creds` with None (a new device is being linked)."""

    async def load_creds(self) -> str | None:
        if self.relink:
            self.relink = False
            log.warning("session %s: linking a new device; the old creds are kept in a snapshot", self.session_id)
            return None
        creds = await self.store.load_creds()
        if creds is None:
            linked = await asyncio.to_thread(self.snapshots.latest_good, self.session_id, registered=True)
            if linked is not None:
                raise CredsCorruptError(
                    f"session {self.session_id}: {self.folder / CREDS_FILE} is missing but snapshot {linked.id} "
                    f"holds linked creds; stop the session and run `python -m bridge restore {self.session_id} "
                    f"{linked.id}` (or let the monitor restore it) instead of linking anew"
                )
        return creds

    async def get_keys(self, key_type: str, ids: list[str]) -> dict[str, str | None]:
        return await self.store.get_keys(key_type, ids)

    async def set_keys(self, batch: Mapping[str, Mapping[str, str | None]]) -> None:
        await self.store.set_keys(batch)

    async def save_creds(self, text: str) -> None:
        await self.store.save_creds(text)
