"""The digest and the report as a recipient sees them: opened in a real headless Chromium."""

from __future__ import annotations

import asyncio
import re
import struct
from collections.abc import Iterator
from datetime import date
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest

from mailbot.jobs import report_view
from mailbot.mail.render import Templates
from tests.browser import Browser, find
from tests.digest_support import build_report, queued_digest


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    binary = find()
    if binary is None:
        pytest.skip("no Chromium: bash scripts/test.sh installs Debian's chromium package; "
                    "this machine could not")
    b = Browser(binary)
    yield b
    b.close()


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def labels_of(html: str) -> set[str]:
    """Every label a chart draws: week labels, legend names, titles."""
    found = set(re.findall(r'data-label="([^"]+)"', html))
    found |= set(re.findall(r"&#9632;</span>&nbsp;([^&<]+)", html))
    found |= set(re.findall(r'font-weight:bold;padding:12px 0 4px 0">([^<]+)', html))
    return {x.replace("&amp;", "&") for x in found}


def test_digest_in_chromium(browser: Browser, tmp_path: Path) -> None:
    """The HTML part of the digest as queued for sending loads nothing from outside, shows
    every chart label and title as text, and is screenshot at mail width."""
    mail = message_from_bytes(asyncio.run(queued_digest(tmp_path)), policy=default)
    part = mail.get_body(("html",))
    assert part is not None
    html = part.get_content()
    page_file = tmp_path / "digest.html"
    page_file.write_text(html, encoding="utf-8")
    shot = tmp_path / "digest.png"
    page = browser.open(page_file, shot)
    assert page.requests == []
    labels = labels_of(html)
    assert len(labels) >= 25  # 12 weeks, the legends, the states, the severities, the titles
    missing = sorted(x for x in labels if x not in page.text)
    assert missing == []
    for title in ("New and closed cases, last 12 weeks", "First responses on time per week",
                  "promise: first response within 3 business days", "target 80%",
                  "Open cases by state", "Open cases by severity", "Broken promises",
                  "Due in the next 7 days"):
        assert title in page.text
    width, height = png_size(shot)
    assert width == 700 and height == page.size[1] > 2000
    assert page.size[0] <= 700  # nothing wider than the mail


def test_dutch_report_in_chromium(browser: Browser, tmp_path: Path) -> None:
    """The report's HTML (Dutch) loads nothing from outside and shows its charts' labels."""
    config, found = asyncio.run(build_report(tmp_path, date(2026, 3, 1), date(2026, 10, 31),
                                             "nl"))
    html = report_view.render(Templates(), found, "nl", config.digest.target, "html")
    page_file = tmp_path / "report.html"
    page_file.write_text(html, encoding="utf-8")
    page = browser.open(page_file, tmp_path / "report.png")
    assert page.requests == []
    assert sorted(x for x in labels_of(html) if x not in page.text) == []
    assert "Nalevingsrapport" in page.text and "eerste reactie binnen 3 werkdagen" in page.text
    assert png_size(tmp_path / "report.png")[0] == 700


def test_an_external_image_would_be_seen(browser: Browser, tmp_path: Path) -> None:
    """The check is real: a page with a remote image and stylesheet shows both requests (an
    attacker's tracking pixel would be caught; nothing leaves the machine: the proxy is a
    closed loopback port)."""
    page_file = tmp_path / "tracked.html"
    page_file.write_text('<html><head><link rel="stylesheet" href="https://203.0.113.7/s.css">'
                         '</head><body><img src="http://203.0.113.7/pixel.gif">hi</body></html>')
    page = browser.open(page_file)
    assert "http://203.0.113.7/pixel.gif" in page.requests
    assert "https://203.0.113.7/s.css" in page.requests
