"""`plan_repair` is the whole rule book of a repair; each rule is one case here.

The plan is a pure function of what the watcher saw, so these cases build the looks directly:
a folder with 800 key files, its account, and what its history holds.
"""

from __future__ import annotations

import dataclasses

import pytest

from bridge.monitor.folder_check import CredsStatus, Damage, Finding, FolderLook
from bridge.monitor.repair_plan import (
    CredsCandidate,
    RepairAction,
    RepairFacts,
    SnapshotCandidate,
    plan_repair,
)
from bridge.store.identity import Identity

OURS = Identity(key="a1" * 8, jid="15550001111@s.whatsapp.net")
THEIRS = Identity(key="b2" * 8, jid="15550002222@s.whatsapp.net")
KEYS = frozenset(f"pre-key-{i}.json" for i in range(1, 801))
HEALTHY = FolderLook(True, CredsStatus.OK, 2000, "sha-now", True, KEYS, identity=OURS)
CREDS = CredsCandidate('{"creds": "of this account"}', "creds history 1700000000-abc.json")
SETTLED = SnapshotCandidate("20261201T000000Z-settled", 100.0, KEYS)
PRE_LINK = SnapshotCandidate("20261201T000000Z-prelink", 50.0, frozenset({"pre-key-1.json"}))


def facts(damage: Damage, look: FolderLook = HEALTHY, **kw: object) -> RepairFacts:
    values: dict[str, object] = {
        "session": "acme", "finding": Finding(damage, damage.value), "look": look, "baseline": HEALTHY,
        "expected": OURS, "creds": CREDS, "snapshot": SETTLED, "running": True, "managed": True,
    }
    values.update(kw)
    return RepairFacts(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "damage",
    [Damage.CREDS_DELETED, Damage.CREDS_TRUNCATED, Damage.CREDS_INVALID, Damage.CREDS_UNREGISTERED],
)
def test_creds_only_damage_puts_back_creds_and_nothing_else(damage: Damage) -> None:
    plan = plan_repair(facts(damage, dataclasses.replace(HEALTHY, creds=CredsStatus.MISSING)))
    assert plan.action is RepairAction.PUT_BACK_CREDS and plan.creds == CREDS
    assert plan.snapshot is None and plan.keys == frozenset()  # no snapshot restore, no key touched
    assert plan.stop == () and not plan.restart  # the runtime holds the same creds: keep it running
    assert plan.severity == "critical"


def test_creds_damage_without_any_intact_creds_of_this_account_changes_nothing() -> None:
    plan = plan_repair(facts(Damage.CREDS_TRUNCATED, creds=None))
    assert plan.action is RepairAction.NOTHING and plan.error and "no intact creds" in plan.error
    assert "restore a backup" in plan.next_step


def test_mass_deleted_keys_are_put_back_from_the_snapshot_and_nothing_present_is_moved() -> None:
    left = frozenset(sorted(KEYS)[:100])
    plan = plan_repair(facts(Damage.KEYS_MASS_DELETED, dataclasses.replace(HEALTHY, key_files=left)))
    assert plan.action is RepairAction.PUT_BACK_KEYS and plan.keys == KEYS - left
    assert plan.creds is None and plan.warning is None and plan.stop == ()


def test_vanished_keys_no_snapshot_holds_are_named() -> None:
    newer = KEYS | {"session-new-contact.json"}
    plan = plan_repair(facts(Damage.KEYS_MASS_DELETED, dataclasses.replace(HEALTHY, key_files=frozenset()),
                             baseline=dataclasses.replace(HEALTHY, key_files=newer)))
    assert plan.action is RepairAction.PUT_BACK_KEYS and plan.keys == KEYS
    assert plan.warning is not None and plan.warning.startswith("1 of the 801 vanished key files")


def test_a_removed_folder_is_restored_whole_around_a_stop_and_start_then_gets_the_newest_creds() -> None:
    gone = FolderLook(False, CredsStatus.MISSING, 0, None, False, frozenset())
    plan = plan_repair(facts(Damage.FOLDER_REMOVED, gone))
    assert plan.action is RepairAction.RESTORE_FOLDER and plan.snapshot == SETTLED and plan.creds == CREDS
    assert plan.stop == ("acme",) and plan.restart and plan.warning is None


def test_a_restore_to_a_snapshot_with_fewer_key_files_says_so() -> None:
    gone = FolderLook(False, CredsStatus.MISSING, 0, None, False, frozenset())
    plan = plan_repair(facts(Damage.FOLDER_REMOVED, gone, snapshot=PRE_LINK))
    assert plan.action is RepairAction.RESTORE_FOLDER
    assert plan.warning is not None and "holds 1 key files, the folder had 800" in plan.warning


def test_a_removed_folder_of_a_stopped_session_is_restored_without_starting_it() -> None:
    gone = FolderLook(False, CredsStatus.MISSING, 0, None, False, frozenset())
    plan = plan_repair(facts(Damage.FOLDER_REMOVED, gone, running=False))
    assert plan.action is RepairAction.RESTORE_FOLDER and plan.stop == () and not plan.restart


def test_creds_of_another_account_stop_the_session_and_overwrite_nothing() -> None:
    foreign = dataclasses.replace(HEALTHY, identity=THEIRS)
    plan = plan_repair(facts(Damage.CREDS_FOREIGN, foreign, owner="other"))
    assert plan.action is RepairAction.STOP_SESSION and plan.stop == ("acme",)
    assert not plan.changes_files and plan.creds is None and plan.snapshot is None
    assert "session other's account" in plan.detail and plan.sessions == ("acme",)


def test_swapped_folders_are_one_incident_naming_both_and_stop_both() -> None:
    foreign = dataclasses.replace(HEALTHY, identity=THEIRS)
    one = plan_repair(facts(Damage.CREDS_FOREIGN, foreign, owner="zeta", owner_holds_ours=True, owner_managed=True))
    assert one.damage is Damage.FOLDERS_SWAPPED and one.sessions == ("acme", "zeta")
    assert one.action is RepairAction.STOP_SESSION and one.stop == ("acme", "zeta")
    # Seen from the other half, it is the same incident (same signature): one alert for both.
    other = plan_repair(dataclasses.replace(
        facts(Damage.CREDS_FOREIGN, dataclasses.replace(HEALTHY, identity=OURS), owner="acme",
              owner_holds_ours=True, owner_managed=True, expected=THEIRS), session="zeta"))
    assert other.signature == one.signature


def test_foreign_creds_in_a_stopped_session_only_report() -> None:
    foreign = dataclasses.replace(HEALTHY, identity=THEIRS)
    plan = plan_repair(facts(Damage.CREDS_FOREIGN, foreign, running=False))
    assert plan.action is RepairAction.NOTHING and plan.stop == () and "no session owns" in plan.detail


def test_an_unreadable_folder_is_reported_with_the_fix() -> None:
    look = FolderLook(True, CredsStatus.MISSING, 0, None, False, frozenset(), unreadable="acme: Permission denied")
    plan = plan_repair(facts(Damage.FOLDER_UNREADABLE, look))
    assert plan.action is RepairAction.NOTHING and "chown/chmod" in plan.next_step and plan.severity == "critical"


def test_damage_to_a_folder_known_never_to_have_been_linked_is_a_warning() -> None:
    unlinked = dataclasses.replace(HEALTHY, registered=False, identity=Identity(key="c3" * 8))
    plan = plan_repair(facts(Damage.CREDS_TRUNCATED, expected=None, baseline=unlinked))
    assert plan.severity == "warning" and plan.action is RepairAction.PUT_BACK_CREDS
