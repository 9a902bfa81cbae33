"""Snapshots and prune in two real processes at once: prune never deletes an object that a
snapshot being written references (shared/exclusive repository lock)."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bridge.config import PROJECT_ROOT
from bridge.store.snapshots import KeepPolicy, Snapshots
from tests.store.test_snapshots import make_legacy

WRITER = """
import sys
from pathlib import Path
from bridge.store.snapshots import KeepPolicy, Snapshots
root, rounds = Path(sys.argv[1]), int(sys.argv[2])
snaps = Snapshots(root)
for i in range(rounds):
    (root / "busy" / f"pre-key-{1000 + i}.json").write_text('{"round": %d}' % i)
    snaps.create("busy", reason="stress")
print("done", flush=True)
"""

PRUNER = """
import sys
from pathlib import Path
from bridge.store.snapshots import KeepPolicy, Snapshots
root, rounds = Path(sys.argv[1]), int(sys.argv[2])
snaps = Snapshots(root)
removed = 0
for _ in range(rounds):
    removed += snaps.prune("busy", KeepPolicy(last=1, daily=0, weekly=0), force=True).objects_removed
print("done", removed, flush=True)
"""


def _spawn(code: str, root: Path, rounds: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, str(root), str(rounds)],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_prune_racing_snapshots_never_breaks_a_snapshot(tmp_path: Path) -> None:
    root = tmp_path / "auth"
    make_legacy(root / "busy", registered=False)
    Snapshots(root).create("busy")
    procs = [_spawn(WRITER, root, 40), _spawn(PRUNER, root, 40)]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        outputs.append(out)
    assert outputs[0].startswith("done") and outputs[1].startswith("done")

    snaps = Snapshots(root)
    report = snaps.verify()
    assert report.ok, report.problems
    latest = snaps.latest("busy")
    assert latest is not None and "pre-key-1039.json" in {f.name for f in latest.files}


HALF_WRITTEN = """
import sys
from pathlib import Path
import msgspec
from bridge.store.lock import RepositoryLock
from bridge.store.snapshots import FileEntry, SnapshotManifest, Snapshots
root = Path(sys.argv[1])
snaps = Snapshots(root)
with RepositoryLock(snaps.bridge_dir, exclusive=False):
    [sha] = snaps.put_objects([b'{"written": "between object and manifest"}'])
    print(sha, flush=True)
    sys.stdin.readline()
    manifest = SnapshotManifest(
        id="29990101T000000000000Z-aaaaaa", session="busy", created_at=32503680000.0, reason="slow-writer",
        registered=False, files=[FileEntry(name="pre-key-5000.json", size=42, sha256=sha)],
    )
    snaps.manifests.write(manifest)
print("done", flush=True)
"""


def test_prune_waits_for_a_snapshot_caught_between_object_and_manifest(tmp_path: Path) -> None:
    root = tmp_path / "auth"
    make_legacy(root / "busy", registered=False)
    snaps = Snapshots(root)
    snaps.create("busy")
    writer = subprocess.Popen(
        [sys.executable, "-c", HALF_WRITTEN, str(root)],
        cwd=PROJECT_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None and writer.stdin is not None
    sha = writer.stdout.readline().strip()
    assert snaps.object_path(sha).exists()
    with ThreadPoolExecutor(max_workers=1) as pool:
        # Unreferenced right now: without the lock, prune would delete it while the writer waits.
        pruning = pool.submit(snaps.prune, "busy", KeepPolicy(last=1, daily=0, weekly=0), True)
        time.sleep(1.0)
        writer.stdin.write("go\n")
        writer.stdin.flush()
        out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0 and out.strip() == "done", err
        pruning.result(timeout=120)
    assert snaps.object_path(sha).exists()
    assert snaps.verify().ok
