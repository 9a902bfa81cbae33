"""Free space and free inodes where the bridge writes, as a doctor check and as live metrics.

A full disk does not lose acknowledged creds (writes fail before they are acknowledged), but a
session that cannot save new Signal keys stops working, and snapshots stop. Inodes run out before
bytes on a file system full of small files, which is exactly what an auth folder is (one file per
key), so both are measured. Space follows the monitor's `disk_low` alert: a warning under
BRIDGE_MONITOR_MIN_FREE_MB, an error under a quarter of it. Inodes: a warning under 5% free, an
error under 1% (or under 1000). Each file system is judged once, however many roots it holds.

`DiskCollector` exports the same numbers on `/metrics` at scrape time
(`bridge_disk_free_bytes{root}`, `bridge_disk_size_bytes{root}`, `bridge_disk_free_inodes{root}`,
`bridge_disk_inodes{root}`, and the threshold `bridge_disk_min_free_bytes`), so Prometheus alerts
on the same line as the monitor without a node exporter.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.core import REGISTRY, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bridge.config import Settings
from bridge.doctor.result import CheckResult, error, ok, warning
from bridge.errors import BridgeError
from bridge.eventlog.location import state_dir

NAME = "disk"
MIB = 1 << 20
#: Free inodes under 5% of all are a warning; under 1% (or under 1000) an error.
INODE_WARN_RATIO = 0.05
INODE_ERROR_RATIO = 0.01
INODE_ERROR = 1000


@dataclass(frozen=True)
class DiskUsage:
    """statvfs of the file system holding one root, as the bridge's user sees it."""

    root: str
    path: Path
    device: int
    free_bytes: int
    size_bytes: int
    free_inodes: int
    inodes: int

    @classmethod
    def of(cls, root: str, path: Path) -> DiskUsage:
        """Measure the file system of `path`, or of its nearest existing parent. Raises OSError."""
        target = path.resolve()
        while not target.exists() and target != target.parent:
            target = target.parent
        st = os.statvfs(target)
        return cls(root, path, os.stat(target).st_dev, st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize,
                   st.f_favail, st.f_files)


def roots(settings: Settings) -> dict[str, Path]:
    """The folders the bridge writes: `auth` always, `state` unless misconfigured."""
    found = {"auth": Path(settings.auth_root)}
    try:
        found["state"] = state_dir(settings)
    except BridgeError:
        pass
    return found


def _judge(usage: DiskUsage, min_free: int) -> tuple[str, str] | None:
    """(severity, what) for one root, or None when it has room."""
    free_mb = usage.free_bytes / MIB
    if min_free and usage.free_bytes < min_free / 4:
        return "error", f"{usage.path}: only {free_mb:.0f} MiB free (under a quarter of {min_free // MIB} MiB)"
    if min_free and usage.free_bytes < min_free:
        return "warning", f"{usage.path}: {free_mb:.0f} MiB free, under {min_free // MIB} MiB"
    if usage.inodes:  # 0: the file system does not count inodes (btrfs, some FUSE)
        if usage.free_inodes < max(INODE_ERROR, usage.inodes * INODE_ERROR_RATIO):
            return "error", f"{usage.path}: only {usage.free_inodes} free inodes of {usage.inodes}"
        if usage.free_inodes < usage.inodes * INODE_WARN_RATIO:
            return "warning", f"{usage.path}: {usage.free_inodes} free inodes of {usage.inodes}"
    return None


def check(settings: Settings, timeout: float) -> CheckResult:
    """See the module docstring."""
    del timeout
    min_free = settings.monitor_min_free_mb * MIB
    usages: list[DiskUsage] = []
    for root, path in roots(settings).items():
        try:
            usage = DiskUsage.of(root, path)
        except OSError as exc:
            return error(NAME, f"cannot measure free space of {path}: {exc}", "check the path and its permissions")
        if all(u.device != usage.device for u in usages):
            usages.append(usage)
    details = {u.root: {"path": str(u.path), "free_bytes": u.free_bytes, "size_bytes": u.size_bytes,
                        "free_inodes": u.free_inodes, "inodes": u.inodes} for u in usages}
    verdicts = [v for v in (_judge(u, min_free) for u in usages) if v is not None]
    fix = "free space or inodes (prune old snapshots: `python -m bridge prune`; `prune-trash`), or grow the disk"
    if any(severity == "error" for severity, _ in verdicts):
        return error(NAME, "; ".join(what for _, what in verdicts), fix, **details)
    if verdicts:
        return warning(NAME, "; ".join(what for _, what in verdicts), fix, **details)
    summary = "; ".join(f"{u.path}: {u.free_bytes / MIB:.0f} MiB, {u.free_inodes} inodes free" for u in usages)
    return ok(NAME, summary, **details)


class DiskCollector(Collector):
    """Measures the roots at each scrape (statvfs is a cheap system call)."""

    def __init__(self, settings: Settings) -> None:
        self._roots = roots(settings)
        self._min_free = settings.monitor_min_free_mb * MIB

    def collect(self) -> Iterator[Metric]:
        free = GaugeMetricFamily("bridge_disk_free_bytes", "Bytes free for the bridge's user", labels=["root"])
        size = GaugeMetricFamily("bridge_disk_size_bytes", "Size of the file system holding the root",
                                 labels=["root"])
        free_inodes = GaugeMetricFamily("bridge_disk_free_inodes", "Inodes free for the bridge's user",
                                        labels=["root"])
        inodes = GaugeMetricFamily("bridge_disk_inodes", "Inodes of the file system holding the root (0: not counted)",
                                   labels=["root"])
        for root, path in self._roots.items():
            try:
                usage = DiskUsage.of(root, path)
            except OSError:
                continue
            free.add_metric([root], usage.free_bytes)
            size.add_metric([root], usage.size_bytes)
            free_inodes.add_metric([root], usage.free_inodes)
            inodes.add_metric([root], usage.inodes)
        yield from (free, size, free_inodes, inodes)
        yield GaugeMetricFamily("bridge_disk_min_free_bytes", "BRIDGE_MONITOR_MIN_FREE_MB in bytes (disk_low line)",
                                value=self._min_free)


_registered: DiskCollector | None = None


def register_disk_metrics(settings: Settings) -> None:
    """Export the disk gauges on the default registry (what `/metrics` serves); idempotent."""
    global _registered
    if _registered is not None:
        REGISTRY.unregister(_registered)
    _registered = DiskCollector(settings)
    REGISTRY.register(_registered)
