"""`python -m bridge doctor`: is this machine fit to run the bridge, and what to fix if not.

One check per module, each `check(settings, timeout) -> CheckResult`; `run_checks` runs them all
(in threads: two of them wait on the network, one on Node) and returns the results in the fixed
order of `CHECKS`. Checks only read, except the write probes of `storage`, which go through
`bridge/store/durable.py` like every other byte the bridge writes and remove what they wrote.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from bridge.config import Settings
from bridge.doctor import api_keys, baileys, clock, disk, node, snapshots, storage, telegram
from bridge.doctor.result import CheckResult, Status, error, exit_code, worst

__all__ = ["CHECKS", "CheckResult", "Status", "exit_code", "run_checks", "worst"]

Check = Callable[[Settings, float], CheckResult]

CHECKS: tuple[tuple[str, Check], ...] = (
    (node.NAME, node.check),
    (baileys.NAME, baileys.check),
    (storage.AUTH_ROOT, storage.check_auth_root),
    (storage.STATE_DIR, storage.check_state_dir),
    (disk.NAME, disk.check),
    (snapshots.NAME, snapshots.check),
    (api_keys.NAME, api_keys.check),
    (telegram.NAME, telegram.check),
    (clock.NAME, clock.check),
)


def _guarded(name: str, check: Check, settings: Settings, timeout: float) -> CheckResult:
    """A check that crashes is a finding too (with the exception), never a traceback for the operator."""
    try:
        return check(settings, timeout)
    except Exception as exc:
        return error(name, f"the check itself failed: {type(exc).__name__}: {exc}",
                     "report this as a bug of `python -m bridge doctor`")


def run_checks(settings: Settings, *, timeout: float = 5.0, only: set[str] | None = None) -> list[CheckResult]:
    """Run every check (or those named in `only`); `timeout` bounds each network call and Node run."""
    chosen = [(name, fn) for name, fn in CHECKS if only is None or name in only]
    with ThreadPoolExecutor(max_workers=max(1, len(chosen)), thread_name_prefix="doctor") as pool:
        futures = [pool.submit(_guarded, name, fn, settings, timeout) for name, fn in chosen]
        return [f.result() for f in futures]
