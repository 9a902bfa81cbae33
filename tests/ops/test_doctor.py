"""`python -m bridge doctor` run for real (a subprocess, as an operator runs it) on good and bad setups.

The good setup is a real session folder written by real Baileys (legacy useMultiFileAuthState),
snapshotted, on the local ext4 disk, with the WhatsApp URL pointing at a local HTTP server whose
`Date` the clock check reads. Each bad setup breaks one thing for real: a read-only tmpfs, a tiny
tmpfs, a missing node binary, a Node wrapper that allows writes, a node_modules copy holding
another Baileys version, a bind without keys, a stale snapshot, a Telegram API that rejects the
token, a server whose clock is ten minutes off.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.doctor.result import EXIT_CODES, Status
from bridge.store.snapshots import Snapshots
from tests.ops.conftest import REPO, QuietHandler, by_check, clean_env, http_server, run_bridge, run_doctor
from tests.store.conftest import mounted_tmpfs, run_legacy

SESSION = "acme"


class ClockHandler(QuietHandler):
    """Answers anything; its `Date` header is `skew` seconds off this machine's clock."""

    skew = 0.0

    def date_time_string(self, timestamp: float | None = None) -> str:
        return super().date_time_string(time.time() + self.skew)

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


class SkewedClockHandler(ClockHandler):
    skew = -600.0


