"""Node: the binary BRIDGE_NODE names runs, is >= 20, and its permission model really denies writes.

The bridge's promise rests on the Node runtime being unable to write the auth folders itself
(Python writes every byte). So this does not trust the version number: it starts Node with the
same permission flags the runtime gets (`bridge.runtime.process.permission_flag`, read access to
node-runtime/ and node_modules/ only), asks it to write a file, and expects `ERR_ACCESS_DENIED`.
It also reads Baileys' package.json under those flags, which proves the runtime can load it.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bridge.config import Settings
from bridge.doctor.result import CheckResult, error, ok
from bridge.errors import NodeRuntimeError
from bridge.runtime.process import permission_flag
from bridge.store import durable

NAME = "node"
MIN_MAJOR = 20
BAILEYS_PACKAGE = Path("@whiskeysockets") / "baileys" / "package.json"

#: Runs under the permission model: try to write `argv[1]`, read `argv[2]`; print what happened.
PROBE = r"""
const fs = require('node:fs');
const [target, pkg] = process.argv.slice(1);
const out = { node: process.version, permission: Boolean(process.permission), write: 'written', read: null };
try { fs.writeFileSync(target, 'x'); } catch (e) { out.write = e.code || String(e); }
try { out.read = JSON.parse(fs.readFileSync(pkg, 'utf8')).version; } catch (e) { out.readError = e.code || String(e); }
process.stdout.write(JSON.stringify(out) + '\n');
"""


def _env() -> dict[str, str]:
    """The runtime's environment: NODE_OPTIONS could switch the permission model off, so it goes."""
    return {k: v for k, v in os.environ.items() if k != "NODE_OPTIONS"}


def _version(node: str, timeout: float) -> tuple[int, str]:
    out = subprocess.run(
        [node, "--version"], capture_output=True, text=True, timeout=timeout, check=True, env=_env()
    ).stdout.strip()
    return int(out.lstrip("v").split(".")[0]), out


def _probe(settings: Settings, flag: str, timeout: float) -> dict[str, Any]:
    target = Path(tempfile.gettempdir()) / f"bridge-doctor-node-{os.getpid()}-{os.urandom(4).hex()}"
    command = [
        settings.node,
        flag,
        f"--allow-fs-read={Path(settings.node_runtime_dir).resolve()}",
        f"--allow-fs-read={Path(settings.node_modules_dir).resolve()}",
        "-e",
        PROBE,
        str(target),
        str(Path(settings.node_modules_dir).resolve() / BAILEYS_PACKAGE),
    ]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False, env=_env())
    finally:
        if target.exists():  # the model did not hold: take back what Node wrote
            durable.remove(target, sync_dir=False)
    try:
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        result = {"failed": f"exit {proc.returncode}: {proc.stderr.strip()[-300:] or 'no output'}"}
    return result


def check(settings: Settings, timeout: float) -> CheckResult:
    """See the module docstring."""
    node = settings.node
    fix_binary = f"install Node >= {MIN_MAJOR} (the runtime needs its permission model) or point BRIDGE_NODE at it"
    try:
        major, version = _version(node, timeout)
    except FileNotFoundError:
        return error(NAME, f"{node!r} not found", fix_binary, node=node)
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        return error(NAME, f"{node!r} --version failed: {exc}", fix_binary, node=node)
    if major < MIN_MAJOR:
        return error(NAME, f"{node} is Node {version}; Node >= {MIN_MAJOR} is required", fix_binary, version=version)
    try:
        flag = permission_flag(node)
    except NodeRuntimeError as exc:
        return error(NAME, str(exc), fix_binary, version=version)
    try:
        probe = _probe(settings, flag, timeout)
    except subprocess.TimeoutExpired:
        return error(NAME, f"Node {version} did not finish a trivial script in {timeout:g} s",
                     "check the machine's load and the node binary", version=version)
    details = {"version": version, "flag": flag, **probe}
    if "failed" in probe:
        return error(NAME, f"Node {version} refused to run with {flag}: {probe['failed']}",
                     "use an official Node build >= 20 (the permission model must be compiled in)", **details)
    if not probe.get("permission") or probe.get("write") != "ERR_ACCESS_DENIED":
        return error(
            NAME,
            f"Node {version} with {flag} did not deny a file write (got {probe.get('write')!r})",
            "use an official Node build >= 20 and make sure NODE_OPTIONS or a wrapper script adds no "
            "--allow-fs-write: the runtime must not be able to write the auth folders",
            **details,
        )
    if probe.get("read") is None:
        return error(
            NAME,
            f"under {flag}, Node cannot read {settings.node_modules_dir / BAILEYS_PACKAGE} "
            f"({probe.get('readError')})",
            "run `npm ci` in the project folder, or point BRIDGE_NODE_MODULES_DIR at the installed node_modules",
            **details,
        )
    return ok(NAME, f"Node {version}; {flag} denies writes (ERR_ACCESS_DENIED) and can read Baileys", **details)
