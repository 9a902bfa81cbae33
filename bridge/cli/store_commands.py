"""Operator commands for snapshots, backups and adoption (`python -m bridge <command> --help`).

Every command prints for humans by default and one JSON document with `--json`, works on
`--root` (default: Settings().auth_root), and exits with a documented code (docs/operations.md):

  0  success
  1  a check failed: missing/corrupt objects, tampered or incomplete backup, refused restore
  2  bad usage: unknown option, invalid session id, a keep-policy that keeps nothing
  3  refused for safety: session locked by a running bridge, folder written in the last 60 s,
     session id already used by another folder
  4  not found: no such session folder, snapshot or archive
  5  any other store error (disk full, permissions); the message says what to fix

Commands that change a session folder (`restore`, `adopt`, `checkpoint`, `set-aside-journal`) take
the session's advisory lock, so they refuse while a bridge instance runs that session.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from bridge.cli.output import Result, answer
from bridge.config import Settings
from bridge.errors import ErrorCode, ExitCode, SnapshotError
from bridge.store.adopt import adopt, registration_for, scan
from bridge.store.backups import create_backup, restore_from_backup, verify_backup
from bridge.store.journal import checkpoint_session, set_aside
from bridge.store.lock import SessionLock
from bridge.store.snapshots import KeepPolicy, Snapshots
from bridge.store.trash import prune_trash

Handler = Callable[[argparse.Namespace, Snapshots], Result]


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _run(handler: Handler) -> Callable[[argparse.Namespace], int]:
    """Wrap a handler: build Snapshots from --root, print its result, map errors to exit codes."""

    def func(args: argparse.Namespace) -> int:
        root = Path(args.root) if args.root else Settings().auth_root
        return answer(args, lambda: handler(args, Snapshots(root)), path=root)

    return func


# ----- handlers -----------------------------------------------------------------------------
def _snapshot(args: argparse.Namespace, snaps: Snapshots) -> tuple[int, Any, str]:
    manifest = snaps.create(args.session, reason=args.reason)
    human = (
        f"snapshot {manifest.id} of {manifest.session}: {len(manifest.files)} files, "
        f"{manifest.total_bytes} bytes, registered={manifest.registered}"
    )
    return ExitCode.OK, manifest, human


def _snapshots(args: argparse.Namespace, snaps: Snapshots) -> tuple[int, Any, str]:
    sessions = [args.session] if args.session else snaps.sessions()
    listing = {s: snaps.list(s) for s in sessions}
    stats = snaps.dedup_stats()
    lines: list[str] = []
    for session, manifests in listing.items():
        lines.append(f"{session}: {len(manifests)} snapshot(s)")
        for m in manifests:
            mark = "registered" if m.registered else "unregistered"
            lines.append(f"  {m.id}  {_when(m.created_at)}  {m.reason:<12} {mark:<12} {len(m.files)} files")
    lines.append(
        f"store: {stats.snapshots} snapshots, {stats.logical_bytes} bytes referenced, "
        f"{stats.stored_bytes} bytes stored in {stats.objects} objects (dedup ratio {stats.ratio:.1f}x)"
    )
    data = {
        "sessions": listing,
        "dedup": {**msgspec.structs.asdict(stats), "ratio": stats.ratio},
    }
    return ExitCode.OK, data, "\n".join(lines)


def _verify(args: argparse.Namespace, snaps: Snapshots) -> tuple[int, Any, str]:
    if args.archive:
        if not Path(args.archive).exists():
            raise SnapshotError(f"archive {args.archive} does not exist", code=ErrorCode.NOT_FOUND)
        backup = verify_backup(Path(args.archive))
        lines = [f"backup {backup.archive}: {len(backup.snapshots)} snapshot(s), {backup.objects} object(s)"]
        lines += [f"  PROBLEM {p}" for p in backup.problems]
        lines.append("OK" if backup.ok else f"FAILED: {len(backup.problems)} problem(s)")
        data = {**msgspec.structs.asdict(backup), "ok": backup.ok}
        return (ExitCode.OK if backup.ok else ExitCode.CHECK_FAILED), data, "\n".join(lines)
    if args.session and not snaps.list(args.session):
        raise SnapshotError(f"session {args.session!r} has no snapshot to verify", code=ErrorCode.NOT_FOUND)
    snapshot = snaps.get(args.session, args.snapshot) if args.snapshot else None
    report = snaps.verify(snapshot, session_id=None if snapshot else args.session)
    lines = [
        f"checked {report.snapshots_checked} snapshot(s), {report.objects_checked} object(s), "
        f"{report.bytes_checked} bytes"
    ]
    for p in report.problems:
        lines.append(f"  {p.kind.upper()} {p.path}: {p.detail}")
        lines += [f"    referenced by {ref}" for ref in p.snapshots]
    lines.append("OK" if report.ok else f"FAILED: {len(report.problems)} problem(s)")
    data = {**msgspec.structs.asdict(report), "ok": report.ok}
    return (ExitCode.OK if report.ok else ExitCode.CHECK_FAILED), data, "\n".join(lines)


def _restore(args: argparse.Namespace, snaps: Snapshots) -> tuple[int, Any, str]:
    with SessionLock(snaps.bridge_dir, args.session):
        if args.archive:
            if not Path(args.archive).exists():
                raise SnapshotError(f"archive {args.archive} does not exist", code=ErrorCode.NOT_FOUND)
            outcome = restore_from_backup(snaps, Path(args.archive), args.session, args.snapshot)
        else:
            snapshot_id = args.snapshot
            if snapshot_id is None:
                good = snaps.latest_good(args.session)
                if good is None:
                    raise SnapshotError(
                        f"session {args.session!r} has no intact snapshot with valid creds; "
                        "name one explicitly or restore from a backup archive",
                        code=ErrorCode.SNAPSHOT_NOT_FOUND,
                    )
                snapshot_id = good.id
            else:
                report = snaps.verify(snaps.get(args.session, snapshot_id))
                if not report.ok:
                    paths = ", ".join(p.path for p in report.problems)
                    raise SnapshotError(f"refusing to restore {snapshot_id}: objects missing or corrupt: {paths}")
            outcome = snaps.restore_detailed(args.session, snapshot_id)
    human = f"restored snapshot {outcome.restored.id} into {outcome.folder}"
    if outcome.pre_restore_snapshot:
        human += f"\nthe previous folder was snapshotted as {outcome.pre_restore_snapshot}"
    if outcome.replaced_path:
        human += f" and moved to {outcome.replaced_path}"
    human += f"\nkey files: {outcome.keys_before} before, {outcome.keys_after} after"
    if outcome.keys_after < outcome.keys_before:
        human += " (fewer: the snapshot is older than the folder it replaced)"
    return ExitCode.OK, outcome, human


def _prune(args: argparse.Namespace, snaps: Snapshots) -> tuple[int, Any, str]:
    policy = KeepPolicy(last=args.keep_last, daily=args.keep_daily, weekly=args.keep_weekly)
    if not policy.keeps_anything() or min(args.keep_last, args.keep_daily, args.keep_weekly) < 0:
        raise SnapshotError(
            "the keep-policy must keep at least one snapshot and use no negative count", code=ErrorCode.BAD_POLICY
        )
    sessions = [args.session] if args.session else snaps.sessions()
    reports = [snaps.prune(s, policy, force=args.force, dry_run=args.dry_run) for s in sessions]
    verb = "would remove" if args.dry_run else "removed"
    lines = []
    for r in reports:
        lines.append(f"{r.session}: kept {len(r.kept)}, {verb} {len(r.removed)} snapshot(s)")
        lines += [f"  {verb} {sid}" for sid in r.removed]
        if r.protected:
            lines.append(f"  kept {len(r.protected)} protected (newest or registered creds; --force to override)")
    if not args.dry_run:
        objs = sum(r.objects_removed for r in reports)
        lines.append(f"objects removed: {objs}, bytes freed: {sum(r.bytes_freed for r in reports)}")
    return ExitCode.OK, reports, "\n".join(lines)


def _backup(args: argparse.Namespace, snaps: Snapshots) -> tuple[int, Any, str]:
    if args.snapshot_first:
        for session in args.session or snaps.live_sessions():
            snaps.create(session, reason="backup")
    dest = Path(args.to) if args.to else snaps.repo.dirs.backups
    result = create_backup(snaps, dest, args.session, all_snapshots=args.all_snapshots)
    human = (
        f"wrote {result.archive} ({result.size} bytes, {len(result.snapshots)} snapshot(s), "
        f"{result.objects} object(s))\nchecksum: {result.checksum_file}"
    )
    return ExitCode.OK, result, human


def _adopt(args: argparse.Namespace, snaps: Snapshots) -> tuple[int, Any, str]:
    if args.scan:
        found = scan(Path(args.scan))
        lines = [f"{len(found)} candidate folder(s) under {args.scan}"]
        for f in found:
            state = "registered" if f.registered else ("unregistered" if f.creds_ok else "BROKEN")
            keys = ", ".join(f"{k}={v}" for k, v in f.keys.items()) or "no keys"
            lines.append(f"  {f.folder}  {state}  {f.me or ''}  {keys}  last write {_when(f.last_modified)}")
            if f.problem:
                lines.append(f"    problem: {f.problem}")
        return ExitCode.OK, found, "\n".join(lines)
    if not args.folder or not args.session:
        raise SnapshotError("adopt needs a FOLDER and --session ID (or --scan ROOT)", code=ErrorCode.BAD_POLICY)
    with SessionLock(snaps.bridge_dir, args.session):
        result = adopt(snaps, Path(args.folder), args.session, force=args.force)
    where = "recorded in .bridge/adopted.json" if result.external else "already in the auth root"
    human = (
        f"adopted {result.folder} as session {result.session} ({where}); snapshot {result.snapshot}\n"
        f"registered={result.state.registered} keys={result.state.keys}"
    )
    if result.journal_set_aside:
        human += f"\na leftover journal of session {result.session} was set aside (kept) at {result.journal_set_aside}"
    data = {**msgspec.structs.asdict(result), "registration": registration_for(result)}
    return ExitCode.OK, data, human


def _checkpoint(args: argparse.Namespace, snaps: Snapshots) -> tuple[int, Any, str]:
    with SessionLock(snaps.bridge_dir, args.session):
        report = checkpoint_session(
            snaps.bridge_dir, args.session, snaps.repo.folder(args.session), snaps.repo.dirs.session_trash(args.session)
        )
    if report is None:
        return ExitCode.OK, {"session": args.session, "journal": False}, (
            f"session {args.session} has no journal: its folder already is everything acknowledged"
        )
    human = (
        f"session {args.session}: journal checkpointed ({report.replayed} batch(es) replayed, "
        f"{report.torn_records} torn record(s) ignored); the folder alone now holds every acknowledged write"
    )
    return ExitCode.OK, {"session": args.session, "journal": True, **msgspec.structs.asdict(report)}, human


def _set_aside_journal(args: argparse.Namespace, snaps: Snapshots) -> tuple[int, Any, str]:
    with SessionLock(snaps.bridge_dir, args.session):
        parked = set_aside(snaps.bridge_dir, args.session)
    if parked is None:
        raise SnapshotError(f"session {args.session!r} has no journal to set aside", code=ErrorCode.NOT_FOUND)
    human = (
        f"the journal of session {args.session} was moved to {parked} (kept); the session now opens with "
        "its folder as it is. Batches only that journal held are not in the folder: restore a snapshot "
        "if the session then fails to decrypt"
    )
    return ExitCode.OK, {"session": args.session, "set_aside": str(parked)}, human


def _prune_trash(args: argparse.Namespace, snaps: Snapshots) -> tuple[int, Any, str]:
    days = args.older_than if args.older_than is not None else Settings().trash_max_age_days
    report = prune_trash(snaps.bridge_dir, days, args.session, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    human = f"{verb} {len(report.removed)} trashed key file(s) older than {days:g} days ({report.bytes_freed} bytes)"
    return ExitCode.OK, report, human


# ----- parsers ------------------------------------------------------------------------------
def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", help="auth root (default: BRIDGE_AUTH_ROOT, ./data/auth)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of text")


def _add(sub: Any, name: str, handler: Handler, help_text: str, description: str) -> argparse.ArgumentParser:
    epilog = "exit codes: 0 ok, 1 check failed, 2 usage, 3 refused for safety, 4 not found, 5 store error"
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=description, epilog=epilog)
    _common(parser)
    parser.set_defaults(func=_run(handler))
    return parser


def register(subparsers: Any) -> None:
    """Add snapshot, snapshots, verify, restore, prune, backup, adopt, checkpoint, set-aside-journal
    and prune-trash."""
    p = _add(
        subparsers,
        "snapshot",
        _snapshot,
        "take a snapshot of a session folder now",
        "Copy every file of the session folder into the content-addressed store (read-only, deduplicated) "
        "and record an immutable manifest. Safe while the session runs.",
    )
    p.add_argument("session", help="session id")
    p.add_argument("--reason", default="manual", help="recorded in the manifest (default: manual)")

    p = _add(
        subparsers,
        "snapshots",
        _snapshots,
        "list snapshots and the store's dedup ratio",
        "List snapshots newest first (all sessions, or one), with reason, registration and size.",
    )
    p.add_argument("session", nargs="?", help="only this session")

    p = _add(
        subparsers,
        "verify",
        _verify,
        "re-hash snapshot objects or check a backup archive",
        "Re-hash every object referenced by the snapshots (all, one session's, or one) and name every "
        "missing or corrupt object by path; with --archive, check a backup against its checksums. "
        "Exits 1 on any problem.",
    )
    p.add_argument("session", nargs="?", help="only this session's snapshots")
    p.add_argument("snapshot", nargs="?", help="only this snapshot (id or unique prefix)")
    p.add_argument("--archive", help="verify this backup archive instead (needs its .sha256 beside it)")

    p = _add(
        subparsers,
        "restore",
        _restore,
        "restore a session folder from a snapshot or a backup archive",
        "Build the snapshot's files in a staging folder, verify them, snapshot the current folder, then "
        "swap the staged folder in; the old folder is moved under .bridge/replaced/, never deleted. "
        "Refuses while a bridge runs the session (advisory lock). Default snapshot: the newest one "
        "whose objects are intact and whose creds are valid.",
    )
    p.add_argument("session", help="session id")
    p.add_argument("snapshot", nargs="?", help="snapshot id or unique prefix (default: latest good)")
    p.add_argument("--archive", help="restore from this backup archive (imports its snapshots first)")

    p = _add(
        subparsers,
        "prune",
        _prune,
        "delete old snapshots by a keep-policy, then unreferenced objects",
        "Keep the last N snapshots plus the newest of each of the last D days and W weeks; delete the "
        "rest and every object no snapshot references. The newest snapshot and snapshots with "
        "registered creds are always kept unless --force.",
    )
    p.add_argument("session", nargs="?", help="only this session (default: all)")
    p.add_argument("--keep-last", type=int, default=10, help="keep the newest N (default 10)")
    p.add_argument("--keep-daily", type=int, default=7, help="keep one per day for D days (default 7)")
    p.add_argument("--keep-weekly", type=int, default=4, help="keep one per ISO week for W weeks (default 4)")
    p.add_argument("--force", action="store_true", help="also delete the newest and registered snapshots")
    p.add_argument("--dry-run", action="store_true", help="only say what would be deleted")

    p = _add(
        subparsers,
        "backup",
        _backup,
        "write a portable backup archive with its checksum",
        "Write one tar.gz holding the latest (or every) snapshot of the sessions and their objects, a "
        "BACKUP.json with the sha256 of every member, and <archive>.sha256 beside it.",
    )
    p.add_argument("--to", help="destination folder (default: AUTH_ROOT/.bridge/backups)")
    p.add_argument("--session", action="append", help="only this session (repeatable; default: all)")
    p.add_argument("--all-snapshots", action="store_true", help="include every snapshot, not only the latest")
    p.add_argument(
        "--snapshot-first", action="store_true", help="take a fresh snapshot of each session before backing up"
    )

    p = _add(
        subparsers,
        "adopt",
        _adopt,
        "adopt a legacy useMultiFileAuthState folder in place, or scan for candidates",
        "Register an existing Baileys auth folder as a session without copying or rewriting it (a folder "
        "outside the auth root is recorded in .bridge/adopted.json) and take an initial snapshot. "
        "Refuses a folder written in the last 60 s unless --force. With --scan ROOT, only list "
        "candidate folders with their state.",
    )
    p.add_argument("folder", nargs="?", help="the legacy auth folder (holding creds.json)")
    p.add_argument("--session", help="session id to adopt it as")
    p.add_argument("--force", action="store_true", help="adopt even if written in the last 60 s")
    p.add_argument("--scan", metavar="ROOT", help="list candidate folders under ROOT; changes nothing")

    p = _add(
        subparsers,
        "checkpoint",
        _checkpoint,
        "write a stopped session's journal into its folder (before a legacy process reads it)",
        "Replay what the session's write-ahead journal (.bridge/journal/<session>/) holds beyond its "
        "folder, make the folder durable and empty the journal: the folder alone is then exactly what "
        "the bridge acknowledged, as plain useMultiFileAuthState reads it. A stopped session is "
        "checkpointed already; this is for one a crash left behind. Refuses while a bridge runs it.",
    )
    p.add_argument("session", help="session id")

    p = _add(
        subparsers,
        "set-aside-journal",
        _set_aside_journal,
        "move a damaged session journal aside (kept) so the session can open",
        "When a session refuses to open with journal_corrupt, move its journal to "
        ".bridge/journal-set-aside/<session>-<UTC>/ (never deleted). The session then opens with its "
        "folder as it is; batches only the journal held are not replayed. Refuses while a bridge runs it.",
    )
    p.add_argument("session", help="session id")

    p = _add(
        subparsers,
        "prune-trash",
        _prune_trash,
        "delete trashed key files older than N days",
        "Key files Baileys asked to delete are kept in .bridge/trash/<session>/; this removes those older "
        "than --older-than days (default BRIDGE_TRASH_MAX_AGE_DAYS). Never touches creds or snapshots.",
    )
    p.add_argument("--session", help="only this session's trash")
    p.add_argument("--older-than", type=float, help="age in days (default: BRIDGE_TRASH_MAX_AGE_DAYS)")
    p.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
