"""`Coordinator`: this node's side of cluster mode, which tenants it runs and for how long.

Every round (TTL/3 apart) it heartbeats the node row, renews all its leases in one statement,
stops at once every tenant whose lease it lost, then plans with `share.plan_round` from what the
database shows (tenants, leases, live nodes) and carries the plan out: stop, hand over, claim and
host. Hosting and stopping go through the `SessionManager` (`host`, `evict`), which runs the
session exactly as in file mode, with its auth bytes in PostgreSQL under the lease's epoch.

A lease is lost, and the tenant stopped on this node at once (socket closed, an `alert`
`lease_lost` published), when:
- a renewal does not extend it (another node claimed it after it expired, or it was released);
- an auth or registry write is refused as stale (`LeaseLostError` from the fenced backend);
- the database did not answer for a whole TTL: the leases may have expired meanwhile, so the
  node must assume them lost (see docs/cluster.md, "Partitions").

`handover()` (SIGTERM) closes every socket, flushes, releases every lease and removes the node
row, so the other nodes claim the tenants on their next round instead of waiting for expiry.
Every hand-over (SIGTERM or above the fair share) first waits until the tenant's last events here
are in the shared event log (bounded), so the next owner's events are numbered after them.
`route(session_id)` answers the forwarder: run here, or which node's URL owns it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

from psycopg_pool import ConnectionPool

from bridge.cluster import nodes
from bridge.cluster.db import ClusterUnavailableError, LeaseLostError, with_retry
from bridge.cluster.leases import Leases
from bridge.cluster.share import LeaseView, RoundPlan, plan_round
from bridge.errors import BridgeError
from bridge.eventlog.log import EventLog
from bridge.events import EventBus
from bridge.store.journal import AuthBackend
from bridge.store.layout import CREDS_FILE

if TYPE_CHECKING:
    from bridge.sessions.manager import SessionManager

log = logging.getLogger(__name__)

T = TypeVar("T")
#: How long a session start waits for the database to confirm its lease (s).
CONFIRM_BOUND = 10.0
#: How long a hand-over waits for this node's events to reach the shared event log (s).
EVENTS_FLUSH = 5.0

MakeBackend = Callable[[str, int], AuthBackend]
"""(session id, epoch) -> the tenant's auth backend writing under that epoch."""


def holds_live(conn: nodes.Conn, session_id: str, node_id: str, epoch: int) -> bool:
    """True when the tenant's lease names `node_id` with `epoch` and has not expired (database clock)."""
    row = conn.execute(
        "SELECT 1 FROM bridge_leases WHERE session_id = %s AND node_id = %s AND epoch = %s AND expires_at > now()",
        (session_id, node_id, epoch),
    ).fetchone()
    return row is not None


class OwnerUnreachable(ClusterUnavailableError):
    """The tenant's owner node has no live heartbeat or URL now; the request may be retried."""


class FencedBackend:
    """An `AuthBackend` that reports the first stale-epoch refusal to the coordinator and from then
    on refuses everything itself, so the session cannot read or write past its lease.

    Reading creds.json is what starts a socket (Baileys loads creds once per connection), so that
    read first asks the database whether this node still holds a live lease with its epoch
    (`confirm`): a node whose lease moved on while it did not notice yet (a reconnect right after
    a pause) is refused before it can open a socket over the new owner's."""

    def __init__(self, inner: AuthBackend, on_lost: Callable[[str], None], confirm: Callable[[], bool]) -> None:
        self.inner = inner
        self.on_lost = on_lost
        self.confirm = confirm
        self.lost: LeaseLostError | None = None

    def _guard(self) -> None:
        if self.lost is not None:
            raise self.lost

    def _refused(self, exc: LeaseLostError) -> LeaseLostError:
        if self.lost is None:
            self.lost = exc
            self.on_lost(str(exc))
        return exc

    def read(self, names: Sequence[str]) -> dict[str, bytes | None]:
        self._guard()
        if CREDS_FILE in names and not self.confirm():
            raise self._refused(LeaseLostError(
                "this node's lease is no longer live with its epoch; the session may not start here"))
        return self.inner.read(names)

    def list_names(self) -> list[str]:
        self._guard()
        return self.inner.list_names()

    def commit(self, writes: Mapping[str, bytes], trash: Sequence[str]) -> None:
        self._guard()
        try:
            self.inner.commit(writes, trash)
        except LeaseLostError as exc:
            raise self._refused(exc) from None

    def checkpoint(self) -> None:
        self._guard()
        self.inner.checkpoint()

    def close(self) -> None:
        self.inner.close()


