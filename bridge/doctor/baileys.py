"""Baileys: node_modules holds exactly the versions package.json pins and package-lock.json locks.

The bridge is written against one Baileys release (its file names, its events, its auth-state
calls); another version can write folders the bridge misreads. So the pin in package.json, the
lock entry and what is installed under BRIDGE_NODE_MODULES_DIR must all agree, for Baileys and for
every other direct dependency of the runtime (a range in package.json, should one appear, only
needs the lock and the installed copy to agree).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bridge.config import PROJECT_ROOT, Settings
from bridge.doctor.result import CheckResult, error, ok

NAME = "baileys"
BAILEYS = "@whiskeysockets/baileys"
FIX_INSTALL = "run `npm ci` in {project} (installs exactly what package-lock.json locks)"


def _read_json(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return data


def installed_version(node_modules: Path, package: str) -> str | None:
    """The version in `node_modules/<package>/package.json`, or None when it is not installed."""
    try:
        version = _read_json(node_modules / package / "package.json").get("version")
    except (OSError, ValueError):
        return None
    return str(version) if version else None


def check(settings: Settings, timeout: float) -> CheckResult:
    """See the module docstring. `timeout` is unused: this only reads files."""
    del timeout
    project = PROJECT_ROOT
    fix = FIX_INSTALL.format(project=project)
    try:
        pins: dict[str, str] = dict(_read_json(project / "package.json").get("dependencies", {}))
        locked_packages: dict[str, Any] = _read_json(project / "package-lock.json").get("packages", {})
    except (OSError, ValueError) as exc:
        return error(NAME, f"cannot read the project's package.json/package-lock.json: {exc}",
                     "reinstall baileys-bridge from its release (both files ship with it)")
    pin = pins.get(BAILEYS)
    if pin is None:
        return error(NAME, f"package.json does not depend on {BAILEYS}", "reinstall baileys-bridge from its release")
    node_modules = Path(settings.node_modules_dir)
    problems: list[str] = []
    versions: dict[str, dict[str, str | None]] = {}
    for package, wanted in sorted(pins.items()):
        locked = locked_packages.get(f"node_modules/{package}", {}).get("version")
        installed = installed_version(node_modules, package)
        versions[package] = {"pinned": wanted, "locked": locked, "installed": installed}
        if locked is None or (wanted[:1].isdigit() and locked != wanted):
            problems.append(f"package-lock.json locks {package} {locked}, package.json pins {wanted}")
        if installed is None:
            problems.append(f"{package} is not installed in {node_modules}")
        elif installed != locked:
            problems.append(f"{package} {installed} is installed in {node_modules}, the lock says {locked}")
    details = {"node_modules": str(node_modules), "packages": versions}
    if problems:
        return error(NAME, "; ".join(problems), fix, **details)
    return ok(NAME, f"{BAILEYS} {pin} installed as pinned ({len(pins)} runtime packages match the lock)", **details)
