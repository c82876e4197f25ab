"""Regenerate docs/digest.png: the digest of the tests' known database, as headless
Chromium draws it at mail width (the top of it: summary, charts, broken promises).

    .venv/bin/python scripts/digest_screenshot.py [--out docs/digest.png] [--height 1900]

Needs Debian's chromium (bash scripts/test.sh installs it).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser import Browser, find  # noqa: E402
from tests.digest_support import render_digest  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "digest.png")
    ap.add_argument("--height", type=int, default=1900, help="pixels of the page to show")
    ap.add_argument("--language", default="en", choices=["en", "nl"])
    args = ap.parse_args()
    binary = find()
    if binary is None:
        print("error: no chromium found (apt-get install chromium)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        _, _, html = asyncio.run(render_digest(Path(tmp), args.language))
        page = Path(tmp) / "digest.html"
        page.write_text(html, encoding="utf-8")
        browser = Browser(binary, width=700)
        try:
            shown = browser.open(page, args.out, max_height=args.height)
        finally:
            browser.close()
    if shown.requests:
        print(f"error: the digest asked for {shown.requests}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({len(html) // 1024} KB of HTML, page {shown.size[1]} px tall)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
