"""How every operator command answers: one JSON document with `--json`, lines for humans otherwise,
and errors as one `error:` line on stderr with the exit code of their `ErrorCode` (docs/operations.md).

One home so the file commands (store_commands.py) and the cluster commands (cluster.py) cannot
drift apart in what a script parsing their output sees.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from bridge.errors import BridgeError, ErrorCode, ExitCode, exit_code

Result = tuple[int, Any, str]
"""What a command's handler returns: exit code, the JSON document, the text for humans."""


def emit(args: argparse.Namespace, data: Any, human: str) -> None:
    """Print the result: `data` as indented JSON with `--json`, else `human`."""
    if args.json:
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(data), indent=2).decode() + "\n")
    elif human:
        sys.stdout.write(human.rstrip("\n") + "\n")


def fail(args: argparse.Namespace, code: int, error_code: str, message: str) -> int:
    """Report an error (also as JSON with `--json`) and return the exit code."""
    if args.json:
        emit(args, {"error": {"code": error_code, "message": message}, "exit_code": code}, "")
    sys.stderr.write(f"error: {message}\n")
    return code


def answer(args: argparse.Namespace, work: Callable[[], Result], *, path: Path | str = "") -> int:
    """Run `work`, print its result, and map a `BridgeError` or `OSError` to its exit code; `path`
    names the file an OSError without a file name was about."""
    try:
        code, data, human = work()
    except BridgeError as exc:
        return fail(args, exit_code(exc), exc.code, exc.message)
    except OSError as exc:
        message = f"{exc.filename or path}: {exc.strerror or exc}; check the path and its permissions"
        return fail(args, ExitCode.ERROR, ErrorCode.OS_ERROR, message)
    emit(args, data, human)
    return code
