"""Run `python -m bridge ...` under the suite's no-delete audit hook, in a subprocess.

    python -m tests.monitor.audited_cli <guarded-root> <bridge args...>

Any delete or truncate under <guarded-root> is refused; the violations are printed to stderr as
`AUDIT-VIOLATION <what>` lines at exit, and the exit code becomes 99 if there was any, so the CLI
itself is held to the same rule as the in-process monitor.
"""

from __future__ import annotations

import atexit
import os
import sys

from tests.monitor.audit import install


def main() -> None:
    guard = install()
    guard.roots[:] = [os.path.realpath(sys.argv[1])]

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
