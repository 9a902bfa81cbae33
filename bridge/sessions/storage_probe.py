"""`probe_write`: does this folder take a durable write right now?

Used where a storage fault has to be seen ending: a suspended session's probe, and the bridge's
start-up check of its auth root. A probe writes a small temp file the way every real write does
(create, write, fsync, through `bridge.store.durable`) and removes it, so a full, read-only,
permission-denied or failing file system answers with the same classified `StoreError` a real
write would get. The file is a `.bridge-tmp.<pid>.*` temp file: if the process dies between
the write and the unlink, `sweep_temp_files` removes it like any dead writer's temp file.
"""

from __future__ import annotations

from pathlib import Path

from bridge.store import durable

PROBE_BYTES = b"baileys-bridge storage probe\n"


def probe_write(folder: Path) -> None:
    """Raise the classified `StoreError` when `folder` cannot take a durable write now."""
    with durable.store_errors(folder, "writing a probe file in"):
        tmp = durable.write_temp(folder, PROBE_BYTES)
        durable.remove_file(tmp)
