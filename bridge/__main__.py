"""`python -m bridge`: run the service (default) or an operator subcommand.

Each subcommand lives in its own module under `bridge/cli/` and exposes
`register(subparsers) -> None`, which adds a parser whose `func(args) -> int` is the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Order here is the order in `--help`.
COMMAND_MODULES = (
    "bridge.cli.run",
    "bridge.cli.sessions",
    "bridge.cli.store_commands",
    "bridge.cli.monitor",
    "bridge.cli.doctor",
    "bridge.cli.cluster",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bridge",
        description="baileys-bridge: supervise Baileys sessions in Node; Python owns every byte of auth.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    given = list(argv) if argv is not None else sys.argv[1:]
    if given and given[0].startswith("-") and given[0] not in ("-h", "--help"):
        given = ["run", *given]  # `python -m bridge --sandbox` = `python -m bridge run --sandbox`
    args = parser.parse_args(given)
    if args.command is None:
        args = parser.parse_args(["run", *given])
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    code: int = func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
