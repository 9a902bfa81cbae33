"""Damage done to an auth root from outside, by another process (`sh -c`), the way scripts,
operators and full disks do it. Nothing here goes through the bridge.
"""

from __future__ import annotations

import random
import shlex
import subprocess
from enum import StrEnum
from pathlib import Path

from bridge.store.layout import CREDS_FILE
from tests.faults.tenants import key_files
from tests.monitor.helpers import damage as sh
from tests.monitor.helpers import make_legacy_folder


class CredsDamage(StrEnum):
    DELETED = "deleted"
    TRUNCATED = "truncated"
    INVALID = "invalid"
    UNREGISTERED = "unregistered"


def q(path: Path) -> str:
    return shlex.quote(str(path))


def damage_creds(folder: Path, how: CredsDamage, scratch: Path) -> None:
    """Break `folder/creds.json` in one of the ways of issue 12."""
    creds = folder / CREDS_FILE
    if how is CredsDamage.DELETED:
        sh(f"rm -f {q(creds)}")
    elif how is CredsDamage.TRUNCATED:
        sh(f"truncate -s 100 {q(creds)}")  # a torn write: the first 100 bytes survive
    elif how is CredsDamage.INVALID:
        sh(f"sed -i '0,/{{/s//[/' {q(creds)}")  # same size, no longer JSON
    else:
        fresh = scratch / "fresh-identity"
        make_legacy_folder(fresh, 1, fresh=True)  # real Baileys initAuthCreds(), never linked
        sh(f"cp {q(fresh / CREDS_FILE)} {q(creds)}")


def copy_creds(source: Path, target: Path) -> bytes:
    """Put another tenant's creds.json over `target`'s (cp writes in place); returns the bytes."""
    sh(f"cp {q(source / CREDS_FILE)} {q(target / CREDS_FILE)}")
    return (target / CREDS_FILE).read_bytes()


def swap_folders(a: Path, b: Path) -> None:
    """The rename dance: a -> .swap, b -> a, .swap -> b (three renames, no copy)."""
    tmp = a.parent / f".swap-{a.name}"
    sh(f"mv {q(a)} {q(tmp)} && mv {q(b)} {q(a)} && mv {q(tmp)} {q(b)}")


def delete_keys_one_by_one(folder: Path, fraction: float = 0.8, pause: float = 0.005) -> set[str]:
    """`rm` `fraction` of the key files, one `rm` per file; returns the names deleted."""
    names = sorted(key_files(folder))
    doomed = set(random.Random(len(names)).sample(names, int(len(names) * fraction)))
    script = "; ".join(f"rm -f {q(folder / name)}; sleep {pause}" for name in sorted(doomed))
    subprocess.run(["sh", "-c", script], check=True)
    return doomed


def remove_folder(folder: Path) -> None:
    sh(f"rm -rf {q(folder)}")
