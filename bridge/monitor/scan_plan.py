"""Which folders a periodic scan looks at: those whose signature changed, plus a slice of the rest.

A full look at a folder (list it, read and hash creds.json, decode its newest snapshot manifest)
costs ~2.7 ms of CPU; over 1000 idle tenants every `monitor_scan_interval` that was the bridge's
largest idle cost. A folder's signature costs four `os.stat` calls: the folder (its mtime moves
when a file is created, deleted or renamed in it; its ctime with a chmod/chown), its creds.json
(size, mtime and ctime: a truncation, an in-place write, a chmod, even a write whose mtime was
set back, changes ctime), the session's identity record and its snapshot folder (the verdict's
other inputs). An `rm -rf` makes the folder's stat fail, a replaced folder has another inode.
The periodic scan fully looks only at folders whose signature differs from the one taken before
their last full look that found nothing to follow up ("quiet"); watchfiles events and timers
still look at once, whatever the signature.

Two guards keep damage detection as strong as a full scan:
- A signature holding a timestamp from the last `RACY_SECONDS` is not trusted (file systems
  stamp times with a coarse clock, so a second change right after the stat could keep it).
- A sweep: each scan also fully looks at the folders looked at longest ago, enough of them that
  every folder is fully looked at at least once per `FULL_SWEEP_SECONDS` (damage no stat shows,
  such as bits rotting on the disk, or a change the clock hid).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

FULL_SWEEP_SECONDS = 300.0
"""Every folder is fully looked at at least this often, changed or not."""

RACY_SECONDS = 2.0
"""A signature with a timestamp this recent may not show the next change (coarse FS clocks)."""

_UNSTATTABLE = -1


def _stat(path: Path) -> tuple[int, ...]:
    try:
        st = os.stat(path)
    except OSError as exc:
        return (_UNSTATTABLE, exc.errno or 0)
    return (st.st_dev, st.st_ino, st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclass(frozen=True)
class Signature:
    """What `os.stat` says of a folder and the files its verdict depends on."""

    paths: tuple[str, ...]
    stats: tuple[tuple[int, ...], ...]

    def trusted(self, now_ns: int) -> bool:
        """Old enough that a change after it would change it too (see `RACY_SECONDS`)."""
        newest = max((max(s[-2], s[-1]) for s in self.stats if s[0] != _UNSTATTABLE), default=0)
        return newest < now_ns - int(RACY_SECONDS * 1e9)


def signature(paths: Iterable[Path]) -> Signature:
    """Stat `paths` (a missing or unreadable one is part of the signature, as its errno)."""
    listed = tuple(paths)
    return Signature(tuple(str(p) for p in listed), tuple(_stat(p) for p in listed))


class ScanPlan:
    """Per session: the signature taken before its last quiet full look, and when it was last
    fully looked at. `due` picks the sessions a periodic scan must fully look at."""

    def __init__(self, full_sweep: float = FULL_SWEEP_SECONDS) -> None:
        self.full_sweep = full_sweep
        self._quiet: dict[str, Signature] = {}
        self._looked: dict[str, float] = {}

    def looked(self, session_id: str, before: Signature | None, *, now: float | None = None) -> None:
        """A full look at the session is done. `before`: the signature taken before it, when the
        look found nothing to follow up and the signature can be trusted; None otherwise (the next
        scan looks again)."""
        self._looked[session_id] = time.monotonic() if now is None else now
        if before is not None and before.trusted(time.time_ns()):
            self._quiet[session_id] = before
        else:
            self._quiet.pop(session_id, None)

    def forget(self, session_id: str) -> None:
        """Look at the session on the next scan."""
        self._quiet.pop(session_id, None)

    def due(self, signatures: Mapping[str, Signature], *, interval: float, now: float | None = None) -> list[str]:
        """The sessions to fully look at now, sorted: every one whose signature is not the quiet
        one, and a slice of the others, the longest unlooked first, sized so that each is looked
        at within `full_sweep` at one scan per `interval` (and any already older than that)."""
        now = time.monotonic() if now is None else now
        for gone in (self._looked.keys() | self._quiet.keys()) - signatures.keys():
            self._looked.pop(gone, None)
            self._quiet.pop(gone, None)
        changed = {sid for sid, sig in signatures.items() if self._quiet.get(sid) != sig}
        rest = sorted((self._looked.get(sid, -math.inf), sid) for sid in signatures if sid not in changed)
        share = math.ceil(len(signatures) * max(interval, 0.0) / self.full_sweep) if self.full_sweep > 0 else len(rest)
        sweep = {sid for i, (at, sid) in enumerate(rest) if i < max(1, share) or now - at >= self.full_sweep}
        return sorted(changed | sweep)

    def quiet(self) -> set[str]:
        """Sessions a scan may skip while their signature holds."""
        return set(self._quiet)
