"""Property: whatever the history and policy, prune without --force never drops the newest
snapshot or any snapshot with registered creds, and always keeps the last N.

Manifests are written as real files (objects are not needed to decide what to keep).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.store.snapshots import KeepPolicy, SnapshotManifest, Snapshots

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z

histories = st.lists(
    st.tuples(st.integers(min_value=0, max_value=60 * 86400), st.booleans()),
    min_size=1,
    max_size=25,
    unique_by=lambda item: item[0],
)
policies = st.builds(KeepPolicy, last=st.integers(0, 5), daily=st.integers(0, 5), weekly=st.integers(0, 3)).filter(
    KeepPolicy.keeps_anything
)


def _write_history(snaps: Snapshots, history: list[tuple[int, bool]]) -> list[SnapshotManifest]:
    made = []
    for i, (offset, registered) in enumerate(history):
        manifest = SnapshotManifest(
            id=f"{i:04d}", session="s", created_at=T0 + offset, reason="test", registered=registered, files=[]
        )
        snaps.manifests.write(manifest)
        made.append(manifest)
    return sorted(made, key=lambda m: m.created_at, reverse=True)


@settings(max_examples=60, deadline=None)
@given(history=histories, policy=policies, force=st.booleans())
def test_prune_plan_never_drops_protected_snapshots(
    history: list[tuple[int, bool]], policy: KeepPolicy, force: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        snaps = Snapshots(Path(tmp))
        newest_first = _write_history(snaps, history)
        keep, remove, protected = snaps.plan_prune("s", policy, force=force)

        kept_ids = {m.id for m in keep}
        removed_ids = {m.id for m in remove}
        assert kept_ids | removed_ids == {m.id for m in newest_first}
        assert not kept_ids & removed_ids
        assert {m.id for m in newest_first[: policy.last]} <= kept_ids
        if not force:
            assert newest_first[0].id in kept_ids
            assert all(not m.registered for m in remove)
            assert {m.id for m in protected} <= kept_ids
        else:
            assert protected == []
        assert keep, "a policy that keeps something keeps at least one snapshot"

        report = snaps.prune("s", policy, force=force)
        assert {m.id for m in snaps.list("s")} == kept_ids == set(report.kept)
