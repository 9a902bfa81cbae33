"""A bridge started with the usual soft open-files limit (1024 under systemd, lower in some shells)
raises it to the hard limit before it opens anything: each running session holds three
descriptors, so 1000 tenants need about 3,200."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = "from bridge.app import raise_open_files_limit; import resource; " \
        "print(raise_open_files_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])"


def test_the_service_raises_a_low_soft_open_files_limit_to_the_hard_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(256, hard)

    def lower_soft_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))

    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         preexec_fn=lower_soft_limit, capture_output=True, text=True, timeout=60, check=True)
    returned, soft = (int(x) for x in out.stdout.split())
    expected = hard if hard != resource.RLIM_INFINITY else 65536
    assert returned == soft == expected > low
