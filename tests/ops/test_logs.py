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
from pathlib import Path

from bridge.logs import JsonFormatter, log_context, setup

KEY = "ops-test-key-0123456789"
SESSION = "logs-1"
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")


def test_extra_and_context_name_the_session_and_event_and_exceptions_stay_on_one_line() -> None:
    stream = io.StringIO()
    setup("INFO", "json", stream=stream)
    log = logging.getLogger("bridge.test")
    try:
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
    finally:
        setup("INFO", "text")
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
