"""What to do about damage to one auth folder: `plan_repair(facts) -> RepairPlan`, pure.

restic's shape (PlanPrune, then Execute): the watcher gathers read-only facts, this decides, and
repair.py carries the plan out. Every rule of the core promise lives here, as a plain function of
its inputs, so each rule is a unit test:

- A repair repairs the damage, not the folder. Damage to creds.json alone (deleted, truncated,
  invalid, replaced by unlinked creds) puts back the newest intact creds of this account (the
  store's creds history, then snapshots); key files stay exactly where they are.
- Key files that vanished in bulk are written back from the newest intact snapshot of the same
  identity; nothing present in the folder is replaced or moved.
- The whole folder is restored (staged, swapped in, the old one kept under `.bridge/replaced/`)
  only when it is gone. A snapshot with fewer key files than the folder had is still used (an
  identity with some keys beats no identity) but the incident and the alert say so.
- Creds of another identity in a session's folder (copied in, or two folders swapped) stop the
  session(s) and overwrite nothing: which folder is right is the operator's call.
- A folder the bridge cannot read is reported; nothing can be repaired through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from bridge.events import Severity
from bridge.monitor.folder_check import CREDS_DAMAGE, Damage, Finding, FolderLook
from bridge.store.identity import Identity


class RepairAction(StrEnum):
    """The one thing a plan does (recorded in the incident as `action`)."""

    NOTHING = "nothing"
    PUT_BACK_CREDS = "put_back_creds"
    PUT_BACK_KEYS = "put_back_keys"
    RESTORE_FOLDER = "restore_folder"
    STOP_SESSION = "stop_session"


@dataclass(frozen=True)
class CredsCandidate:
    """Intact creds text of the session's own account, and where it was found."""

    text: str
    source: str
    saved_at: float


@dataclass(frozen=True)
class SnapshotCandidate:
    """The newest intact snapshot of the session's own identity."""

    id: str
    created_at: float
    key_files: frozenset[str]


@dataclass(frozen=True)
class RepairFacts:
    """Everything `plan_repair` may look at; gathered read-only by the watcher.

    `owner` is the session the identity found in this folder belongs to (None when unknown or this
    session's own); `owner_holds_ours` says the owner's folder holds this session's identity (the
    two folders were swapped). `creds` and `snapshot` are the newest intact creds and snapshot of
    `expected` (or, for a folder never linked, of the folder's own device). `running` says a session
    the bridge manages is active on this folder; `managed` that the bridge can stop it at all.
    """

    session: str
    finding: Finding
    look: FolderLook
    baseline: FolderLook | None = None
    expected: Identity | None = None
    owner: str | None = None
    owner_holds_ours: bool = False
    owner_managed: bool = False
    creds: CredsCandidate | None = None
    snapshot: SnapshotCandidate | None = None
    running: bool = False
    managed: bool = False


@dataclass(frozen=True)
class RepairPlan:
    """What the executor does, in order: stop, restore folder / put back keys, put back creds, start.

    `sessions` are all sessions the incident is about (both halves of a swap); `stop` the managed
    sessions to stop; `restart` whether to start `session` again afterwards. `warning` is said in
    the incident and the alert (a restore that cannot give back everything); `error` means nothing
    can be repaired and says why; `next_step` is what the operator should do.
    """

    session: str
    damage: Damage
    detail: str
    action: RepairAction
    sessions: tuple[str, ...]
    creds: CredsCandidate | None = None
    snapshot: SnapshotCandidate | None = None
    keys: frozenset[str] = field(default_factory=frozenset)
    stop: tuple[str, ...] = ()
    restart: bool = False
    warning: str | None = None
    error: str | None = None
    next_step: str = ""
    severity: Severity = "critical"

    @property
    def changes_files(self) -> bool:
        return self.action in (RepairAction.PUT_BACK_CREDS, RepairAction.PUT_BACK_KEYS, RepairAction.RESTORE_FOLDER)

    @property
    def signature(self) -> tuple[str, ...]:
        """Same signature = the same incident still going on (no second alert for it)."""
        return (self.damage.value, *sorted(self.sessions))


def plan_repair(facts: RepairFacts) -> RepairPlan:
    """The plan for `facts.finding` (see the module docstring for the rules)."""
    damage = facts.finding.damage
    if damage is Damage.FOLDER_UNREADABLE:
        return _plan(facts, RepairAction.NOTHING,
                     error="the folder cannot be read, so nothing was checked or changed",
                     next_step="give the bridge user read/write access to the folder again (chown/chmod), or "
                               "check the disk (`dmesg`) on an I/O error; the monitor says so when it is readable")
    if damage in (Damage.CREDS_FOREIGN, Damage.FOLDERS_SWAPPED):
        return _plan_foreign(facts)
    if damage is Damage.FOLDER_REMOVED:
        return _plan_folder_removed(facts)
    if damage is Damage.KEYS_MASS_DELETED:
        return _plan_keys(facts)
    if damage in CREDS_DAMAGE:
        if facts.creds is None:
            return _plan(facts, RepairAction.NOTHING,
                         error="no intact creds of this account were found (creds history and snapshots); "
                               "nothing was changed",
                         next_step="restore a backup (`python -m bridge restore`) or link the device again")
        return _plan(facts, RepairAction.PUT_BACK_CREDS, creds=facts.creds,
                     next_step="find out what damaged creds.json; nothing else is needed")
    raise ValueError(f"no plan for damage {damage}")  # pragma: no cover - every Damage is handled above


