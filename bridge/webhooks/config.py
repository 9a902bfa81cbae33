"""Webhook configs: what each target wants, and where the configs are kept.

A webhook has an id, a URL (http or https only), a secret, the event kinds it wants (empty: all)
and the sessions it wants (empty: all, i.e. a global webhook). The per-session webhook of the
first API (`PUT /sessions/{id}/webhook`) is the webhook with id `session-<id>` limited to that
session.

Configs hold secrets, so the file is written owner-only through the store's `atomic_write`
(`BRIDGE_STATE_DIR/webhooks.json`); a bridge that finds only the first location
(`AUTH_ROOT/.bridge/webhooks.json`) reads that and writes the new one on the next change.

`ConfigStore` is what the dispatcher asks of the configs: `WebhookConfigs` is this file's; in
cluster mode bridge/cluster/outbox.py keeps them in PostgreSQL, the same for every node.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import msgspec

from bridge.errors import ConfigError
from bridge.events import Event, canonical_kind
from bridge.store.durable import atomic_write, make_dirs

FILE_FORMAT = 2


class Webhook(msgspec.Struct, frozen=True):
    id: str
    url: str
    secret: str
    events: list[str] = []
    sessions: list[str] = []
    created_at: float = 0.0

    def wants(self, event: Event) -> bool:
        """True when this webhook should get `event` (kind and session filters)."""
        if self.sessions and event.session not in self.sessions:
            return False
        return not self.events or canonical_kind(event.kind) in self.events


class _File(msgspec.Struct):
    format: int
    webhooks: list[Webhook]


def session_webhook_id(session: str) -> str:
    return f"session-{session}"


class ConfigStore(Protocol):
    """Webhook configs: `all`/`get` answer from memory (they run on the event loop); `load`, `put`
    and `remove` may block (the dispatcher runs them in a thread)."""

    def load(self) -> None: ...

    def all(self) -> list[Webhook]: ...

    def get(self, webhook_id: str) -> Webhook | None: ...

    def put(self, hook: Webhook) -> None: ...

    def remove(self, webhook_id: str) -> bool: ...


class WebhookConfigs:
    """The configs in memory, saved whole on every change (done-or-unchanged, in memory too)."""

    def __init__(self, path: Path, legacy_path: Path | None = None) -> None:
        self.path = path
        self.legacy_path = legacy_path
        self._hooks: dict[str, Webhook] = {}

    def load(self) -> None:
        """Read the file (or the first location's). Raises ConfigError for an unreadable file."""
        if self.path.exists():
            try:
                found = msgspec.json.decode(self.path.read_bytes(), type=_File)
            except (msgspec.DecodeError, OSError) as exc:
                raise ConfigError(f"{self.path} cannot be read ({exc}); fix or move it aside and restart") from exc
            self._hooks = {h.id: h for h in found.webhooks}
        elif self.legacy_path is not None and self.legacy_path.exists():
            self._hooks = dict(_legacy(self.legacy_path))

    def all(self) -> list[Webhook]:
        return sorted(self._hooks.values(), key=lambda h: (h.created_at, h.id))

    def get(self, webhook_id: str) -> Webhook | None:
        return self._hooks.get(webhook_id)

    def put(self, hook: Webhook) -> None:
        """Add or replace `hook`; the file is written before memory changes."""
        changed = {**self._hooks, hook.id: hook}
        self._save(changed)
        self._hooks = changed

    def remove(self, webhook_id: str) -> bool:
        if webhook_id not in self._hooks:
            return False
        changed = {k: v for k, v in self._hooks.items() if k != webhook_id}
        self._save(changed)
        self._hooks = changed
        return True

    def _save(self, hooks: dict[str, Webhook]) -> None:
        make_dirs(self.path.parent)
        data = msgspec.json.format(msgspec.json.encode(_File(FILE_FORMAT, list(hooks.values()))), indent=2)
        atomic_write(self.path, data)


def _legacy(path: Path) -> Iterable[tuple[str, Webhook]]:
    try:
        raw = msgspec.json.decode(path.read_bytes())
    except (msgspec.DecodeError, OSError) as exc:
        raise ConfigError(f"{path} cannot be read ({exc}); fix or move it aside and restart") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} is not a JSON object; fix or move it aside and restart")
    now = time.time()
    for session, cfg in raw.items():
        hook_id = session_webhook_id(str(session))
        events = sorted({canonical_kind(str(k)) for k in cfg.get("events", [])})
        yield hook_id, Webhook(id=hook_id, url=str(cfg["url"]), secret=str(cfg["secret"]), events=events,
                               sessions=[str(session)], created_at=now)
