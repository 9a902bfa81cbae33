"""Auth root and state folder: writable, and on a file system where fsync and rename mean it.

The store's promise (a creds write acknowledged is a creds write that survives a power cut)
holds only on a local file system that honours fsync and atomic rename. So the probe does what
the store does, through `bridge/store/durable.py`: write a temp file and fsync it and its folder,
read it back, rename it and fsync again, read it under the new name, remove it. In the auth root
the probe lives in `.bridge/` (never beside the session folders); its names are durable temp
names, so a probe killed half-way is swept like any other writer's leftovers.

It also names the file system type: network file systems (NFS, SMB, FUSE) may acknowledge an
fsync or a lock they do not keep, and tmpfs or a container's overlay layer is lost with the
machine or the container, taking every session's login with it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bridge.config import Settings
from bridge.doctor.result import CheckResult, error, ok, warning
from bridge.errors import BridgeError, StoreError
from bridge.eventlog.location import state_dir
from bridge.store import durable

AUTH_ROOT = "auth_root"
STATE_DIR = "state_dir"
PROBE_BYTES = 4096

NETWORK_TYPES = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs", "afs", "lustre",
                           "gpfs", "davfs", "virtiofs"})
VOLATILE_TYPES = frozenset({"tmpfs", "ramfs"})
LAYER_TYPES = frozenset({"overlay", "aufs"})


@dataclass(frozen=True)
class Mount:
    """The mount a path lives on (from /proc/self/mountinfo)."""

    point: Path
    fstype: str
    source: str
    read_only: bool


def _unescape(field: str) -> str:
    return field.encode().decode("unicode_escape") if "\\" in field else field


def mount_of(path: Path) -> Mount | None:
    """The mount holding `path` (the longest mount point above it), or None if unknown."""
    target = path.resolve()
    best: Mount | None = None
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 6 or len(tail) < 2:
            continue
        point = Path(_unescape(fields[4]))
        if point != target and point not in target.parents:
            continue
        if best is None or len(point.parts) >= len(best.point.parts):
            best = Mount(point, tail[0], tail[1], "ro" in fields[5].split(","))
    return best


def file_system_problem(mount: Mount | None) -> tuple[str, str] | None:
    """(what is wrong, the fix) for a file system the store cannot rely on, else None."""
    if mount is None:
        return None
    kind = mount.fstype
    where = f"{mount.point} is {kind}"
    if kind in NETWORK_TYPES or kind.startswith("fuse"):
        return (f"{where}, a network/FUSE file system: fsync, rename and flock may not mean what they say",
                "move it to a local ext4 or xfs file system")
    if kind in VOLATILE_TYPES:
        return (f"{where}: everything on it, every session's login included, is lost at reboot",
                "move it to a persistent local disk (ext4 or xfs)")
    if kind in LAYER_TYPES:
        return (f"{where}, a container's writable layer: it is lost with the container",
                "mount a volume (a local ext4/xfs disk) at this path")
    return None


def probe(folder: Path) -> None:
    """Write, fsync, read back, rename, fsync, read back and remove one temp file in `folder`.

    Raises `StoreError` (classified: full, read-only, permission, I/O) when a step fails, or when
    the bytes read back differ from those written.
    """
    data = os.urandom(PROBE_BYTES)
    first, second = folder / durable.temp_name(), folder / durable.temp_name()
    try:
        durable.atomic_write(first, data)
        if first.read_bytes() != data:
            raise StoreError(f"{first} read back different bytes than were written and fsynced")
        durable.rename(first, second)
        if first.exists() or second.read_bytes() != data:
            raise StoreError(f"renaming {first} to {second} did not move the file whole")
        durable.remove(second)
    except OSError as exc:
        raise durable.explain_os_error(exc, first, "checking") from exc
    finally:
        for leftover in (first, second):
            try:
                durable.remove(leftover, sync_dir=False)
            except StoreError:
                pass


def _nearest_existing(path: Path) -> Path:
    probe_path = path.resolve()
    while not probe_path.exists() and probe_path != probe_path.parent:
        probe_path = probe_path.parent
    return probe_path


def _check_folder(name: str, folder: Path, probe_in: Path, what: str) -> CheckResult:
    if not folder.exists():
        parent = _nearest_existing(folder)
        if not os.access(parent, os.W_OK | os.X_OK):
            return error(name, f"{what} {folder} does not exist and {parent} is not writable",
                         f"create {folder} and give the bridge user write access to it")
        trouble = file_system_problem(mount_of(parent))
        said = f"{what} {folder} does not exist yet" + (f"; and {trouble[0]}" if trouble else "")
        return warning(name, said, "check the path: if this is the first start the bridge creates it, run the "
                       "doctor again afterwards; if sessions were expected there, the setting points elsewhere",
                       path=str(folder))
    if not folder.is_dir():
        return error(name, f"{what} {folder} is not a folder", f"point the setting at a folder, or move {folder} aside")
    try:
        if probe_in != folder:
            durable.make_dirs(probe_in)
        probe(probe_in)
    except BridgeError as exc:
        return error(name, f"{what} {folder} failed the write probe: {exc}",
                     "give the bridge user write access to it on a healthy, writable file system", path=str(folder))
    mount = mount_of(folder)
    details = {"path": str(folder), "fstype": mount.fstype if mount else None,
               "mount_point": str(mount.point) if mount else None}
    trouble = file_system_problem(mount)
    if trouble is not None:
        return warning(name, f"{what} {folder} is writable, but {trouble[0]}", trouble[1], **details)
    kind = f" ({mount.fstype})" if mount else ""
    return ok(name, f"{what} {folder}{kind}: write, fsync, rename and read back work", **details)


def check_auth_root(settings: Settings, timeout: float) -> CheckResult:
    """The auth root (probe under `.bridge/`)."""
    del timeout
    root = Path(settings.auth_root)
    return _check_folder(AUTH_ROOT, root, settings.bridge_dir, "auth root")


def check_state_dir(settings: Settings, timeout: float) -> CheckResult:
    """The state folder (event log, webhook outbox): probe in the folder itself."""
    del timeout
    try:
        folder = state_dir(settings)
    except BridgeError as exc:
        return error(STATE_DIR, str(exc), "set BRIDGE_STATE_DIR to a folder beside the auth root")
    return _check_folder(STATE_DIR, folder, folder, "state folder")
