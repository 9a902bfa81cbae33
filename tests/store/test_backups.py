"""Portable backups: one archive that restores a tenant on an empty machine, refused if tampered."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from bridge.errors import SnapshotError
from bridge.store.backups import (
    BACKUP_MANIFEST,
    create_backup,
    import_backup,
    restore_from_backup,
    verify_backup,
)
from bridge.store.snapshots import Snapshots
from tests.store.test_snapshots import dump_legacy, folder_bytes, make_legacy


@pytest.fixture
def repo(tmp_path: Path) -> Snapshots:
    root = tmp_path / "auth"
    make_legacy(root / "acme")
    make_legacy(root / "globex", pre_keys=2, registered=False)
    snaps = Snapshots(root)
    snaps.create("acme")
    snaps.create("globex")
    return snaps


def _members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isreg()}  # type: ignore[union-attr]


def _rewrite(archive: Path, members: dict[str, bytes], *, fix_checksum: bool) -> None:
    """Write a new archive with `members` (in order) and optionally a matching checksum file."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    os.chmod(archive, 0o644)
    archive.write_bytes(buffer.getvalue())
    if fix_checksum:
        checksum = archive.with_name(archive.name + ".sha256")
        os.chmod(checksum, 0o644)
        checksum.write_text(f"{hashlib.sha256(buffer.getvalue()).hexdigest()}  {archive.name}\n")


def test_backup_round_trip_restores_a_tenant_on_an_empty_auth_root(repo: Snapshots, tmp_path: Path) -> None:
    acme = repo.auth_root / "acme"
    before = dump_legacy(acme)
    original = folder_bytes(acme)
    result = create_backup(repo, tmp_path / "backups")

    archive = Path(result.archive)
    checksum = Path(result.checksum_file)
    assert checksum.read_text() == f"{hashlib.sha256(archive.read_bytes()).hexdigest()}  {archive.name}\n"
    assert len(result.snapshots) == 2
    report = verify_backup(archive)
    assert report.ok and sorted(report.snapshots) == sorted(result.snapshots)

    fresh = Snapshots(tmp_path / "new-machine")
    outcome = restore_from_backup(fresh, archive, "acme")

    assert outcome.folder == str(fresh.auth_root / "acme")
    assert folder_bytes(fresh.auth_root / "acme") == original
    assert dump_legacy(fresh.auth_root / "acme") == before
    assert fresh.verify().ok
    assert {m.session for s in fresh.sessions() for m in fresh.list(s)} == {"acme", "globex"}


def test_every_member_is_listed_with_its_sha256(repo: Snapshots, tmp_path: Path) -> None:
    result = create_backup(repo, tmp_path / "backups", ["acme"], all_snapshots=True)
    members = _members(Path(result.archive))
    names = list(members)
    assert names[0] == BACKUP_MANIFEST
    header = members.pop(BACKUP_MANIFEST)
    for name, data in members.items():
        assert f'"{name}"' in header.decode()
        assert hashlib.sha256(data).hexdigest() in header.decode()
    assert all(n.startswith(("snapshots/acme/", "objects/")) for n in members)


def test_a_flipped_byte_in_the_archive_is_refused(repo: Snapshots, tmp_path: Path) -> None:
    archive = Path(create_backup(repo, tmp_path / "backups").archive)
    os.chmod(archive, 0o644)
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))

    report = verify_backup(archive)
    assert not report.ok
    assert any("does not match its checksum file" in p for p in report.problems)
    fresh = Snapshots(tmp_path / "new-machine")
    with pytest.raises(SnapshotError, match="refusing backup"):
        restore_from_backup(fresh, archive, "acme")
    assert not (fresh.auth_root / "acme").exists()
    assert fresh.sessions() == []


def test_a_flipped_byte_anywhere_in_the_archive_is_refused_with_a_reason_never_an_exception(
    repo: Snapshots, tmp_path: Path
) -> None:
    """Where the byte falls decides which layer notices (the gzip header or CRC, the deflate stream
    itself, tar, a member's hash): every one must end as a refusal with a reason."""
    archive = Path(create_backup(repo, tmp_path / "backups").archive)
    os.chmod(archive, 0o644)
    original = archive.read_bytes()
    for position in range(0, len(original), max(1, len(original) // 200)):
        data = bytearray(original)
        data[position] ^= 0xFF
        archive.write_bytes(bytes(data))
        report = verify_backup(archive)
        assert not report.ok and report.problems, position


def test_a_tampered_member_is_refused_even_with_a_recomputed_archive_checksum(repo: Snapshots, tmp_path: Path) -> None:
    archive = Path(create_backup(repo, tmp_path / "backups").archive)
    members = _members(archive)
    victim = next(n for n in members if n.startswith("objects/"))
    members[victim] = members[victim] + b" "
    _rewrite(archive, members, fix_checksum=True)

    report = verify_backup(archive)
    assert [p for p in report.problems if victim in p], report.problems
    with pytest.raises(SnapshotError, match="refusing backup"):
        import_backup(Snapshots(tmp_path / "new-machine"), archive)


def test_an_unlisted_or_missing_member_is_refused(repo: Snapshots, tmp_path: Path) -> None:
    archive = Path(create_backup(repo, tmp_path / "backups").archive)
    members = _members(archive)
    dropped = next(n for n in members if n.startswith("objects/"))
    del members[dropped]
    members["objects/zz/extra"] = b"smuggled"
    _rewrite(archive, members, fix_checksum=True)

    problems = verify_backup(archive).problems
    assert any(dropped in p and "missing" in p for p in problems)
    assert any("objects/zz/extra" in p for p in problems)


def test_an_archive_without_its_checksum_file_is_refused(repo: Snapshots, tmp_path: Path) -> None:
    result = create_backup(repo, tmp_path / "backups")
    Path(result.checksum_file).unlink()
    report = verify_backup(Path(result.archive))
    assert not report.ok and "missing or unreadable" in report.problems[0]


def test_a_corrupt_object_is_never_copied_into_a_backup(repo: Snapshots, tmp_path: Path) -> None:
    manifest = repo.list("acme")[0]
    obj = repo.object_path(manifest.files[0].sha256)
    os.chmod(obj, 0o644)
    obj.write_bytes(b"rotten")
    with pytest.raises(SnapshotError, match="corrupt"):
        create_backup(repo, tmp_path / "backups")
    assert not (tmp_path / "backups").exists() or not list((tmp_path / "backups").iterdir())


def test_importing_twice_is_harmless(repo: Snapshots, tmp_path: Path) -> None:
    archive = Path(create_backup(repo, tmp_path / "backups").archive)
    fresh = Snapshots(tmp_path / "new-machine")
    first = import_backup(fresh, archive)
    second = import_backup(fresh, archive)
    assert first == second
    assert len(fresh.list("acme")) == 1 and fresh.verify().ok
    shutil.rmtree(tmp_path / "new-machine" / ".bridge" / "objects")
    assert not fresh.verify().ok
    import_backup(fresh, archive)
    assert fresh.verify().ok
