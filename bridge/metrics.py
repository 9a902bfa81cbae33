"""Prometheus metrics shared by every part (one place, so names stay consistent).

Parts import the metric they feed; `/metrics` exposes the default registry.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SESSIONS_BY_STATE = Gauge("bridge_sessions", "Sessions by state", ["state"])
RUNTIME_RESTARTS = Counter("bridge_runtime_restarts_total", "Node runtime restarts", ["session"])
IPC_VIOLATIONS = Counter("bridge_ipc_violations_total", "IPC protocol violations", ["session", "kind"])
IPC_REQUESTS = Counter("bridge_ipc_requests_total", "IPC requests from Node", ["op"])
STORE_WRITE_SECONDS = Histogram(
    "bridge_store_write_seconds",
    "Latency of one durable store write (a batch counts once)",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
STORE_FSYNCS = Counter("bridge_store_fsyncs_total", "fsync calls made by the store", ["target"])
INLINE_COMMITS = Counter(
    "bridge_store_commits_total",
    "Short commits by where they ran: on the event loop or in a worker thread (bridge/store/inline.py)",
    ["store", "where"],
)
STORE_ERRORS = Counter("bridge_store_errors_total", "Store operations that failed", ["op"])
SNAPSHOTS_TOTAL = Counter("bridge_snapshots_total", "Snapshots taken", ["reason"])
SNAPSHOT_LAST_TIMESTAMP = Gauge("bridge_snapshot_last_timestamp", "Unix time of the last snapshot", ["session"])
ALERTS_SENT = Counter("bridge_alerts_sent_total", "Alerts delivered", ["sink", "severity"])
ALERTS_FAILED = Counter("bridge_alerts_failed_total", "Alert delivery attempts that failed", ["sink"])
MONITOR_RESTORES = Counter("bridge_monitor_restores_total", "Auth folders restored by the monitor", ["reason"])
WEBHOOK_DELIVERIES = Counter(
    "bridge_webhook_deliveries_total", "Webhook delivery attempts by outcome (delivered, retry, dead)", ["outcome"]
)
WEBHOOK_BACKLOG = Gauge("bridge_webhook_backlog", "Webhook deliveries waiting (pending outbox rows)", ["webhook"])
WEBHOOK_DEAD = Gauge("bridge_webhook_dead_letters", "Webhook deliveries past the retry horizon", ["webhook"])
WEBHOOK_OLDEST_AGE = Gauge(
    "bridge_webhook_oldest_undelivered_seconds", "Age of the oldest pending webhook delivery", ["webhook"]
)
EVENTS_PERSISTED = Counter("bridge_events_persisted_total", "Events written to the event log")
EVENTS_LOST = Counter("bridge_events_lost_total", "Events dropped because the event log could not write for too long")
EVENT_LOG_HELD = Gauge("bridge_event_log_held", "Events waiting in memory for the event log to write them")
EVENT_LOG_COMMIT_SECONDS = Histogram(
    "bridge_event_log_commit_seconds",
    "Latency of one event log transaction (a burst of events counts once)",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
