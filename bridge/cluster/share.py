"""Which tenants this node should claim, release or stop now: a pure function of what the
database shows (`plan_round`), carried out by the coordinator (bridge/cluster/coordinator.py).

The rules, in the order they apply:
1. Stop at once every tenant this node hosts without a lease it still holds (a renewal failed,
   the epoch moved on, or a write was refused as stale): another node may already run it.
2. Claim free tenants (no lease, or a lease past its expiry in the database's clock) until this
   node holds its fair share, `ceil(tenants / live nodes)`. A lease of a node that looks dead but
   has not expired is NOT free: the node may only be paused (SIGSTOP, a long GC, a partition) and
   still hold a socket; only the expiry, and the epoch it fences, make taking over safe.
3. Hand over tenants above the fair share only when nothing is free and another live node holds
   fewer than its share (a node that restarted or joined), at most `max_release` per round, so a
   rolling restart spreads the tenants again without a stampede of reconnects.

Free tenants are tried in an order that differs per node (a hash of node id and tenant id), so
nodes starting together mostly claim different tenants instead of racing for the same ones;
the database decides any race (one claim wins, the loser simply holds fewer this round).
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterable, Mapping

import msgspec


class LeaseView(msgspec.Struct, frozen=True):
    """A tenant's lease as the database shows it now (`live`: owned and not expired, by the
    database's clock; otherwise the tenant is free)."""

    session_id: str
    owner: str | None
    live: bool

    @property
    def expired(self) -> bool:
        return not self.live


class RoundPlan(msgspec.Struct, frozen=True):
    """What one coordinator round does: `stop` first, then `release` (hand over), then `claim`."""

    stop: tuple[str, ...] = ()
    release: tuple[str, ...] = ()
    claim: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.stop or self.release or self.claim)


def fair_share(tenants: int, live_nodes: int) -> int:
    """The most tenants one node should hold: ceil(tenants / live nodes), at least one node."""
    return math.ceil(tenants / max(1, live_nodes))


def _spread_key(node_id: str, session_id: str) -> bytes:
    return hashlib.blake2b(f"{node_id}\0{session_id}".encode(), digest_size=8).digest()


def plan_round(
    node_id: str,
    tenants: Iterable[str],
    leases: Mapping[str, LeaseView],
    live_nodes: Iterable[str],
    hosted: Iterable[str],
    *,
    max_release: int = 1,
) -> RoundPlan:
    """The plan for this round (see the module docstring).

    `tenants`: every tenant that should be owned (not archived); `leases`: the lease rows by
    tenant; `live_nodes`: nodes whose heartbeat has not expired (this node counts even if its
    own row is missing); `hosted`: tenants this node runs sessions for now."""
    wanted = sorted(set(tenants))
    live = set(live_nodes) | {node_id}
    held = {sid for sid, lease in leases.items() if lease.owner == node_id and not lease.expired}
    stop = tuple(sorted(set(hosted) - held))
    share = fair_share(len(wanted), len(live))
    mine = sorted(held & set(wanted))
    free = sorted((sid for sid in wanted if sid not in leases or leases[sid].expired),
                  key=lambda sid: _spread_key(node_id, sid))
    claim = tuple(free[: max(0, share - len(mine))])
    release: tuple[str, ...] = ()
    if not free and len(mine) > share:
        owned = Counter(lease.owner for sid, lease in leases.items() if not lease.expired and sid in set(wanted))
        deficit = sum(max(0, share - owned.get(other, 0)) for other in live - {node_id})
        count = min(len(mine) - share, deficit, max_release)
        if count > 0:
            release = tuple(sorted(mine, key=lambda sid: _spread_key(node_id, sid))[:count])
    return RoundPlan(stop=stop, release=release, claim=claim)
