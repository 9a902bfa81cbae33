"""Logs: `BRIDGE_LOG_FORMAT=json` gives one JSON object per stderr line; text stays the default.

The JSON test runs the real bridge with a session whose real Baileys runtime connects to the
simulator and waits for a QR, so its stderr holds lines of the session, of its Node runtime and
of the shutdown; every line must parse, and the session's state changes must say so.
"""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.logs import JsonFormatter, log_context, setup
from tests.ops.conftest import BridgeRun, clean_env, http, wait_until
from tests.simulator.fixture import SimulatorClient

KEY = "ops-test-key-0123456789"
SESSION = "logs-1"
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")


def session_state(run: BridgeRun, session: str) -> str:
    status, body = http("GET", f"{run.base}/api/v1/sessions/{session}", key=KEY)
    return str(json.loads(body)["state"]) if status == 200 else ""


def test_json_logs_are_one_object_per_line_with_session_and_event(tmp_path: Path, simulator: SimulatorClient) -> None:
    env = clean_env(BRIDGE_LOG_FORMAT="json", BRIDGE_AUTH_ROOT=str(tmp_path / "auth"), BRIDGE_API_KEYS=KEY,
                    BRIDGE_WA_URL=simulator.ws_url, BRIDGE_WA_TRUST_ROOT=simulator.root_pub,
                    BRIDGE_SESSIONS_PER_RUNTIME="1")  # the runtime is the session (pooled is the default)
    with BridgeRun(tmp_path, env) as run:
        status, body = http("POST", f"{run.base}/api/v1/sessions", {"id": SESSION}, key=KEY)
        assert status == 201, body
        wait_until(lambda: session_state(run, SESSION) == "qr", "the session to show a QR")
        assert run.stop() == 0
        lines = run.stderr().splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert records and all(isinstance(r, dict) for r in records)
    for record in records:
        assert {"time", "level", "logger", "message", "session", "event"} <= record.keys(), record
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["time"])
    states = [r for r in records if r["event"] == "session.state"]
    assert states and all(r["session"] == SESSION for r in states)
    assert any("-> qr" in r["message"] for r in states)
    runtime = [r for r in records if r.get("runtime") == SESSION]
    assert any(r["event"] == "runtime.state" for r in runtime), "the Node runtime's states are marked"
    assert all(r["session"] == SESSION for r in runtime), "one session per runtime: the runtime is the session"
    assert records[-1]["message"] == "shutdown complete" and records[-1]["session"] is None


def test_text_stays_the_default(tmp_path: Path) -> None:
    env = clean_env(BRIDGE_AUTH_ROOT=str(tmp_path / "auth"), BRIDGE_MONITOR_ENABLED="false")
    with BridgeRun(tmp_path, env) as run:
        assert run.stop() == 0
        lines = run.stderr().splitlines()
    assert lines and all(TEXT_LINE.match(line) for line in lines), lines
    assert any(line.endswith("bridge.app: shutdown complete") for line in lines)


@pytest.fixture()
def own_logging() -> Iterator[None]:
    """`setup` replaces the root logger's handlers (and, for JSON, sys.excepthook): put pytest's back."""
    root = logging.getLogger()
    handlers, level, hook = list(root.handlers), root.level, sys.excepthook
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        sys.excepthook = hook
        logging.captureWarnings(False)


def test_extra_and_context_name_the_session_and_event_and_exceptions_stay_on_one_line(own_logging: None) -> None:
    stream = io.StringIO()
    setup("INFO", "json", stream=stream)
    log = logging.getLogger("bridge.test")
    log.info("plain")
    log.info("delivered", extra={"session": "s1", "event": "webhook.delivery", "webhook": "w1"})
    with log_context(session="s2"):
        with log_context(event="snapshot"):
            log.warning("inside")
    log.info("session %s: anything", "s3")
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        log.exception("failed")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 5
    plain, delivered, inside, conventional, failed = (json.loads(line) for line in lines)
    assert (plain["session"], plain["event"]) == (None, None)
    assert (delivered["session"], delivered["event"], delivered["webhook"]) == ("s1", "webhook.delivery", "w1")
    assert (inside["session"], inside["event"], inside["level"]) == ("s2", "snapshot", "WARNING")
    assert conventional["session"] == "s3"
    assert failed["exc"].startswith("Traceback") and "ValueError: boom" in failed["exc"]


def test_the_json_formatter_keeps_unicode_and_odd_values() -> None:
    record = logging.LogRecord("bridge.x", logging.INFO, __file__, 1, "név %s", ("ü",), None)
    record.path = Path("/tmp/ä")
    document = json.loads(JsonFormatter().format(record))
    assert document["message"] == "név ü" and document["path"] == "/tmp/ä"
