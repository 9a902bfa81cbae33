"""Rewrite README's config table (between the config markers) from `bridge.config.Settings`."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    spec = importlib.util.spec_from_file_location("config_docs", ROOT / "scripts" / "config_docs.py")
    assert spec and spec.loader
    docs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(docs)
    readme = ROOT / "README.md"
    text = readme.read_text()
    block = "<!-- config:begin -->\n" + docs.table() + "\n<!-- config:end -->"
    readme.write_text(re.sub(r"<!-- config:begin -->.*?<!-- config:end -->", lambda _: block, text, flags=re.S))
    (ROOT / ".env.example").write_text(docs.env_example() + "\n")


if __name__ == "__main__":
    main()