class Coordinator:
    """See the module docstring. `attach(manager)` before `start()`."""

    def __init__(
        self,
        *,
        node_id: str,
        url: str,
        ttl: float,
        leases: Leases,
        pool: ConnectionPool,
        bus: EventBus,
        make_backend: MakeBackend,
        start_concurrency: int = 8,
        max_release: int = 1,
    ) -> None:
        self.node_id = node_id
        self.url = url
        self.ttl = ttl
        self.interval = ttl / 3
        self.leases = leases
        self.pool = pool
        self.bus = bus
        self.make_backend = make_backend
        self.max_release = max_release
        self.held: dict[str, int] = {}
        """Tenant -> epoch of every lease this node holds (as far as it knows)."""
        self._manager: SessionManager | None = None
        self._hosting: dict[str, asyncio.Task[None]] = {}
        self._starts = asyncio.Semaphore(start_concurrency)
        self._loop_task: asyncio.Task[None] | None = None
        self._last_renewed = time.monotonic()
        self._round_lock = asyncio.Lock()
        self._event_loop: asyncio.AbstractEventLoop | None = None
        self._losing: set[asyncio.Future[None]] = set()

    # ----- wiring -------------------------------------------------------------------------
    def attach(self, manager: SessionManager) -> None:
        self._manager = manager

    @property
    def manager(self) -> SessionManager:
        if self._manager is None:
            raise RuntimeError("Coordinator.attach(manager) was not called")
        return self._manager

    def epoch_of(self, session_id: str) -> int | None:
        """The epoch of this node's lease on the tenant (None: not held). Thread-safe read."""
        return self.held.get(session_id)

    def auth_backend(self, session_id: str) -> AuthBackend:
        """The tenant's auth backend under this node's current epoch (the manager's seam)."""
        epoch = self.held.get(session_id)
        if epoch is None:
            raise LeaseLostError(f"session {session_id}: this node holds no lease on it; it runs on another node")
        loop = self._event_loop

        def on_lost(detail: str) -> None:
            if loop is not None:
                loop.call_soon_threadsafe(self._lose_soon, session_id, epoch, f"a write was refused: {detail}")

        def confirm() -> bool:
            return with_retry(self.pool, lambda c: holds_live(c, session_id, self.node_id, epoch),
                              what=f"session {session_id}: confirming the lease", bound=CONFIRM_BOUND)

        return FencedBackend(self.make_backend(session_id, epoch), on_lost, confirm)

    # ----- life cycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Register the node, run the first round (claims and starts this node's share), then keep
        going every TTL/3 in the background."""
        self._event_loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._with_conn, lambda c: nodes.register(c, self.node_id, self.url, self.ttl))
        self._last_renewed = time.monotonic()
        await self.run_round()
        self._loop_task = asyncio.create_task(self._loop(), name="cluster-coordinator")

    async def handover(self) -> None:
        """SIGTERM: stop the rounds, close every socket (flushing writes), release every lease and
        leave, so the other nodes take the tenants over at once."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        async with self._round_lock:
            for task in list(self._hosting.values()):
                task.cancel()
            held = dict(self.held)
            log.info("cluster: handing over: stopping %d tenant(s)", len(held))
            await asyncio.gather(*(self.manager.evict(sid) for sid in held), return_exceptions=True)
            await self._events_shared()
            try:
                released = await self.leases.release(held)
                await asyncio.to_thread(self._with_conn, lambda c: nodes.leave(c, self.node_id))
            except BridgeError as exc:
                log.error("cluster: could not release %d lease(s) at shutdown (%s); they expire after %.0f s",
                          len(held), exc, self.ttl)
                return
            finally:
                self.held.clear()
            log.info("cluster: handed over %d tenant(s) (%d released)", len(held), len(released))

    async def _events_shared(self) -> None:
        """Before a lease goes: the tenant's last events here (its socket closing) are in the shared log,
        so the next owner's events are numbered after them (a session's order holds across a hand-over).
        Bounded: a database that does not answer delays the hand-over by at most `EVENTS_FLUSH` s."""
        event_log = EventLog.of(self.bus)
        if event_log is None or event_log.shared is None:
            return
        if not await event_log.shared.flush(EVENTS_FLUSH):
            log.warning("cluster: this node's last events are not all in the shared log yet; handing over anyway")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.run_round()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                silent = time.monotonic() - self._last_renewed
                log.warning("cluster: round failed (%s); %.1f s since the last renewal", exc, silent)
                if silent >= self.ttl and self.held:
                    log.error("cluster: no renewal for %.1f s (TTL %.1f s): stopping all %d tenant(s), their leases "
                              "may have moved", silent, self.ttl, len(self.held))
                    for sid, epoch in list(self.held.items()):
                        await self._lose(sid, epoch, f"the database did not answer for {silent:.0f} s")

    def _with_conn(self, step: Callable[[nodes.Conn], T]) -> T:
        with self.pool.connection() as conn:
            return step(conn)

    # ----- one round ----------------------------------------------------------------------
    async def run_round(self) -> RoundPlan:
        """Heartbeat, renew, plan and carry out the plan once; returns the plan."""
        async with self._round_lock:
            return await self._round()

    async def _round(self) -> RoundPlan:
        alive = await asyncio.to_thread(self._with_conn, lambda c: nodes.heartbeat(c, self.node_id, self.ttl))
        if not alive:
            await asyncio.to_thread(self._with_conn, lambda c: nodes.register(c, self.node_id, self.url, self.ttl))
        held = dict(self.held)
        if held:
            result = await self.leases.renew(held)
            for sid in result.lost:
                await self._lose(sid, held[sid], "its renewal was refused (another node holds it now)")
        self._last_renewed = time.monotonic()
        await asyncio.to_thread(self.manager.registry.load)
        tenants = [r.id for r in self.manager.registry.all() if not r.archived]
        rows = {lease.session_id: lease for lease in await self.leases.all_leases()}
        missing = [sid for sid in tenants if sid not in rows]
        if missing:
            await self.leases.add_tenants(missing)
        live = [n.node_id for n in await asyncio.to_thread(self._with_conn, nodes.live_nodes)]
        views = {sid: LeaseView(sid, lease.node_id, lease.live) for sid, lease in rows.items()}
        plan = plan_round(self.node_id, tenants, views, live, self.manager.hosted() | set(self.held),
                          max_release=self.max_release)
        await self._execute(plan)
        return plan

    async def _execute(self, plan: RoundPlan) -> None:
        for sid in plan.stop:
            await self._lose(sid, self.held.get(sid), "its lease is not this node's any more")
        for sid in plan.release:
            epoch = self.held.get(sid)
            if epoch is None:
                continue
            await self.manager.evict(sid)
            self.held.pop(sid, None)
            await self._events_shared()
            await self.leases.release({sid: epoch})
            log.info("cluster: handed tenant %s over (above this node's fair share)", sid)
        if plan.claim:
            for lease in await self.leases.claim(len(plan.claim), only=list(plan.claim)):
                self._take(lease.session_id, lease.epoch)

    def _take(self, session_id: str, epoch: int) -> None:
        self.held[session_id] = epoch
        log.info("cluster: claimed tenant %s (epoch %d)", session_id, epoch)
        self._hosting[session_id] = asyncio.create_task(self._host(session_id), name=f"host-{session_id}")

    async def _host(self, session_id: str) -> None:
        try:
            async with self._starts:
                await self.manager.host(session_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("cluster: hosting tenant %s failed; it stays claimed and the next owner retries", session_id)
        finally:
            self._hosting.pop(session_id, None)

    def _lose_soon(self, session_id: str, epoch: int | None, why: str) -> None:
        task = asyncio.ensure_future(self._lose(session_id, epoch, why))
        self._losing.add(task)
        task.add_done_callback(self._losing.discard)

    async def _lose(self, session_id: str, epoch: int | None, why: str) -> None:
        """Stop a tenant whose lease this node no longer holds (see the module docstring)."""
        if epoch is not None and self.held.get(session_id) not in (None, epoch):
            return  # a newer claim of this node: that lease is fine
        known = self.held.pop(session_id, None) is not None
        task = self._hosting.pop(session_id, None)
        if task is not None:
            task.cancel()
        hosted = session_id in self.manager.hosted()
        if known or hosted:
            message = f"session {session_id}: node {self.node_id} lost its lease ({why}); stopped here at once"
            log.warning("%s", message)
            self.bus.alert(session_id, "lease_lost", "warning", message)
        await self.manager.evict(session_id)

    # ----- routing (the forwarder's question) ---------------------------------------------
    async def route(self, session_id: str, *, create: bool = False, forwarded: bool = False) -> str | None:
        """None: serve the request here; otherwise the URL of the node that owns the tenant.

        A tenant nobody holds is claimed here on demand (a `create` also makes it a tenant), so the
        node that receives the request runs it. A `forwarded` request is never forwarded again:
        if this node is not the owner (it moved meanwhile) it raises `OwnerUnreachable`."""
        if session_id in self.held:
            return None
        lease = await self.leases.owner(session_id)
        if lease is not None and lease.live and lease.node_id == self.node_id:
            return None
        if lease is not None and lease.live and lease.node_id is not None:
            if forwarded:
                raise OwnerUnreachable(f"session {session_id} moved to node {lease.node_id} while this request "
                                       "was forwarded; retry it")
            owner = lease.node_id
            url = await asyncio.to_thread(self._with_conn, lambda c: nodes.url_of(c, owner))
            if url is None:
                raise OwnerUnreachable(f"session {session_id} is owned by node {lease.node_id}, which has no live "
                                       "heartbeat; retry after its lease expires (the tenant then moves)")
            return url
        if lease is None and not create:
            return None  # not a tenant: the local manager answers (404)
        if lease is None:
            await self.leases.add_tenants([session_id])
        async with self._round_lock:
            if session_id not in self.held:
                for won in await self.leases.claim(1, only=[session_id]):
                    self.held[won.session_id] = won.epoch
                    log.info("cluster: claimed tenant %s on demand (epoch %d)", session_id, won.epoch)
            if session_id in self.held:
                await self.manager.host(session_id)
                return None
        again = await self.leases.owner(session_id)
        if again is not None and again.live and again.node_id not in (None, self.node_id) and not forwarded:
            owner = str(again.node_id)
            url = await asyncio.to_thread(self._with_conn, lambda c: nodes.url_of(c, owner))
            if url is not None:
                return url
        raise OwnerUnreachable(f"session {session_id} has no owner now and this node could not claim it (the "
                               "database restarted less than a lease TTL ago, or another node is taking it); retry")
