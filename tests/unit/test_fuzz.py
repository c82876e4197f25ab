"""Fuzz target: hostile bytes through parse → thread → staff commands, in bounded time.

Mails are built from the fragments attackers use (CR/LF, encoded words, NUL, invalid UTF-8,
boundaries, case references, command lines) so the search reaches deep paths, not only the
parser's first error. CI runs a derandomized profile (conftest) of the same size.
"""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbot.config import InboxConfig
from mailbot.mail.parse import parse
from mailbot.mail.quotes import new_text
from mailbot.triage import commands
from mailbot.triage.threads import find_case

INBOX = InboxConfig(name="security", address="security@example.org", prefix="SEC",
                    policy="security")
FRAGMENTS = [
    b"\r\n", b"\n", b"\r", b"\0", b"\xff\xfe", b"\xc3\x28", b"=?utf-8?b?DQpCY2M6IHhAeA==?=",
    b"=?utf-8?q?a=0D=0AX-Evil:_1?=", b"=?x-unknown?q?zz?=", b"{{ config }}", b"{% raw %}",
    b"<script>alert(1)</script>", b"[SEC-2026-0001]", b"[SEC-2026-99999999]", b"#status fixing",
    b"#reply", b"#due 2026-13-45", b"#severity CVSS:3.1/AV:N", b"> #close", b"--b\r\n",
    b"--b--\r\n", b"Content-Type: multipart/mixed; boundary=b\r\n",
    b"Content-Transfer-Encoding: base64\r\n", b"<id@x>", b"\t", b" ", b":", b";", b",",
    b"security+SEC-2026-0001.abcdef@example.org",
]
HEADERS = [b"From", b"To", b"Cc", b"Subject", b"Message-ID", b"In-Reply-To", b"References",
           b"Content-Type", b"Auto-Submitted", b"X-Loop", b"Date", b"Content-Language"]

chunk = st.one_of(st.sampled_from(FRAGMENTS), st.binary(max_size=40))
value = st.lists(chunk, max_size=8).map(b"".join)
header = st.tuples(st.sampled_from(HEADERS), value).map(lambda h: h[0] + b": " + h[1] + b"\r\n")
mail = st.tuples(st.lists(header, max_size=12), st.lists(chunk, max_size=30)).map(
    lambda m: b"".join(m[0]) + b"\r\n" + b"".join(m[1]))


class Lookup:
    """Case 1 answers to one Message-ID and one reference; nothing else exists."""

    async def by_message_ids(self, message_ids: tuple[str, ...]) -> int | None:
        return 1 if "<id@x>" in message_ids else None

    async def by_ref(self, ref: str, inbox: str) -> int | None:
        return 1 if ref == "SEC-2026-0001" and inbox == "security" else None


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mail, st.lists(st.sampled_from(["security@example.org", "security+SEC-2026-0001."
                                       "abcdef@example.org", "x@example.net"]), max_size=2))
def test_parse_thread_commands_never_raise(raw: bytes, rcpt: list[str]) -> None:
    """Any mail parses; threading finds case 1 or none; command parsing returns a result."""
    parsed = parse(raw, loop_markers=("security@example.org",))
    assert "\n" not in parsed.subject and "\r" not in parsed.subject
    assert "\n" not in parsed.from_addr and " " not in parsed.from_addr
    found = asyncio.run(find_case(parsed, [*rcpt, *parsed.to], inbox=INBOX, lookup=Lookup()))
    assert found in (None, 1)
    result = commands.parse(new_text(parsed.text))
    assert all(e.line >= 1 for e in result.errors)
