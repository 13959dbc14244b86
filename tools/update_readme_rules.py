"""Regenerate the README rules table: `python tools/update_readme_rules.py`."""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- rules:start -->", "<!-- rules:end -->"


def render(readme: str) -> str:
    from mlwarden.catalog import rules_markdown

    block = f"{START}\n{rules_markdown()}\n{END}"
    return re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: block, readme,
                  flags=re.S)


def main() -> int:
    text = README.read_text()
    new = render(text)
    if new != text:
        README.write_text(new)
        print("README rules table updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
