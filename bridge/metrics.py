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
STORE_ERRORS = Counter("bridge_store_errors_total", "Store operations that failed", ["op"])
SNAPSHOTS_TOTAL = Counter("bridge_snapshots_total", "Snapshots taken", ["reason"])
SNAPSHOT_LAST_TIMESTAMP = Gauge("bridge_snapshot_last_timestamp", "Unix time of the last snapshot", ["session"])
ALERTS_SENT = Counter("bridge_alerts_sent_total", "Alerts delivered", ["sink", "severity"])
ALERTS_FAILED = Counter("bridge_alerts_failed_total", "Alert delivery attempts that failed", ["sink"])
MONITOR_RESTORES = Counter("bridge_monitor_restores_total", "Auth folders restored by the monitor", ["reason"])
WEBHOOK_DELIVERIES = Counter("bridge_webhook_deliveries_total", "Webhook delivery attempts", ["outcome"])