@pytest.fixture(scope="module")
def linked_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registered session folder written by real Baileys 7.0.0-rc14 (legacy layout)."""
    folder = tmp_path_factory.mktemp("legacy") / SESSION
    run_legacy("write", str(folder))
    return folder


@pytest.fixture()
def clock_url() -> Iterator[str]:
    with http_server(ClockHandler) as url:
        yield url


def setup_root(tmp_path: Path, linked_folder: Path, *, snapshot_age: float = 0.0) -> Path:
    """An auth root holding the linked session, snapshotted `snapshot_age` seconds ago."""
    root = tmp_path / "auth"
    root.mkdir()
    subprocess.run(["cp", "-a", str(linked_folder), str(root / SESSION)], check=True)
    Snapshots(root, clock=lambda: time.time() - snapshot_age).create(SESSION, reason="test")
    return root


def good_env(tmp_path: Path, root: Path, clock_url: str, **extra: str) -> dict[str, str]:
    (tmp_path / "state").mkdir(exist_ok=True)
    return clean_env(
        BRIDGE_AUTH_ROOT=str(root),
        BRIDGE_STATE_DIR=str(tmp_path / "state"),
        BRIDGE_WA_URL=clock_url.replace("http://", "ws://") + "/ws/chat",
        **extra,
    )


def tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_a_good_setup_is_all_green_and_exits_0(tmp_path: Path, linked_folder: Path, clock_url: str) -> None:
    root = setup_root(tmp_path, linked_folder)
    before = tree(root)
    code, document = run_doctor(tmp_path, good_env(tmp_path, root, clock_url))
    checks = by_check(document)
    assert code == 0, document
    assert document["status"] == "ok" and document["exit_code"] == 0
    assert list(checks) == ["node", "baileys", "auth_root", "state_dir", "disk", "snapshots", "api", "telegram",
                            "clock"]
    assert {name for name, c in checks.items() if c["status"] != "ok"} == {"telegram"}
    assert checks["telegram"]["status"] == "skipped"
    assert checks["node"]["details"]["write"] == "ERR_ACCESS_DENIED"
    assert checks["baileys"]["details"]["packages"]["@whiskeysockets/baileys"]["installed"] == "7.0.0-rc14"
    assert checks["auth_root"]["details"]["fstype"] == "ext4"
    assert abs(checks["clock"]["details"]["skew_seconds"]) < 5
    assert "1 session(s)" in checks["snapshots"]["summary"]
    assert tree(root) == before, "the write probe must leave nothing behind"


def test_the_text_report_names_every_check_and_the_fix(tmp_path: Path, linked_folder: Path, clock_url: str) -> None:
    root = setup_root(tmp_path, linked_folder, snapshot_age=3 * 86400)
    proc = run_bridge(tmp_path, good_env(tmp_path, root, clock_url), "doctor")
    assert proc.returncode == EXIT_CODES[Status.WARNING], proc.stdout
    lines = proc.stdout.splitlines()
    assert any(line.startswith("[WARN] snapshots") and f"{SESSION}: newest snapshot is 3.0d old" in line
               for line in lines), proc.stdout
    assert any("fix: take one now with `python -m bridge snapshot <session>`" in line for line in lines)
    assert lines[-1].startswith("WARNING: ") and lines[-1].endswith("(exit code 1)")


def test_a_read_only_auth_root_is_an_error_naming_the_fix(tmp_path: Path) -> None:
    with mounted_tmpfs("8m") as mount:
        root = mount / "auth"
        (root / ".bridge").mkdir(parents=True)
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        try:
            code, document = run_doctor(tmp_path, clean_env(BRIDGE_AUTH_ROOT=str(root)), "--check", "auth_root")
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(mount)], check=True)
    finding = by_check(document)["auth_root"]
    assert code == 2 and finding["status"] == "error"
    assert "Read-only file system" in finding["summary"]
    assert "remount it read-write" in finding["summary"]


def test_an_auth_root_on_tmpfs_is_writable_but_a_warning(tmp_path: Path) -> None:
    with mounted_tmpfs("8m") as mount:
        root = mount / "auth"
        root.mkdir()
        code, document = run_doctor(tmp_path, clean_env(BRIDGE_AUTH_ROOT=str(root)), "--check", "auth_root")
        left = tree(root)
    finding = by_check(document)["auth_root"]
    assert code == 1 and finding["status"] == "warning"
    assert "is tmpfs" in finding["summary"] and "lost at reboot" in finding["summary"]
    assert left == {".bridge"}, "only the .bridge folder the bridge would create, no probe file"


def test_a_nearly_full_disk_and_too_few_inodes_are_errors(tmp_path: Path) -> None:
    with mounted_tmpfs("4m") as mount:
        root = mount / "auth"
        root.mkdir()
        env = clean_env(BRIDGE_AUTH_ROOT=str(root), BRIDGE_STATE_DIR=str(mount / "state"),
                        BRIDGE_MONITOR_MIN_FREE_MB="64")
        code, document = run_doctor(tmp_path, env, "--check", "disk")
    finding = by_check(document)["disk"]
    assert code == 2 and finding["status"] == "error", finding
    assert "under a quarter of 64 MiB" in finding["summary"]
    assert "prune" in finding["fix"]

    mount_point = tmp_path / "few-inodes"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,nr_inodes=600", "tmpfs", str(mount_point)], check=True)
    try:
        (mount_point / "auth").mkdir()
        env = clean_env(BRIDGE_AUTH_ROOT=str(mount_point / "auth"), BRIDGE_MONITOR_MIN_FREE_MB="1")
        code, document = run_doctor(tmp_path, env, "--check", "disk")
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)
    finding = by_check(document)["disk"]
    assert code == 2 and "free inodes" in finding["summary"], finding


def test_a_missing_node_binary_is_an_error(tmp_path: Path) -> None:
    env = clean_env(BRIDGE_AUTH_ROOT=str(tmp_path / "auth"), BRIDGE_NODE=str(tmp_path / "no-such-node"))
    code, document = run_doctor(tmp_path, env, "--check", "node")
    finding = by_check(document)["node"]
    assert code == 2 and finding["status"] == "error"
    assert "not found" in finding["summary"] and "BRIDGE_NODE" in finding["fix"]


def test_a_node_wrapper_that_allows_writes_is_caught_by_really_writing(tmp_path: Path) -> None:
    wrapper = tmp_path / "node-allowing-writes"
    wrapper.write_text("#!/bin/sh\nexec node --allow-fs-write='*' \"$@\"\n")
    wrapper.chmod(0o755)
    before = set(Path("/tmp").glob("bridge-doctor-node-*"))
    code, document = run_doctor(tmp_path, clean_env(BRIDGE_NODE=str(wrapper)), "--check", "node")
    finding = by_check(document)["node"]
    assert code == 2 and finding["status"] == "error"
    assert "did not deny a file write (got 'written')" in finding["summary"]
    assert "--allow-fs-write" in finding["fix"]
    assert set(Path("/tmp").glob("bridge-doctor-node-*")) == before, "what Node wrote is taken back"


def node_modules_copy(target: Path, **versions: str) -> Path:
    """A node_modules holding the package.json of every runtime dependency, some with another version."""
    pins: dict[str, str] = json.loads((REPO / "package.json").read_text())["dependencies"]
    for package in pins:
        data: dict[str, Any] = json.loads((REPO / "node_modules" / package / "package.json").read_text())
        data["version"] = versions.get(package, data["version"])
        (target / package).mkdir(parents=True)
        (target / package / "package.json").write_text(json.dumps(data))
    return target


def test_another_baileys_version_in_node_modules_is_an_error(tmp_path: Path) -> None:
    good = node_modules_copy(tmp_path / "good" / "node_modules")
    code, document = run_doctor(tmp_path, clean_env(BRIDGE_NODE_MODULES_DIR=str(good)), "--check", "baileys")
    assert code == 0, document

    bad = node_modules_copy(tmp_path / "bad" / "node_modules", **{"@whiskeysockets/baileys": "6.7.18"})
    code, document = run_doctor(tmp_path, clean_env(BRIDGE_NODE_MODULES_DIR=str(bad)), "--check", "baileys")
    finding = by_check(document)["baileys"]
    assert code == 2 and finding["status"] == "error"
    assert f"@whiskeysockets/baileys 6.7.18 is installed in {bad}, the lock says 7.0.0-rc14" in finding["summary"]
    assert "npm ci" in finding["fix"]

    (bad / "ws" / "package.json").unlink()
    _, document = run_doctor(tmp_path, clean_env(BRIDGE_NODE_MODULES_DIR=str(bad)), "--check", "baileys")
    assert f"ws is not installed in {bad}" in by_check(document)["baileys"]["summary"]


def test_a_public_bind_without_api_keys_is_an_error_and_short_keys_a_warning(tmp_path: Path) -> None:
    code, document = run_doctor(tmp_path, clean_env(BRIDGE_HOST="0.0.0.0"), "--check", "api")
    finding = by_check(document)["api"]
    assert code == 2 and "without an API key" in finding["summary"] and "BRIDGE_API_KEYS" in finding["fix"]

    code, document = run_doctor(tmp_path, clean_env(BRIDGE_HOST="0.0.0.0", BRIDGE_API_KEYS="short,"
                                                    + "x" * 40), "--check", "api")
    assert code == 1 and "1 of 2 API key(s) shorter than 16" in by_check(document)["api"]["summary"]


def test_a_state_dir_inside_the_auth_root_is_an_error(tmp_path: Path) -> None:
    env = clean_env(BRIDGE_AUTH_ROOT=str(tmp_path / "auth"), BRIDGE_STATE_DIR=str(tmp_path / "auth" / "state"))
    code, document = run_doctor(tmp_path, env, "--check", "state_dir")
    assert code == 2 and "inside the auth root" in by_check(document)["state_dir"]["summary"]


class TelegramHandler(QuietHandler):
    """The two Bot API methods the doctor calls; one token and one chat are valid."""

    token = "123456:good-token-abcdefghijklmnop"
    chat = "-100200300"

    def do_GET(self) -> None:
        bot, _, rest = self.path.lstrip("/").partition("/")
        method, _, query = rest.partition("?")
        if bot != f"bot{self.token}":
            self.send_json(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        elif method == "getMe":
            self.send_json(200, {"ok": True, "result": {"id": 123456, "is_bot": True, "username": "bridge_bot"}})
        elif method == "getChat" and query == f"chat_id={self.chat}":
            self.send_json(200, {"ok": True, "result": {"id": int(self.chat), "type": "group"}})
        else:
            self.send_json(400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"})


def test_telegram_is_called_for_real_and_the_token_never_printed(tmp_path: Path) -> None:
    good = TelegramHandler.token
    with http_server(TelegramHandler) as api:
        cases = {
            (good, TelegramHandler.chat): (0, "bot @bridge_bot reaches chat -100200300"),
            ("123456:wrong-token-zzzzzzzzzzzzzz", TelegramHandler.chat): (2, "rejected the bot token (HTTP 401"),
            (good, "42"): (2, "cannot see chat 42 (HTTP 400: Bad Request: chat not found)"),
        }
        for (token, chat), (expected, said) in cases.items():
            env = clean_env(BRIDGE_TELEGRAM_API=api, BRIDGE_TELEGRAM_TOKEN=token, BRIDGE_TELEGRAM_CHAT_ID=chat)
            proc = run_bridge(tmp_path, env, "doctor", "--check", "telegram")
            assert proc.returncode == expected, proc.stdout
            assert said in proc.stdout
            assert token not in proc.stdout + proc.stderr
    env = clean_env(BRIDGE_TELEGRAM_API=api, BRIDGE_TELEGRAM_TOKEN=good, BRIDGE_TELEGRAM_CHAT_ID="1")
    code, document = run_doctor(tmp_path, env, "--check", "telegram", "--timeout", "2")
    finding = by_check(document)["telegram"]
    assert code == 1 and "unreachable within 2 s" in finding["summary"], finding
    assert good not in str(document)

    code, document = run_doctor(tmp_path, clean_env(BRIDGE_TELEGRAM_TOKEN=good), "--check", "telegram")
    assert code == 1 and "BRIDGE_TELEGRAM_CHAT_ID is empty" in by_check(document)["telegram"]["summary"]


def test_a_clock_ten_minutes_off_is_an_error_and_no_reference_a_skip(tmp_path: Path) -> None:
    with http_server(SkewedClockHandler) as url:
        env = clean_env(BRIDGE_WA_URL=url.replace("http://", "ws://") + "/ws/chat")
        code, document = run_doctor(tmp_path, env, "--check", "clock")
    finding = by_check(document)["clock"]
    assert code == 2 and finding["status"] == "error"
    assert 595 <= finding["details"]["skew_seconds"] <= 605
    assert "clock is 600 s ahead of" in finding["summary"] or "clock is 601 s ahead of" in finding["summary"]
    assert "timedatectl" in finding["fix"]

    env = clean_env(BRIDGE_WA_URL=url.replace("http://", "ws://") + "/ws/chat")  # the server is gone now
    code, document = run_doctor(tmp_path, env, "--check", "clock", "--timeout", "2")
    finding = by_check(document)["clock"]
    assert code == 0 and finding["status"] == "skipped" and "cannot read the time of" in finding["summary"]

