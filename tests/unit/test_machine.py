"""Auto-replies without RFC 3834 headers: provider markers, subject prefixes, and the rule
that a subject alone never drops a mail (pipeline over a real SQLite file)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailbot.config import load_config
from mailbot.intake.durable import Delivery, accept_many
from mailbot.mail.machine import SUBJECT_ONLY, is_auto_reply_subject, subject_only
from mailbot.mail.parse import parse
from mailbot.store import Store, open_store
from mailbot.store import inbound as inbound_q
from mailbot.triage.pipeline import Pipeline
from tests.support import CONFIG, FRIDAY_EVENING, MovingClock


def mail(subject: str = "Re: XSS in /search", sender: str = "rita@example.net",
         message_id: str = "<m@example.net>", **headers: str) -> bytes:
    extra = "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in headers.items())
    return (f"From: Rita <{sender}>\r\nTo: security@example.org\r\nSubject: {subject}\r\n"
            f"Message-ID: {message_id}\r\nDate: Fri, 18 Dec 2026 17:55:00 +0100\r\n{extra}"
            "Content-Type: text/plain; charset=utf-8\r\n\r\nI am away until Monday.\r\n"
            ).encode()


MARKERS = {
    "icloud": ({"X_Apple_Action": "VACATION"}, "out of office (x-apple-action: vacation)"),
    "yahoo/proton": ({"X_Autoreply": "yes"}, "out of office (x-autoreply)"),
    "autorespond": ({"X_Autorespond": "Vacation"}, "out of office (x-autorespond)"),
    "plugin": ({"X_Autoresponder": "on"}, "out of office (x-autoresponder)"),
    "zoho-style name": ({"X_Zoho_Autoreply": "true"}, "out of office (x-zoho-autoreply)"),
    "exchange": ({"X_MS_Exchange_Organization_AutoReply": "Yes"},
                 "out of office (x-ms-exchange-organization-autoreply)"),
    "vacation program": ({"X_Mailer": "vacation 1.2.7"}, "out of office (x-mailer)"),
    "precedence auto_reply": ({"Precedence": "auto_reply"}, "out of office (precedence)"),
    "outlook subject and suppress": (
        {"X_Auto_Response_Suppress": "All", "subject": "Automatic reply: XSS"},
        "out of office (subject)"),
    "rfc 3834 still first": ({"Auto_Submitted": "auto-replied", "X_Autoreply": "yes"},
                             "auto-submitted: auto-replied"),
}


@pytest.mark.parametrize(("headers", "reason"), MARKERS.values(), ids=MARKERS.keys())
def test_provider_markers(headers: dict[str, str], reason: str) -> None:
    """Each provider's own auto-reply marker makes the mail a machine reply."""
    headers = dict(headers)
    subject = headers.pop("subject", "Re: XSS in /search")
    assert parse(mail(subject, **headers)).machine == reason


NOT_MARKERS = {
    "suppress alone": {"X_Auto_Response_Suppress": "All"},
    "x-autoreply: no": {"X_Autoreply": "no"},
    "an ordinary mailer": {"X_Mailer": "Apple Mail (2.3731)"},
}


@pytest.mark.parametrize("headers", NOT_MARKERS.values(), ids=NOT_MARKERS.keys())
def test_not_markers(headers: dict[str, str]) -> None:
    """Headers that ask for no auto-reply, or say "no", mark nothing: an attacker's
    Outlook-sent report is still a report."""
    assert parse(mail(**headers)).machine is None


SUBJECTS = [
    "Automatic reply: XSS in /search", "Auto reply: Nyaan", "Out of Office: back Monday",
    "Automatisch antwoord: XSS", "Afwezig: tot maandag", "Abwesenheitsnotiz: XSS",
    "Automatische Antwort: XSS", "Réponse automatique : XSS", "Absence : XSS",
    "Respuesta automática: XSS", "Risposta automatica: XSS", "Resposta automática: XSS",
    "Autosvar: XSS", "Automatyczna odpowiedź: XSS", "Автоответ: XSS", "自动回复: XSS",
    "RE: [SEC-2026-0001] Out of office", "Out of Office",
]


@pytest.mark.parametrize("subject", SUBJECTS)
def test_subject_prefixes(subject: str) -> None:
    """The out-of-office subjects of the clients, in their languages, are recognised."""
    assert is_auto_reply_subject(subject)
    assert parse(mail(subject)).machine == SUBJECT_ONLY


@pytest.mark.parametrize("subject", [
    "Absence of CSRF token in /login", "Away-team takeover via OAuth", "XSS: auto reply form",
    "Out of office hours the admin panel is open", "Re: XSS in /search",
])
def test_subjects_that_are_reports(subject: str) -> None:
    """Reports whose subjects merely contain such words are people's mail."""
    assert not is_auto_reply_subject(subject)
    assert parse(mail(subject)).machine is None


@pytest.fixture
async def pipeline(tmp_path: Path) -> AsyncIterator[tuple[Pipeline, Store]]:
    path = tmp_path / "mailbot.toml"
    path.write_text(CONFIG.format(db=tmp_path / "mailbot.db", sink_port=1, protocol="smtp",
                                  max_size="1MB"))
    config = load_config(path)
    store = await open_store(config.storage)
    try:
        yield Pipeline.create(config, store, MovingClock(FRIDAY_EVENING)), store
    finally:
        await store.close()


