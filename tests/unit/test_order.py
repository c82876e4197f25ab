"""The order rule across instances (triage/order.py): which claimed mails wait."""

from __future__ import annotations

from mailbot.store.inbound import InboundRow
from mailbot.triage.order import named, waiting


def row(i: int, headers: str, raw_of: int | None = None) -> InboundRow:
    raw = (headers.replace("\n", "\r\n") + "\r\nSubject: x\r\n\r\nbody\r\n").encode()
    return InboundRow(id=i, received_at="", source="smtp", mail_from="a@example.net",
                      rcpt_to=(), inbox="security", raw=raw, status="pending", reason=None,
                      case_id=None, raw_of=raw_of)


def test_named_reads_own_id_and_folded_references() -> None:
    """The Message-IDs of a header, References folded over lines included, own one first."""
    own, ids = named(row(1, "Message-ID: <f@x>\nIn-Reply-To: <r@x>\nReferences: <a@x>\n"
                            " <r@x>").raw)
    assert own == "<f@x>"
    assert ids == ("<f@x>", "<r@x>", "<a@x>")


def test_a_follow_up_waits_for_the_report_another_holds() -> None:
    """A mail answering a lower pending mail that is not ours waits; an unrelated one goes."""
    rows = [row(5, "Message-ID: <f@x>\nIn-Reply-To: <r@x>"), row(6, "Message-ID: <u@x>")]
    assert waiting(rows, [(3, "<r@x>")]) == {5}


def test_a_higher_mail_never_holds_a_lower_one() -> None:
    """Only mail that arrived before can hold a mail back."""
    assert waiting([row(5, "Message-ID: <f@x>\nIn-Reply-To: <r@x>")], [(9, "<r@x>")]) == set()


def test_a_second_copy_of_a_held_mail_waits() -> None:
    """A copy with the same Message-ID (another MX, other Received lines) waits for the first
    instead of opening a second case."""
    assert waiting([row(7, "Message-ID: <r@x>")], [(3, "<r@x>")]) == {7}


def test_what_answers_a_waiting_mail_waits_too_and_a_delivery_waits_whole() -> None:
    """A reply to a waiting mail, and the other inbox's row of a waiting delivery, wait."""
    rows = [row(5, "Message-ID: <f@x>\nIn-Reply-To: <r@x>"),
            row(6, "Message-ID: <f@x>\nIn-Reply-To: <r@x>", raw_of=5),
            row(8, "Message-ID: <g@x>\nReferences: <f@x>"),
            row(9, "Message-ID: <h@x>\nReferences: <zz@x>")]
    assert waiting(rows, [(3, "<r@x>")]) == {5, 6, 8}
