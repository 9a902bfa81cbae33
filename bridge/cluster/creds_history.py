"""The creds history of cluster tenants, in `bridge_creds_history`: list it, find intact creds, put them back.

What file mode keeps under `.bridge/creds-history/<session>/` (`bridge.store.creds_history`) a
cluster tenant keeps in the database, written by `PgAuthBackend.commit` in the same fenced
transaction as each creds write (see bridge/cluster/auth_backend.py), so every node sees the same
history and a tenant that moves takes it along. This module only reads it, and puts creds back
through a fenced backend:

- `entries` lists a tenant's history newest first: when, by which node and epoch, whether the creds
  are valid and linked, which account (never the creds themselves in a listing: they are secrets);
- `newest_intact` finds the newest valid, registered creds of an account (what file mode's
  `Snapshots.newest_intact_creds` reads first, before the snapshots);
- `restore` puts one entry back as creds.json alone (key state untouched), through the tenant's
  fenced backend: the commit keeps the creds it replaces in the history, so nothing is lost.
"""

from __future__ import annotations

from typing import Any

import msgspec
import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from bridge.cluster.auth_backend import PgAuthBackend
from bridge.cluster.db import with_retry
from bridge.errors import CredsCorruptError, ErrorCode, StoreError
from bridge.store.creds import is_registered, validate_creds_text
from bridge.store.creds_history import linked_creds_of
from bridge.store.identity import Identity, identity_of
from bridge.store.layout import CREDS_FILE, validate_session_id

READ_BOUND = 10.0


class HistoryEntry(msgspec.Struct, frozen=True):
    """One kept creds text of a tenant; `data` is the exact bytes (not shown in listings)."""

    session: str
    sha256: str
    seq: int
    kept_at: float
    epoch: int
    node_id: str
    data: bytes

    @property
    def ref(self) -> str:
        """How an operator names the entry: `bridge_creds_history/<session>/<sha256>`."""
        return f"bridge_creds_history/{self.session}/{self.sha256}"

    def creds(self) -> dict[str, Any] | None:
        """The parsed creds if they are valid, else None."""
        try:
            return validate_creds_text(self.data.decode("utf-8"))
        except (CredsCorruptError, UnicodeDecodeError):
            return None

    def describe(self) -> dict[str, Any]:
        """What a listing shows: everything but the creds."""
        creds = self.creds()
        return {
            "sha256": self.sha256,
            "kept_at": self.kept_at,
            "epoch": self.epoch,
            "node": self.node_id,
            "size": len(self.data),
            "valid": creds is not None,
            "registered": creds is not None and is_registered(creds),
            "account": None if creds is None or not is_registered(creds) else identity_of(creds).describe(),
        }


class PgCredsHistory:
    """The creds history of the cluster's tenants, in the database behind `pool`."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    def entries(self, session_id: str) -> list[HistoryEntry]:
        """Every kept creds text of the tenant, newest first."""
        session_id = validate_session_id(session_id)

        def step(conn: psycopg.Connection[TupleRow]) -> list[HistoryEntry]:
            rows = conn.execute(
                "SELECT sha256, seq, extract(epoch FROM kept_at)::float8, epoch, node_id, data "
                "FROM bridge_creds_history WHERE session_id = %s ORDER BY seq DESC",
                (session_id,),
            ).fetchall()
            return [
                HistoryEntry(session_id, str(sha), int(seq), float(at), int(epoch), str(node), bytes(data))
                for sha, seq, at, epoch, node, data in rows
            ]

        return with_retry(self.pool, step, what=f"session {session_id}: reading the creds history", bound=READ_BOUND)

    def get(self, session_id: str, sha_prefix: str) -> HistoryEntry:
        """The entry whose sha256 starts with `sha_prefix` (unique); StoreError `not_found` otherwise."""
        matches = [e for e in self.entries(session_id) if sha_prefix and e.sha256.startswith(sha_prefix.lower())]
        if len(matches) != 1:
            what = "matches several entries" if matches else "is not"
            raise StoreError(
                f"{sha_prefix!r} {what} in the creds history of session {session_id}; list it with its sha256s",
                code=ErrorCode.NOT_FOUND,
            )
        return matches[0]

    def newest_intact(self, session_id: str, identity: Identity) -> tuple[str, str] | None:
        """(creds text, where it came from) of the newest valid, registered creds of `identity`, or None."""
        for entry in self.entries(session_id):
            if linked_creds_of(entry.data, identity) is not None:
                return entry.data.decode("utf-8"), f"creds history {entry.ref}"
        return None

    def restore(self, backend: PgAuthBackend, sha_prefix: str) -> HistoryEntry:
        """Put one entry back as the tenant's creds.json, keys untouched, through the fenced `backend`.

        Refuses (nothing written) creds that are not valid. The creds replaced stay in the history
        (the commit keeps them), so a restore can itself be undone.
        """
        entry = self.get(backend.session_id, sha_prefix)
        if entry.creds() is None:
            raise CredsCorruptError(f"{entry.ref} does not hold valid creds; refusing to restore it")
        backend.commit({CREDS_FILE: entry.data}, [])
        return entry
