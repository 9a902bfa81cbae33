"""`probe_write`: does the auth root take a durable write right now?

Used where a storage fault has to be seen ending: a suspended session's probe, and the bridge's
start-up check of its auth root. A probe rewrites `.bridge/storage-probe` the way every real write
is done (temp file, write, fsync, rename, fsync the folder, through `bridge.store.durable`), so a
full, read-only, permission-denied or failing file system answers with the same classified
`StoreError` a real write would get. It rewrites one file instead of creating and removing one:
nothing under the auth root is ever removed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from bridge.store import durable
from bridge.store.layout import BridgeDirs


def probe_write(bridge_dir: Path) -> None:
    """Raise the classified `StoreError` when the root of `bridge_dir` cannot take a durable
    write now (creating `.bridge/` if it is missing)."""
    durable.make_dirs(bridge_dir)
    durable.atomic_write(BridgeDirs(bridge_dir).storage_probe, f"{os.getpid()} {time.time():.3f}\n".encode())
