"""Where the state folder and the event log file are, and the one rule about them.

The state folder holds what the bridge keeps besides credentials (DESIGN "two roots"): losing it
loses history, never a login. So it must never be inside the auth root, where snapshots, the
monitor and adoption treat every folder as credentials.
"""

from __future__ import annotations

from pathlib import Path

from bridge.config import Settings
from bridge.errors import ConfigError

EVENT_LOG_FILE = "events.db"
WEBHOOKS_FILE = "webhooks.json"


def state_dir(settings: Settings) -> Path:
    """BRIDGE_STATE_DIR if set, else `state` beside the auth root; ConfigError if inside the auth root."""
    folder = settings.state_dir if "state_dir" in settings.model_fields_set else settings.auth_root.parent / "state"
    resolved, root = folder.resolve(), settings.auth_root.resolve()
    if resolved == root or root in resolved.parents:
        raise ConfigError(
            f"BRIDGE_STATE_DIR {folder} is inside the auth root {settings.auth_root}; put it beside it "
            "(e.g. ./data/state next to ./data/auth): the auth root holds credentials only"
        )
    return folder


def event_log_path(settings: Settings) -> Path:
    return state_dir(settings) / EVENT_LOG_FILE


def webhooks_path(settings: Settings) -> Path:
    return state_dir(settings) / WEBHOOKS_FILE
