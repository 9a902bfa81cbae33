"""A writer that is killed with SIGKILL on purpose (used by test_crash_safety.py, not a test).

Run as `python -m tests.store.crash_writer <folder> <bridge_dir> <creds_file>`. It imports the
store once, then acts as a tiny fork server so hundreds of kills stay fast: for each stdin line
`go <first_gen>` it forks a child that opens an `AuthStore` on <folder> and loops forever:
`set_keys(batch(gen))`, prints `keys <gen>`, `save_creds(creds(gen))`, prints `creds <gen>`, gen+1.
The server prints `pid <pid>` after each fork and `dead <pid>` once that child is reaped, so a
reader that saw `dead` has seen every acknowledgement the child made. EOF on stdin ends the server.
"""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path
from typing import Any

from bridge.store.auth_store import AuthStore

ROTATING = "rot"
MAX_GENS_PER_CHILD = 100_000


def key_ids() -> dict[str, list[str]]:
    """The fixed ids every batch rewrites (with the escaping-sensitive characters / and :)."""
    return {
        "pre-key": [str(i) for i in range(8)],
        "session": ["4915112345678.0", "4915112345678_1.12", "123456789012345_1.0"],
        "sender-key": ["120363@g.us::49151::0", "120363@g.us::49152::3"],
        "app-state-sync-key": ["AAAAAF/x", "AAAAAGPn"],
        "lid-mapping": ["4915112345678", "123456789012345_reverse"],
        "device-list": ["4915112345678"],
        "tctoken": ["__index"],
    }


def value_text(gen: int, key_type: str, key_id: str, rng: random.Random) -> str:
    """A value whose size varies, so a torn write could never parse as a complete one."""
    return json.dumps({"gen": gen, "type": key_type, "id": key_id, "pad": "x" * rng.randrange(0, 4000)})


def batch(gen: int, rng: random.Random) -> dict[str, dict[str, str | None]]:
    """One keys.set: every fixed id, plus a rotating pre-key written and its predecessor deleted."""
    out: dict[str, dict[str, str | None]] = {
        t: {i: value_text(gen, t, i, rng) for i in ids} for t, ids in key_ids().items()
    }
    out["pre-key"][f"{ROTATING}{gen}"] = value_text(gen, "pre-key", f"{ROTATING}{gen}", rng)
    out["pre-key"][f"{ROTATING}{gen - 1}"] = None
    return out


def creds_text(base: dict[str, Any], gen: int) -> str:
    """Valid creds carrying the generation; every 7th one is unregistered (exercises the hook)."""
    creds = dict(base, accountSyncCounter=gen)
    if gen % 7 == 3:
        creds.pop("me", None)
    return json.dumps(creds)


def child(folder: Path, bridge_dir: Path, base: dict[str, Any], first_gen: int, parent: int) -> None:
    rng = random.Random(first_gen)
    store = AuthStore(folder, session_id=folder.name, bridge_dir=bridge_dir)
    for gen in range(first_gen, first_gen + MAX_GENS_PER_CHILD):
        if os.getppid() != parent:
            break
        store.set_keys(batch(gen, rng))
        os.write(1, f"keys {gen}\n".encode())
        store.save_creds(creds_text(base, gen))
        os.write(1, f"creds {gen}\n".encode())


def main() -> int:
    folder, bridge_dir, creds_file = (Path(a) for a in sys.argv[1:4])
    base = json.loads(creds_file.read_text())
    for line in sys.stdin:
        parts = line.split()
        if not parts or parts[0] != "go":
            continue
        server = os.getpid()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                child(folder, bridge_dir, base, int(parts[1]), server)
            except BaseException as exc:
                os.write(2, f"child error: {exc!r}\n".encode())
                code = 1
            os._exit(code)
        os.write(1, f"pid {pid}\n".encode())
        _, status = os.waitpid(pid, 0)
        os.write(1, f"dead {pid} {status}\n".encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
