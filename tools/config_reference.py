"""Write (or check) docs/config_reference.md, the config reference generated from the schema dataclasses.

  python tools/config_reference.py           # rewrite the page
  python tools/config_reference.py --check   # exit 1 when the committed page differs from the schema
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from paddle_tag.config.reference import PAGE, render, undocumented_keys

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    page, text = REPO / PAGE, render()
    missing = undocumented_keys()
    if missing:
        print(f"error: keys without a comment in the schema: {', '.join(missing)}", file=sys.stderr)
        return 1
    if args.check:
        if not page.is_file() or page.read_text(encoding="utf-8") != text:
            print(f"error: {PAGE} is not what the schema generates; run python tools/config_reference.py",
                  file=sys.stderr)
            return 1
        print(f"{PAGE} is up to date")
        return 0
    page.write_text(text, encoding="utf-8")
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
