"""Run `python -m bridge ...` under the monitor suite's no-delete audit hook, for the fault tests.

    python -m tests.faults.audited_bridge <auth-root> <bridge args...>

Same guard as tests/monitor/audited_cli.py (tests/monitor/audit.py), widened to the whole bridge:
nothing under the auth root may be deleted or truncated, except the bridge's own scratch that
holds no credentials of its own: in-flight temp files (`.bridge-tmp.*`), staging folders of a
restore, objects of a snapshot that failed half way (issue 12 asks that those be cleaned up), and
write-ahead journal segments the journal removes once their records are in the folder. Violations
are printed to stderr as `AUDIT-VIOLATION <what>` lines, and the exit code becomes 99.
"""

from __future__ import annotations

import atexit
import os
import sys

from tests.monitor.audit import install

SCRATCH_DIRS = tuple(f"{os.sep}.bridge{os.sep}{name}{os.sep}" for name in ("staging", "objects", "journal"))


def _is_scratch(path: str) -> bool:
    return os.path.basename(path).startswith(".bridge-tmp.") or any(part in path for part in SCRATCH_DIRS)


def main() -> None:
    guard = install()
    guard.roots[:] = [os.path.realpath(sys.argv[1])]
    guarded = guard.covers
    guard.covers = lambda path: guarded(path) and not _is_scratch(path)  # type: ignore[method-assign]

    def report() -> None:
        for problem in guard.violations:
            print(f"AUDIT-VIOLATION {problem}", file=sys.stderr, flush=True)
        if guard.violations:
            os._exit(99)

    atexit.register(report)
    from bridge.__main__ import main as bridge_main

    code = bridge_main(sys.argv[2:])
    report()
    sys.exit(code)


if __name__ == "__main__":
    main()
