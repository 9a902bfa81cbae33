"""A writer of many sessions at once, killed on purpose (used by test_group_power_cut.py, not a test).

Run as `python -m tests.store.group_crash_writer <root> <sessions> <first_gen>`. It opens one
`AuthStore` per session (`<root>/g<i>`, bridge dir `<root>/.bridge`) and runs them on one event
loop as a bridge runs its sessions: each `AsyncAuthStore` writes `batch(i, gen)` in a loop, so
their batches meet in the group commit (`bridge.store.group_commit`), which makes a group of
enough journals durable with one syncfs. It prints `ready` once every journal is open (a crash
left records: replayed), then `keys <session> <gen> <syncfs groups so far>` after each
acknowledged batch: a line printed is a batch acknowledged. It stops when its parent is gone.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
from pathlib import Path

from bridge.store import group_commit
from bridge.store.auth_store import AsyncAuthStore, AuthStore

KEY_IDS = {"session": ["1.0", "2.0", "3.0"], "pre-key": ["1", "2", "3", "4"], "sender-key": ["g@g.us::1::0"]}


def session_id(index: int) -> str:
    return f"g{index}"


def batch(index: int, gen: int, rng: random.Random) -> dict[str, dict[str, str | None]]:
    """Every key of the session at generation `gen`, each a different size (a torn one never parses)."""
    return {
        key_type: {
            key_id: json.dumps({"gen": gen, "s": index, "id": key_id, "pad": "x" * rng.randrange(0, 3000)})
            for key_id in ids
        }
        for key_type, ids in KEY_IDS.items()
    }


async def write(index: int, store: AsyncAuthStore, first_gen: int, parent: int) -> None:
    rng = random.Random(first_gen * 1000 + index)
    gen = first_gen
    while os.getppid() == parent:
        await store.set_keys(batch(index, gen, rng))
        os.write(1, f"keys {index} {gen} {group_commit.stats.syncfs}\n".encode())
        gen += 1


async def main_async(root: Path, sessions: int, first_gen: int) -> None:
    parent = os.getppid()
    stores = [
        AuthStore(root / session_id(i), session_id=session_id(i), bridge_dir=root / ".bridge") for i in range(sessions)
    ]
    os.write(1, b"ready\n")
    await asyncio.gather(*(write(i, AsyncAuthStore(s), first_gen, parent) for i, s in enumerate(stores)))


if __name__ == "__main__":
    asyncio.run(main_async(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