async def deliver(p: tuple[Pipeline, Store], raw: bytes, mail_from: str) -> dict[str, object]:
    """Intake's durable insert, then the pipeline; the row and what was queued for it."""
    pipeline, store = p
    accepted = (await accept_many(store, [Delivery(raw, "smtp", "security",
                                                   ["security@example.org"],
                                                   mail_from=mail_from)],
                                  MovingClock(FRIDAY_EVENING)))[0]
    async with store.read() as db:
        row = await inbound_q.get(db, accepted.inbound_id)
    assert row is not None
    await pipeline.process(row)
    async with store.read() as db:
        row = await inbound_q.get(db, accepted.inbound_id)
        assert row is not None
        kinds = await db.execute_fetchall(
            "SELECT kind FROM messages WHERE inbound_id = ?", (row.id,))
        out = await db.execute_fetchall("SELECT purpose FROM outbox ORDER BY id")
        state = await db.execute_fetchall("SELECT state FROM cases ORDER BY id")
    return {"status": row.status, "case": row.case_id, "kind": [k[0] for k in kinds],
            "outbox": [o[0] for o in out], "states": [s[0] for s in state]}


async def test_subject_only_from_the_reporter_stays_on_the_case(
        pipeline: tuple[Pipeline, Store]) -> None:
    """An "Automatic reply:" with no marker header from the reporter, answering our mail,
    is kept on the case as a machine reply: never answered, the case's state unchanged."""
    first = await deliver(pipeline, mail("XSS in /search", message_id="<r@example.net>"),
                          "rita@example.net")
    reply = mail("Automatic reply: XSS in /search", message_id="<ooo@example.net>",
                 In_Reply_To="<r@example.net>")
    got = await deliver(pipeline, reply, "rita@example.net")
    assert got["case"] == first["case"] and got["kind"] == ["auto-reply"]
    assert got["outbox"] == first["outbox"]  # nothing new queued: no ack, no notification
    assert got["states"] == first["states"]


async def test_subject_only_from_a_stranger_is_a_report(
        pipeline: tuple[Pipeline, Store]) -> None:
    """The same subject on a new mail opens a case and is acknowledged: an attacker (or a
    researcher titling a finding "Absence: …") cannot get a report dropped by its subject."""
    got = await deliver(pipeline, mail("Out of Office: token leak in /export",
                                       sender="mallory@example.net"), "mallory@example.net")
    assert got["status"] == "done" and got["kind"] == ["report"] and got["outbox"]


async def test_subject_only_from_someone_else_on_a_case_is_shown_to_staff(
        pipeline: tuple[Pipeline, Store]) -> None:
    """An "Out of office" subject from someone who is not the reporter, on a known case, is
    handled as that person's mail (shown to staff), not hidden as a machine reply."""
    first = await deliver(pipeline, mail("XSS in /search", message_id="<r@example.net>"),
                          "rita@example.net")
    _, store = pipeline
    async with store.read() as db:
        rows = list(await db.execute_fetchall("SELECT ref FROM cases WHERE id = ?",
                                              (first["case"],)))
    ref = rows[0][0]
    got = await deliver(pipeline, mail(f"Out of office: [{ref}] XSS", sender="eve@example.net",
                                       message_id="<o2@example.net>"), "eve@example.net")
    assert got["case"] == first["case"] and got["kind"] == ["stranger"]


async def test_icloud_marker_without_a_case_is_recorded_not_answered(
        pipeline: tuple[Pipeline, Store]) -> None:
    """An iCloud vacation reply (X-Apple-Action only) on no case is kept as ignored and
    nothing is queued for it."""
    got = await deliver(pipeline, mail("Auto reply: Nyaan", X_Apple_Action="VACATION"),
                        "kiji@icloud.example")
    assert got["status"] == "ignored" and got["outbox"] == []


@pytest.mark.parametrize(("machine", "envelope", "sender", "reporter", "expected"), [
    (SUBJECT_ONLY, "rita@example.net", "rita@example.net", "Rita@example.net", SUBJECT_ONLY),
    (SUBJECT_ONLY, "eve@example.net", "eve@example.net", "rita@example.net", None),
    (SUBJECT_ONLY, "eve@example.net", "eve@example.net", None, None),
    (SUBJECT_ONLY, "", "eve@example.net", None, "empty return path"),
    (SUBJECT_ONLY, "x@example.net", "", None, SUBJECT_ONLY),
    ("out of office (x-autoreply)", "eve@example.net", "eve@example.net", None,
     "out of office (x-autoreply)"),
    (None, "eve@example.net", "eve@example.net", "eve@example.net", None),
])
def test_subject_only_once_the_case_is_known(machine: str | None, envelope: str, sender: str,
                                             reporter: str | None,
                                             expected: str | None) -> None:
    """A subject alone stays machine mail only from the case's reporter (or with no sender
    to answer); a null envelope makes it machine mail; a marker header always is."""
    assert subject_only(machine, envelope, sender, reporter) == expected
