"""Log setup for the long-running commands: text for people (default), or JSON for log shippers.

`BRIDGE_LOG_FORMAT=json` writes one JSON object per line to stderr:

    {"time": "2026-12-02T15:07:25.123Z", "level": "INFO", "logger": "bridge.sessions.session",
     "message": "session acme: connecting -> open (connected)", "session": "acme", "event": "session.state"}

`session` and `event` are always present (null when unknown). A record gets them, first found wins:
1. from `extra={"session": ..., "event": ...}` on the log call (any other `extra` key is copied
   into the object too);
2. from `log_context(session=..., event=...)` around the code that logs (a contextvar, so asyncio
   tasks started inside inherit it);
3. from the conventions bridge code logs with today: a message template starting `session %s`
   names the session in its first argument; `[%s] ...` in `bridge.runtime.process` names the Node
   runtime (`runtime`), which is the session when BRIDGE_SESSIONS_PER_RUNTIME=1 (`pool-N` with the default pooling);
   and the few templates in `EVENT_TEMPLATES` mark a state change or an alert.
Exceptions add `exc` (the formatted traceback), so a traceback never spans several lines. With
JSON, an exception nobody caught is logged the same way (`sys.excepthook`) before the exit.
"""

from __future__ import annotations

import json
import logging
import sys
import types
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any, Final

from bridge.config import Settings

TEXT: Final = "text"
JSON: Final = "json"
LOG_FORMATS: Final = (TEXT, JSON)
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: (logger, message template) of log lines that report a bus event, and that event's name.
#: Each maps to the argument index holding the session (None: the session is not in the args).
EVENT_TEMPLATES: Final[Mapping[tuple[str, str], tuple[str, int | None]]] = {
    ("bridge.sessions.session", "session %s: %s -> %s (%s)"): ("session.state", 0),
    ("bridge.runtime.process", "[%s] runtime %s -> %s (%s)"): ("runtime.state", None),
    ("bridge.alerts", "ALERT %s session=%s: %s %s"): ("alert", 1),
    ("bridge.store.snapshots.create", "snapshot %s of %s (%s): %d files"): ("snapshot", 1),
}
_SESSION_PREFIX: Final = "session %s"
_RUNTIME_LOGGER: Final = "bridge.runtime.process"
_RUNTIME_PREFIXES: Final = ("[%s]", "[node %s]")

_context: ContextVar[Mapping[str, str]] = ContextVar("bridge_log_context", default=types.MappingProxyType({}))

#: Attributes every LogRecord has; anything else on a record came from `extra`.
_STANDARD: Final = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


@contextmanager
def log_context(*, session: str | None = None, event: str | None = None) -> Iterator[None]:
    """Within this block (and tasks started in it), records carry this session and/or event."""
    fields = dict(_context.get())
    if session is not None:
        fields["session"] = session
    if event is not None:
        fields["event"] = event
    token = _context.set(fields)
    try:
        yield
    finally:
        _context.reset(token)


def _arg(record: logging.LogRecord, index: int) -> str | None:
    args = record.args
    if isinstance(args, tuple) and len(args) > index:
        return str(args[index])
    return None


def record_fields(record: logging.LogRecord, *, runtime_is_session: bool = True) -> dict[str, str | None]:
    """`session`, `event` and `runtime` of a record (see the module docstring for the order)."""
    context = _context.get()
    template = record.msg if isinstance(record.msg, str) else ""
    session: str | None = getattr(record, "session", None) or context.get("session")
    event: str | None = getattr(record, "event", None) or context.get("event")
    runtime: str | None = getattr(record, "runtime", None)
    known = EVENT_TEMPLATES.get((record.name, template))
    if known is not None:
        event = event or known[0]
        if known[1] is not None:
            session = session or _arg(record, known[1])
    if session is None and template.startswith(_SESSION_PREFIX):
        session = _arg(record, 0)
    if runtime is None and record.name == _RUNTIME_LOGGER and template.startswith(_RUNTIME_PREFIXES):
        runtime = _arg(record, 0)
    if session is None and runtime is not None and runtime_is_session:
        session = runtime
    return {"session": session, "event": event, "runtime": runtime}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def __init__(self, *, runtime_is_session: bool = True) -> None:
        super().__init__()
        self.runtime_is_session = runtime_is_session

    def format(self, record: logging.LogRecord) -> str:
        fields = record_fields(record, runtime_is_session=self.runtime_is_session)
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "session": fields["session"],
            "event": fields["event"],
        }
        if fields["runtime"] is not None:
            document["runtime"] = fields["runtime"]
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in document and not key.startswith("_"):
                document[key] = value
        if record.exc_info:
            document["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            document["exc"] = record.exc_text
        if record.stack_info:
            document["stack"] = self.formatStack(record.stack_info)
        return json.dumps(document, ensure_ascii=False, default=str)


def _log_uncaught(kind: type[BaseException], value: BaseException, tb: types.TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)
        return
    logging.getLogger("bridge").critical("uncaught exception; exiting", exc_info=(kind, value, tb))


def setup(level: str = "INFO", fmt: str = TEXT, *, stream: IO[str] | None = None,
          runtime_is_session: bool = True) -> None:
    """Replace the root logger's handlers with one stderr handler in `fmt` (`text` or `json`)."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format {fmt!r}: use one of {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == JSON:
        handler.setFormatter(JsonFormatter(runtime_is_session=runtime_is_session))
        sys.excepthook = _log_uncaught
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.captureWarnings(True)


def configure(settings: Settings) -> None:
    """`setup` from BRIDGE_LOG_LEVEL and BRIDGE_LOG_FORMAT: what `run` and `monitor` call first."""
    setup(settings.log_level, settings.log_format, runtime_is_session=settings.sessions_per_runtime == 1)
