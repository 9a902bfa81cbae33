"""The last few distinct creds texts of a session, so creds-only damage can be undone exactly.

Why: a creds.json truncated or overwritten from outside must not cost the key files (a restored
snapshot can be minutes old and hold far fewer of them). With the newest intact creds of the
same account at hand, a repair puts back creds.json alone and leaves every key file in place.

`AuthStore.save_creds` keeps, in `.bridge/creds-history/<session>/<time_ns>-<sha12>.json`:
- the creds it is replacing, when they are valid and not kept yet (durably, before replacing:
  creds written by legacy Baileys or an older bridge enter the history this way);
- the creds it has just written, as a best-effort copy (no fsync: creds.json itself is durable;
  a power cut can only lose or empty the copy, and readers validate what they find).
So the newest entry is normally the creds on disk, and every previous valid creds stays
restorable until `keep` newer distinct texts have pushed it out. A text seen again moves to the
front instead of being stored twice.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from bridge.errors import CredsCorruptError
from bridge.store import durable
from bridge.store.creds import is_registered, validate_creds_text
from bridge.store.identity import Identity, identity_of

log = logging.getLogger(__name__)

HISTORY_DIR: Final = "creds-history"
#: Distinct creds texts kept per session (a few KiB each).
DEFAULT_KEEP: Final = 20
_SHA_CHARS: Final = 12


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:_SHA_CHARS]


class CredsHistory:
    """`.bridge/creds-history/<session>/` of one session (see module docstring)."""

    def __init__(self, bridge_dir: Path, session_id: str, keep: int = DEFAULT_KEEP) -> None:
        self.folder = Path(bridge_dir) / HISTORY_DIR / session_id
        self.session_id = session_id
        self.keep = max(keep, 1)

    def names(self) -> list[str]:
        """Entry names, oldest first (names start with the time in ns)."""
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise durable.explain_os_error(exc, self.folder, "listing") from exc
        entries = [n for n in names if n.endswith(".json") and not n.startswith(".") and n.partition("-")[0].isdigit()]
        return sorted(entries, key=lambda n: (int(n.partition("-")[0]), n))

    def contains(self, data: bytes, names: list[str] | None = None) -> bool:
        """True when `data` is kept already (by content hash); `names` saves a listing."""
        suffix = f"-{_sha(data)}.json"
        return any(n.endswith(suffix) for n in (self.names() if names is None else names))

    def add(self, data: bytes, *, durable_copy: bool, names: list[str] | None = None) -> None:
        """Make `data` the newest entry; drop the oldest beyond `keep`.

        `durable_copy` fsyncs the entry and the folder (for creds about to be replaced); without
        it the entry is a best-effort copy of creds that are durable in creds.json. `names` (a
        fresh `names()`, which this updates) saves a listing per save.
        """
        names = self.names() if names is None else names
        sha = _sha(data)
        target = self.folder / f"{time.time_ns()}-{sha}.json"
        same = [n for n in names if n.endswith(f"-{sha}.json")]
        if same and same[-1] == names[-1]:
            return
        if not names:
            durable.make_dirs(self.folder)
        if same:
            durable.rename(self.folder / same[-1], target, sync_dirs=durable_copy)
            names.remove(same[-1])
        else:
            durable.atomic_write(target, data, sync_dir=durable_copy, sync_file=durable_copy)
        names.append(target.name)
        for name in names[: max(len(names) - self.keep, 0)]:
            durable.remove(self.folder / name, sync_dir=False)
            names.remove(name)

    def entries(self) -> Iterator[tuple[Path, bytes]]:
        """(path, bytes) of every entry, newest first; unreadable ones are skipped (logged)."""
        for name in reversed(self.names()):
            path = self.folder / name
            try:
                yield path, path.read_bytes()
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.warning("%s", durable.explain_os_error(exc, path, "reading"))

    def newest_intact(self, identity: Identity) -> tuple[str, Path] | None:
        """Text and path of the newest valid, registered creds of `identity`, or None."""
        for path, data in self.entries():
            creds = linked_creds_of(data, identity)
            if creds is not None:
                return data.decode("utf-8"), path
        return None


def linked_creds_of(data: bytes, identity: Identity) -> dict[str, Any] | None:
    """`data` parsed if it is valid, registered creds of `identity`, else None."""
    try:
        creds = validate_creds_text(data.decode("utf-8"))
    except (CredsCorruptError, UnicodeDecodeError):
        return None
    if not is_registered(creds) or not identity_of(creds).same_account(identity):
        return None
    return creds
