"""When the monitor snapshots a healthy folder, and how it backs off when snapshots fail.

`snapshot_reason` is pure: given the folder now, the newest snapshot and what the monitor
remembers of the session, it names the snapshot to take (or None):

- `monitor-first`: the session has no snapshot at all.
- `monitor-registration`: the account in the folder is not the newest snapshot's (a device was
  just linked, or relinked): protected at once, even if its key files are still arriving.
- `monitor-prekeys`: the folder holds linked creds of the newest snapshot's account that count
  more pre-keys than that snapshot's, and the newest of those pre-key files is in the folder: the
  pre-keys a link (or a later top-up) generated for upload. Taken at once, without waiting for the
  settle: the server hands these out to contacts from the first second, and a folder damaged 3 s
  after a link can only get them back from a snapshot (issue 12, fresh sessions).
- `monitor-settled`: the folder holds linked creds that have not changed for
  `BRIDGE_MONITOR_SETTLE_SECONDS` (Baileys saves creds several times while it uploads its
  pre-keys and syncs after a link), and no settled snapshot of this account was taken yet in this
  monitor's life. This is the snapshot that holds the keys a link produced (issue 12: a pairing
  code session was left with a snapshot of its pre-link creds for 300 s).
- `monitor-change`: creds.json differs from the newest snapshot's and that snapshot is older than
  `BRIDGE_SNAPSHOT_MIN_INTERVAL` (key files alone change with every message: they wait for the
  schedule, `BRIDGE_SNAPSHOT_INTERVAL`).

A snapshot that fails (disk full, read-only, I/O error) is not retried on every scan: each session
backs off exponentially (`SnapshotBackoff`, delays from `bridge.delivery.Backoff`), from one scan
interval up to `MAX_BACKOFF`; the first failure of an episode raises one warning alert, the first
success after it one info.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.delivery import Backoff
from bridge.monitor.folder_check import FolderLook
from bridge.store.identity import Identity

MAX_BACKOFF = 900.0
"""Longest wait between snapshot attempts of a session whose snapshots fail (s)."""


@dataclass(frozen=True)
class NewestSnapshot:
    """What the policy needs of a session's newest usable snapshot."""

    identity: Identity | None
    creds_sha256: str | None
    created_at: float
    prekeys: int = 0
    """Pre-keys its creds count (`FolderLook.prekeys`)."""


@dataclass
class SessionMemory:
    """What the monitor remembers of one session between looks (lost on restart, by design:
    a restart costs at most one extra `monitor-settled` snapshot)."""

    creds_sha256: str | None = None
    creds_changed_at: float = 0.0
    settled_for: Identity | None = None


def remember(memory: SessionMemory, look: FolderLook, now: float) -> None:
    """Note when creds.json last changed (monotonic `now`)."""
    if look.creds_sha256 != memory.creds_sha256:
        memory.creds_sha256 = look.creds_sha256
        memory.creds_changed_at = now


def settle_due(memory: SessionMemory, look: FolderLook, settle_seconds: float) -> float | None:
    """Monotonic time at which `look`'s folder will have settled, if a settled snapshot is still owed."""
    if not look.registered or memory.settled_for == look.identity:
        return None
    return memory.creds_changed_at + settle_seconds


def snapshot_reason(
    look: FolderLook,
    newest: NewestSnapshot | None,
    memory: SessionMemory,
    *,
    now: float,
    wall_now: float,
    settle_seconds: float,
    min_interval: float,
) -> str | None:
    """The snapshot to take of a healthy folder now (see the module docstring), or None."""
    if newest is None:
        return "monitor-first"
    if look.identity != newest.identity:
        return "monitor-registration"
    if look.registered and look.prekeys > newest.prekeys and look.holds_prekeys:
        return "monitor-prekeys"
    due = settle_due(memory, look, settle_seconds)
    if due is not None and now >= due:
        return "monitor-settled"
    if look.creds_sha256 != newest.creds_sha256 and wall_now - newest.created_at >= min_interval:
        return "monitor-change"
    return None


@dataclass
class SnapshotBackoff:
    """Per-session attempt count and next allowed time for failing snapshots; the delays come
    from the bridge's one backoff policy (`bridge.delivery.Backoff`)."""

    policy: Backoff
    failures: int = 0
    retry_at: float = 0.0

    @classmethod
    def every(cls, initial: float) -> SnapshotBackoff:
        return cls(Backoff(initial, max(initial, MAX_BACKOFF)))

    def allowed(self, now: float) -> bool:
        return now >= self.retry_at

    def failed(self, now: float) -> float:
        """Count a failure; returns the seconds until the next attempt."""
        self.failures += 1
        delay = self.policy.delay(self.failures)
        self.retry_at = now + delay
        return delay

    def succeeded(self) -> bool:
        """Reset; True if this ends a failing episode."""
        ended = self.failures > 0
        self.failures = 0
        self.retry_at = 0.0
        return ended
