"""Print `.env.example` or README's config table from `bridge.config.Settings`.

Keeping the three in step by hand fails quietly; this makes the table and the example a function
of the one source of truth, and tests/test_config_docs.py checks nothing drifted.

Usage: python scripts/config_docs.py write   (rewrite .env.example and README's config table)
       python scripts/config_docs.py env | table   (print one of them)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# Document the checkout this script lives in, not whichever copy of `bridge` is installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bridge.config import PROJECT_ROOT, Settings


def _default(name: str) -> str:
    field = Settings.model_fields[name]
    value = field.get_default(call_default_factory=True)
    if isinstance(value, Path):
        try:
            return "./" + str(value.relative_to(PROJECT_ROOT))
        except ValueError:
            return str(value)
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def env_example() -> str:
    lines = [
        "# baileys-bridge settings. All optional: each line shows the embedded default, commented out.",
        "# Copy to .env (or export the variables) and uncomment what you change. Relative paths are",
        "# resolved against the directory the bridge is started from.",
        "",
    ]
    for name, field in Settings.model_fields.items():
        lines.append(f"# {field.description}")
        lines.append(f"# BRIDGE_{name.upper()}={_default(name)}")
        lines.append("")
    return "\n".join(lines)


def table() -> str:
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = _default(name) or "(empty)"
        rows.append(f"| `BRIDGE_{name.upper()}` | `{default}` | {field.description} |")
    return "\n".join(rows)


def write() -> None:
    """Rewrite .env.example and the README table between the config markers."""
    readme = PROJECT_ROOT / "README.md"
    block = "<!-- config:begin -->\n" + table() + "\n<!-- config:end -->"
    text = re.sub(r"<!-- config:begin -->.*?<!-- config:end -->", lambda _: block, readme.read_text(), flags=re.S)
    readme.write_text(text)
    (PROJECT_ROOT / ".env.example").write_text(env_example() + "\n")


def main(argv: list[str]) -> int:
    if argv[1:] == ["write"]:
        write()
        return 0
    if argv[1:] == ["env"]:
        print(env_example())
        return 0
    if argv[1:] == ["table"]:
        print(table())
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
