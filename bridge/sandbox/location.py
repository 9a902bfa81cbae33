"""Where the bundled simulator lives: ONE constant, so moving the folder is one `git mv` and one
line here."""

from __future__ import annotations

from bridge.config import PROJECT_ROOT

SIMULATOR_MAIN = PROJECT_ROOT / "simulator" / "main.mjs"
"""Entry point of the simulator (prints one JSON address line, exits when its stdin closes)."""