def _plan(
    facts: RepairFacts,
    action: RepairAction,
    *,
    detail: str | None = None,
    creds: CredsCandidate | None = None,
    snapshot: SnapshotCandidate | None = None,
    keys: frozenset[str] = frozenset(),
    stop: tuple[str, ...] = (),
    restart: bool = False,
    warning: str | None = None,
    error: str | None = None,
    next_step: str = "",
) -> RepairPlan:
    return RepairPlan(
        facts.session, facts.finding.damage, detail or facts.finding.detail, action, (facts.session,),
        creds=creds, snapshot=snapshot, keys=keys, stop=stop, restart=restart, warning=warning, error=error,
        next_step=next_step, severity=_severity(facts),
    )


def _severity(facts: RepairFacts) -> Severity:
    """Warning only for a folder known to hold creds that were never linked (a new QR gives back
    everything they were worth); critical whenever a linked account may be at stake."""
    baseline = facts.baseline
    never_linked = facts.expected is None and baseline is not None and baseline.healthy and not baseline.registered
    if never_linked and facts.finding.damage not in (Damage.FOLDER_UNREADABLE, Damage.CREDS_FOREIGN):
        return "warning"
    return "critical"


def _plan_foreign(facts: RepairFacts) -> RepairPlan:
    found = facts.look.identity
    stop = (facts.session,) if facts.running else ()
    if facts.owner is not None and facts.owner_holds_ours:
        pair = tuple(sorted((facts.session, facts.owner)))
        stop = (*stop, facts.owner) if facts.owner_managed else stop
        return RepairPlan(
            facts.session, Damage.FOLDERS_SWAPPED,
            f"the auth folders of sessions {pair[0]} and {pair[1]} were swapped: each holds the other's "
            "account", RepairAction.STOP_SESSION if stop else RepairAction.NOTHING, pair, stop=stop,
            next_step=f"move the two folders back (or fix whatever swapped them), then start {pair[0]} and "
                      f"{pair[1]}; nothing was overwritten",
            severity="critical",
        )
    whose = f"session {facts.owner}'s account" if facts.owner is not None else "an account no session owns"
    found_text = found.describe() if found is not None else "unknown"
    ours = facts.expected.describe() if facts.expected is not None else "not known"
    return _plan(
        facts, RepairAction.STOP_SESSION if stop else RepairAction.NOTHING,
        detail=f"creds.json holds {whose}, {found_text}; this session's account is {ours}",
        stop=stop,
        next_step=f"put this session's own folder back (its creds are in `python -m bridge snapshots {facts.session}`)"
                  " and start it; nothing was overwritten",
    )


def _fewer_keys(facts: RepairFacts, snapshot: SnapshotCandidate) -> str | None:
    had = facts.baseline.key_files if facts.baseline is not None else frozenset()
    if len(snapshot.key_files) >= len(had):
        return None
    return (f"snapshot {snapshot.id} holds {len(snapshot.key_files)} key files, the folder had {len(had)}: "
            f"{len(had - snapshot.key_files)} newer key files are in no snapshot (contacts may have to resend "
            "a message once)")


def _plan_folder_removed(facts: RepairFacts) -> RepairPlan:
    snapshot = facts.snapshot
    if snapshot is None:
        if facts.creds is not None:
            return _plan(facts, RepairAction.PUT_BACK_CREDS, creds=facts.creds,
                         warning="no intact snapshot of this account: only creds.json was put back; every key file "
                                 "is lost (contacts may have to resend a message once)",
                         next_step="find out what removed the folder")
        return _plan(facts, RepairAction.NOTHING,
                     error="no intact snapshot or creds of this account; nothing was changed",
                     next_step="restore a backup (`python -m bridge restore`) or link the device again")
    newer_creds = facts.creds if facts.creds is not None and facts.creds.saved_at > snapshot.created_at else None
    return _plan(facts, RepairAction.RESTORE_FOLDER, snapshot=snapshot, creds=newer_creds,
                 stop=(facts.session,) if facts.running else (), restart=facts.running,
                 warning=_fewer_keys(facts, snapshot), next_step="find out what removed the folder")


def _plan_keys(facts: RepairFacts) -> RepairPlan:
    baseline = facts.baseline
    gone = (baseline.key_files if baseline is not None else frozenset()) - facts.look.key_files
    snapshot = facts.snapshot
    if snapshot is None or not gone & snapshot.key_files:
        return _plan(facts, RepairAction.NOTHING,
                     error="no intact snapshot of this account holds the vanished key files; nothing was changed",
                     next_step="the session keeps its identity; contacts whose sessions were lost may have to "
                               "resend a message once. Find out what deleted the files")
    keys = gone & snapshot.key_files
    lost = len(gone - keys)
    warning = (f"{lost} of the {len(gone)} vanished key files are in no snapshot (newer than {snapshot.id}); "
               "contacts may have to resend a message once") if lost else None
    return _plan(facts, RepairAction.PUT_BACK_KEYS, snapshot=snapshot, keys=keys, warning=warning,
                 next_step="find out what deleted the key files")
