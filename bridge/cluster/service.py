"""`ClusterNode`: the pieces one bridge needs in cluster mode, opened and closed together.

`open_cluster_node(settings, bus)` connects to `BRIDGE_CLUSTER_DSN` (pools: synchronous for the
auth backend, the tenants' records and the node row; asynchronous for leases), creates or
upgrades the schema, and builds the `Coordinator`. `bridge.app.serve` then gives the manager
`manager_options()` (records in PostgreSQL, auth bytes in PostgreSQL under the lease epoch, host
only what this node holds), the API `forward_middleware()`, starts the coordinator after the API
listens, hands over at SIGTERM and `close()`s last.

It runs the retention of the cluster's snapshots and trash (`RetentionLoop`, bridge/cluster/
retention.py: every node tries, one at a time applies it) until `close()`.

It also composes the node's event log (found with `EventLog.of(bus)`, opened before) with the
cluster's shared log (`SharedEvents`, bridge/cluster/events.py): events, SSE and the webhook
outbox are then the cluster's, on its own asynchronous pool.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import aiohttp
from aiohttp.typedefs import Middleware
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from bridge.cluster import events, nodes, schema, tenants
from bridge.cluster.auth_backend import PgAuthBackend
from bridge.cluster.coordinator import Coordinator
from bridge.cluster.db import open_async_pool, open_pool, redact
from bridge.cluster.events import SharedEvents
from bridge.cluster.forward import make_forward_middleware
from bridge.cluster.leases import Leases
from bridge.cluster.retention import RetentionLoop, RetentionPolicy
from bridge.cluster.session_snapshots import SessionSnapshots
from bridge.config import Settings
from bridge.eventlog.log import EventLog
from bridge.events import EventBus
from bridge.store.journal import AuthBackend

if TYPE_CHECKING:
    from bridge.store.identity import IdentityBook
    from bridge.store.snapshots import Snapshots

log = logging.getLogger(__name__)


def node_identity(settings: Settings) -> tuple[str, str]:
    """This node's id and internal URL (settings, else `<hostname>-<port>` and `http://<host>:<port>`)."""
    hostname = socket.gethostname()
    node_id = settings.cluster_node_id or f"{hostname}-{settings.port}"
    host = settings.host if settings.host not in ("0.0.0.0", "::", "") else hostname
    url = settings.cluster_node_url or f"http://{host}:{settings.port}"
    return node_id, url


@dataclass
class ClusterNode:
    """See the module docstring."""

    settings: Settings
    node_id: str
    url: str
    pool: ConnectionPool
    async_pool: AsyncConnectionPool
    coordinator: Coordinator
    events: SharedEvents | None = None
    retention: RetentionLoop | None = None
    _client: aiohttp.ClientSession | None = None

    def manager_options(self) -> dict[str, Any]:
        """Keyword arguments of `SessionManager` for cluster mode."""
        return {
            "records": tenants.PgRecords(self.pool, self.node_id, self.coordinator.epoch_of),
            "auth_backends": self.coordinator.auth_backend,
            "identities": cast("IdentityBook", self.identities()),
            "hosts_all": False,
        }

    def identities(self) -> tenants.PgIdentities:
        """The identity book of the cluster's tenants (the `IdentityBook` calls sessions make)."""
        return tenants.PgIdentities(self.pool, self.node_id, self.coordinator.epoch_of)

    def session_snapshots(self) -> Snapshots:
        """The snapshots the sessions and the snapshot API use: the tenant's rows, not the node's empty
        folders. Only the calls they make are provided (bridge/cluster/session_snapshots.py), hence
        the cast."""
        return cast("Snapshots", SessionSnapshots(self.pool, self.node_id, self.coordinator.epoch_of))

    def client(self) -> aiohttp.ClientSession:
        """The one HTTP client this node forwards with (created on first use, in the event loop)."""
        if self._client is None:
            self._client = aiohttp.ClientSession(auto_decompress=False)
        return self._client

    def forward_middleware(self) -> Middleware:
        return make_forward_middleware(self.coordinator, node_id=self.node_id,
                                       timeout=self.settings.cluster_forward_timeout, client=self.client)

    async def close(self) -> None:
        if self.retention is not None:
            await self.retention.close()
        if self._client is not None:
            await self._client.close()
        if self.events is not None:
            await self.events.close()
            await self.events.pool.close()
        await self.async_pool.close()
        self.pool.close()


async def open_cluster_node(settings: Settings, bus: EventBus) -> ClusterNode:
    """Connect, create the schema and build the coordinator (raises `ClusterUnavailableError`)."""
    node_id, url = node_identity(settings)
    pool = open_pool(settings.cluster_dsn, max_size=16, name=f"bridge-{node_id}")
    try:
        async_pool = await open_async_pool(settings.cluster_dsn, name=f"bridge-{node_id}-leases")
    except BaseException:
        pool.close()
        raise
    with pool.connection() as conn:
        schema.ensure_schema(conn)
        schema.ensure_schema(conn, nodes.COMPONENT, nodes.MIGRATIONS)
        schema.ensure_schema(conn, tenants.COMPONENT, tenants.MIGRATIONS)
        schema.ensure_schema(conn, events.COMPONENT, events.MIGRATIONS)
    ttl = settings.cluster_lease_ttl

    def make_backend(session_id: str, epoch: int) -> AuthBackend:
        return PgAuthBackend(pool, session_id, node_id=node_id, epoch=epoch)

    coordinator = Coordinator(
        node_id=node_id, url=url, ttl=ttl, leases=Leases(async_pool, node_id, ttl), pool=pool, bus=bus,
        make_backend=make_backend, start_concurrency=settings.start_concurrency,
    )
    log.info("cluster mode: node %s (%s) on %s, lease TTL %.1f s", node_id, url, redact(settings.cluster_dsn), ttl)
    node = ClusterNode(settings, node_id, url, pool, async_pool, coordinator)
    node.retention = RetentionLoop(pool, RetentionPolicy(trash_max_age_days=settings.trash_max_age_days))
    node.retention.start()
    event_log = EventLog.of(bus)
    if event_log is not None:
        node.events = await open_shared_events(settings, node_id, pool, event_log)
    return node


async def open_shared_events(
    settings: Settings, node_id: str, pool: ConnectionPool, event_log: EventLog
) -> SharedEvents:
    """The shared event log of this node, composed with its open `event_log` (see the module docstring)."""
    events_pool = await open_async_pool(settings.cluster_dsn, name=f"bridge-{node_id}-events")
    shared = SharedEvents(
        events_pool, pool, settings.cluster_dsn, node_id,
        retention_age=settings.event_retention_days * 86400.0, retention_count=settings.event_retention_count,
        claim_ttl=settings.webhook_timeout + 30.0,
    )
    try:
        await shared.attach(event_log)
    except BaseException:
        await events_pool.close()
        raise
    return shared
