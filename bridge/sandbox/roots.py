"""Which folders a sandbox bridge may use, and the refusals that keep sandbox and production apart.

Rule: a sandbox bridge writes only to roots that are empty or that a sandbox made (they carry a
marker file); a production bridge refuses a root a sandbox made. So simulator credentials never
mix with real ones, in either direction. By default the sandbox uses `BRIDGE_SANDBOX_DIR/auth`
and `BRIDGE_SANDBOX_DIR/state` (./data/sandbox/...), whatever BRIDGE_AUTH_ROOT says; an auth root
or state folder given explicitly (flag, env or .env) is used only if it passes the rule.
"""

from __future__ import annotations

from pathlib import Path

from bridge.config import Settings
from bridge.errors import ConfigError
from bridge.eventlog.location import state_dir
from bridge.store import durable

AUTH_MARKER = Path(".bridge") / "sandbox"
"""Inside a sandbox auth root: says the credentials below belong to the simulator."""
STATE_MARKER = Path("sandbox")
"""Inside a sandbox state folder."""
MARKER_TEXT = b"this folder belongs to a baileys-bridge sandbox (the bundled simulator); never production\n"


class SandboxRefused(ConfigError):
    """Sandbox and production data would mix; the message says which folder and what to do."""


def _holds_data(folder: Path) -> bool:
    try:
        return any(folder.iterdir())
    except FileNotFoundError:
        return False


def _check(folder: Path, marker: Path, what: str, env: str) -> None:
    if _holds_data(folder) and not (folder / marker).is_file():
        raise SandboxRefused(
            f"sandbox mode refuses the {what} {folder}: it is not empty and was not made by a sandbox, so it may "
            f"hold production data. Leave {env} unset (the sandbox then uses BRIDGE_SANDBOX_DIR, ./data/sandbox) "
            f"or point it at an empty folder"
        )


def sandbox_roots(settings: Settings) -> Settings:
    """The settings a sandbox bridge runs with: its own auth root and state folder (checked).

    Raises `SandboxRefused` when an explicitly chosen root is non-empty and not a sandbox's.
    """
    chosen = settings.model_fields_set
    auth = settings.auth_root if "auth_root" in chosen else settings.sandbox_dir / "auth"
    state = settings.state_dir if "state_dir" in chosen else settings.sandbox_dir / "state"
    _check(auth, AUTH_MARKER, "auth root", "BRIDGE_AUTH_ROOT (or --auth-root)")
    _check(state, STATE_MARKER, "state folder", "BRIDGE_STATE_DIR")
    return settings.model_copy(update={"auth_root": auth, "state_dir": state})


def mark_roots(settings: Settings) -> None:
    """Write the markers (through the one writer) so later runs recognise these roots as sandbox ones."""
    for folder, marker in ((settings.auth_root, AUTH_MARKER), (state_dir(settings), STATE_MARKER)):
        path = folder / marker
        if not path.is_file():
            durable.make_dirs(path.parent)
            durable.atomic_write(path, MARKER_TEXT)


def refuse_sandbox_roots(settings: Settings) -> None:
    """A production bridge never runs on a sandbox's auth root (simulator credentials)."""
    if (settings.auth_root / AUTH_MARKER).is_file():
        raise SandboxRefused(
            f"the auth root {settings.auth_root} belongs to a sandbox (simulator credentials): run it with "
            "--sandbox, or point BRIDGE_AUTH_ROOT at your production root"
        )
