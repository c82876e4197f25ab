"""Real mail from other mail projects' test suites, through the pipeline, against what those
projects' own tests record (tests/corpus/real/README.md says where the corpus comes from).

Each file goes through intake's durable insert and the pipeline over a real SQLite file and
a real gpg holding the source project's published test keys; a representative file of each
category also goes through a running daemon over SMTP. The comparison of reply text ignores
trailing spaces and runs of blank lines; for a source whose own parser keeps quoted lines
(email_reply_trimmer), lines starting with ">" are ignored on both sides, as mailbot drops
every quoted line; for talon, whose parser keeps signatures, our text must start its text.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import unicodedata
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from mailbot.config import Config, load_config
from mailbot.intake.durable import Delivery, accept_many
from mailbot.mail.parse import parse
from mailbot.store import Store, one, open_store
from mailbot.store import inbound as inbound_q
from mailbot.triage.pipeline import Pipeline
from tests.support import CONFIG, FRIDAY_EVENING, Bot, MovingClock, Sink

_HERE = Path(__file__).resolve().parents[2]


def _corpus_dir() -> Path | None:
    """$MAILBOT_REAL_CORPUS, else shared/corpus/real beside the checkout, else in tests/."""
    for d in (os.environ.get("MAILBOT_REAL_CORPUS"), _HERE.parent / "shared/corpus/real",
              _HERE / "tests/corpus/real"):
        if d and (Path(d) / "MANIFEST.json").is_file():
            return Path(d)
    return None


CORPUS = _corpus_dir()
ENTRIES: list[dict[str, Any]] = (
    json.loads((CORPUS / "MANIFEST.json").read_text(encoding="utf-8")) if CORPUS else []
)
pytestmark = pytest.mark.skipif(
    CORPUS is None, reason="the real-mail corpus is not here (tests/corpus/real/README.md)")

# A signed post through a foreign mailing list: ignored as list mail until issue 21 lands.
ITEM_1 = frozenset({"deltachat-core-rust/mailinglist_with_mimepart_footer_signed.eml"})
# Known misses, each with why: they flip (strict xfail) when a rule learns them.
KNOWN = {
    "email_reply_trimmer/delimiters.txt": "a line of symbols is text to mailbot",
    "email_reply_trimmer/embedded_email_11.txt": "a date and a name without verb or colon",
    "email_reply_trimmer/embedded_email_12.txt": "an attribution broken by blank lines",
    "email_reply_trimmer/embedded_email_4.txt": "a date-and-address line over '|' quotes",
    "email_reply_trimmer/embedded_email_7.txt": "'C>' as the quote prefix",
    "email_reply_trimmer/forwarded_message.txt": "a forward with nothing above it is kept",
    "email-reply-parser/email_7.txt": "a quoted line wrapped after a blank line",
    "email-reply-parser/email_15.txt": "'Sent from my Wiko …': a device not on the list",
    "deltachat-core-rust/schleuder.eml": "only the first text part is the text",
    "deltachat-core-rust/attach_filename_encoded_words_bad_delimiter.eml":
        "an encoded word glued to '.bar' is decoded",
    "set-of-emails/lhost-kddi-01.eml": "a KDDI error notice: no-reply sender, no DSN part",
    "discourse/chinese_reply.eml": "UTF-8 bytes declared Big5: the declared charset is used",
    "discourse/text_reply.eml": "UTF-8 bytes without a charset: read as US-ASCII",
}
REPORTER = "researcher@example.net"


def _cases() -> list[Any]:
    out = []
    for e in ENTRIES:
        if e["category"] == "key":
            continue
        marks = []
        if e["file"] in ITEM_1:
            marks.append(pytest.mark.xfail(strict=True,
                                           reason="a foreign list post is ignored (issue 21)"))
        elif e["file"] in KNOWN:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN[e["file"]]))
        out.append(pytest.param(e, id=e["file"], marks=marks))
    return out


def wrapped(text: bytes, n: int) -> bytes:
    """A reply text from a parser's test suite, as the mail that would carry it."""
    head = (f"From: Rita Researcher <{REPORTER}>\r\nTo: security@example.org\r\n"
            f"Subject: Re: finding {n}\r\nMessage-ID: <corpus-{n}@example.net>\r\n"
            "Date: Fri, 18 Dec 2026 17:55:00 +0100\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
    return head.encode() + text


def raw_of(entry: dict[str, Any]) -> bytes:
    assert CORPUS is not None
    data = (CORPUS / entry["file"]).read_bytes()
    return wrapped(data, ENTRIES.index(entry)) if entry["format"] == "text" else data


def _norm(s: str, quotes_ignored: bool = False) -> str:
    lines = s.replace("\r\n", "\n").split("\n")
    if quotes_ignored:
        lines = [line for line in lines if not line.lstrip().startswith(">")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(line.rstrip() for line in lines)).strip()


def reply_matches(got: str, expect: dict[str, Any]) -> bool:
    """Our new text against what the source project's tests record."""
    if expect["mode"] == "parts":
        return (bool(got.strip()) and all(x in got for x in expect["contains"])
                and not any(x in got for x in expect["excludes"]))
    ignored = expect.get("quotes") == "ignored"
    ours, theirs = _norm(got, ignored), _norm(expect["new_text"], ignored)
    if expect["mode"] == "prefix":
        return bool(ours) and theirs.startswith(ours)
    return ours == theirs


def import_keys(config: Config) -> None:
    """The source project's published secret test keys, into the inbox's gpg home."""
    assert CORPUS is not None
    home = Path(config.gpg.home)
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    keys = [str(CORPUS / e["file"]) for e in ENTRIES if e["category"] == "key"]
    subprocess.run(["gpg", "--batch", "--homedir", str(home), "--import", *keys],
                   check=True, capture_output=True)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def pipeline(tmp_path_factory: pytest.TempPathFactory
                   ) -> AsyncIterator[tuple[Pipeline, Store]]:
    """One store and pipeline for the whole corpus: each file is its own inbound row and
    case, and setting them up per file would cost most of the run."""
    tmp = tmp_path_factory.mktemp("real")
    path = tmp / "mailbot.toml"
    path.write_text(CONFIG.format(db=tmp / "mailbot.db", sink_port=1, protocol="smtp",
                                  max_size="10MB"))
    config = load_config(path)
    import_keys(config)
    store = await open_store(config.storage)
    try:
        yield Pipeline.create(config, store, MovingClock(FRIDAY_EVENING)), store
    finally:
        await store.close()


def envelope_from(raw: bytes) -> str:
    """The sender an MTA would give: the From: address (never "<>", which alone would
    mark every bounce as machine mail)."""
    return parse(raw).from_addr or "sender@example.net"


async def outcome(store: Store, inbound_id: int) -> dict[str, Any]:
    """What the database holds for one inbound mail: its row, its message, its replies."""
    async with store.read() as db:
        row = await inbound_q.get(db, inbound_id)
        assert row is not None
        found = await one(
            db, "SELECT kind, subject, body, new_text, encrypted, readable, signature FROM"
            " messages WHERE inbound_id = ?", (inbound_id,))
        names = ("kind", "subject", "body", "new_text", "encrypted", "readable", "signature")
        message = dict(zip(names, found, strict=True)) if found else None
        if message:
            message["encrypted"], message["readable"] = (bool(message["encrypted"]),
                                                         bool(message["readable"]))
        # What this mail caused to be sent: its case's acknowledgement if it opened one,
        # and whatever names its inbound id (notifications, updates, transcripts).
        opened = message is not None and message["kind"] == "report"
        counted = await one(
            db, "SELECT count(*) FROM outbox WHERE (case_id = ? AND purpose LIKE 'ack:%' AND ?)"
            " OR purpose LIKE ? OR purpose LIKE ?",
            (row.case_id, opened, f"%:{inbound_id}", f"%:{inbound_id}:%"))
        queued = int(counted[0]) if counted else 0
    return {"status": row.status, "reason": row.reason, "case_id": row.case_id,
            "message": message, "queued": queued}


def check(entry: dict[str, Any], raw: bytes, got: dict[str, Any]) -> list[str]:
    """How the outcome differs from the recorded expectation (empty when it matches)."""
    expect, problems = entry["expect"], []
    message = got["message"]
    if got["status"] not in ("done", "ignored", "quarantined"):
        problems.append(f"left {got['status']}")
    if "machine" in expect:
        machine = got["status"] == "ignored" or (message is not None
                                                 and message["kind"] == "auto-reply")
        if machine != expect["machine"]:
            problems.append(f"machine mail: {machine}, recorded {expect['machine']} "
                            f"({got['reason']})")
        if expect["machine"] and got["queued"]:
            problems.append("a machine mail was answered")
    if entry["category"] == "reply":
        if message is None:
            return [*problems, f"no message on a case ({got['reason']})"]
        if not reply_matches(message["new_text"], expect):
            problems.append(f"new_text {message['new_text'][:300]!r}")
        if entry["format"] == "text":
            sent = raw.split(b"\r\n\r\n", 1)[1].decode("utf-8", "replace")
            if _norm(message["body"]) != _norm(sent):
                problems.append("the full text is not kept on the message")
    for field in ("encrypted", "readable"):
        if field in expect and (message is None or message[field] != expect[field]):
            problems.append(f"{field}: {message and message[field]}, recorded {expect[field]}")
    if "signed" in expect and (message is None or not message["signature"]):
        problems.append("no signature recorded")
    if "subject" in expect and (message is None or message["subject"] != expect["subject"]):
        problems.append(f"subject {message and message['subject']!r}")
    if "text_contains" in expect and (message is None
                                      or expect["text_contains"] not in message["body"]):
        problems.append(f"text lacks {expect['text_contains']!r}")
    if "attachment" in expect:
        # Compared as Unicode NFC without outer spaces, which one_line() trims.
        names = [unicodedata.normalize("NFC", a.filename or "") for a in parse(raw).attachments]
        if unicodedata.normalize("NFC", expect["attachment"].strip()) not in names:
            problems.append(f"attachments {names}")
    return problems


async def run_one(pipeline: Pipeline, store: Store, raw: bytes) -> dict[str, Any]:
    clock = MovingClock(FRIDAY_EVENING)
    delivery = Delivery(raw, "smtp", "security", ["security@example.org"],
                        mail_from=envelope_from(raw))
    accepted = (await accept_many(store, [delivery], clock))[0]
    async with store.read() as db:
        row = await inbound_q.get(db, accepted.inbound_id)
    assert row is not None
    await pipeline.process(row)
    return await outcome(store, accepted.inbound_id)


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("entry", _cases())
async def test_real_mail(entry: dict[str, Any], pipeline: tuple[Pipeline, Store]) -> None:
    """A real mail from another project's suite gives what that project's tests record."""
    raw = raw_of(entry)
    got = await run_one(*pipeline, raw)
    assert check(entry, raw, got) == []


def representative() -> list[dict[str, Any]]:
    """The first file of each category (PGP: one that passes today)."""
    chosen: dict[str, dict[str, Any]] = {}
    for e in ENTRIES:
        if e["category"] != "key" and e["file"] not in ITEM_1 | KNOWN.keys():
            chosen.setdefault(e["category"], e)
    return list(chosen.values())


@pytest.mark.slow
async def test_real_mail_through_the_daemon(bot: Bot, sink: Sink) -> None:
    """One real mail of each category sent over SMTP to the running daemon is stored and
    handled as the source project's tests record."""
    import_keys(bot.config)
    from tests.support import send

    sent: list[tuple[dict[str, Any], bytes]] = []
    for entry in representative():
        raw = raw_of(entry)
        await send(bot.port, raw, mail_from=envelope_from(raw), to=["security@example.org"])
        sent.append((entry, raw))
    store = await bot.open_store()
    async with asyncio.timeout(30):
        while True:
            async with store.read() as db:
                if "pending" not in await inbound_q.counts(db):
                    break
            await asyncio.sleep(0.05)
    problems = {}
    for n, (entry, raw) in enumerate(sent, start=1):
        got = await outcome(store, n)
        problems[entry["file"]] = check(entry, raw, got)
    assert {f: p for f, p in problems.items() if p} == {}
