"""Values that flow between the stages: frozen dataclasses and enums."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

# The headers the bot reads to decide where a mail belongs and who sent it: a staff proof
# holds only when each occurs at most once and the proof covers it (triage/auth.py).
USED_HEADERS = ("from", "date", "subject", "message-id", "in-reply-to", "references", "to",
                "cc")


class CaseState(StrEnum):
    NEW = "new"
    TRIAGED = "triaged"
    NEEDS_INFO = "needs-info"
    ACCEPTED = "accepted"
    FIXING = "fixing"
    RESOLVED = "resolved"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"
    CLOSED = "closed"


class InboundStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    IGNORED = "ignored"
    QUARANTINED = "quarantined"


class Disposition(StrEnum):
    """What the pipeline decided to do with one mail."""

    IGNORE = "ignore"  # machine mail that belongs to no case: recorded only
    OPEN = "open"  # a new case
    APPEND = "append"  # a follow-up on an existing case
    QUARANTINE = "quarantine"


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str | None
    content_type: str
    data: bytes
    # Its decoded size when `data` does not hold it whole (not kept: over the bytes a mail
    # may keep in memory); None when `data` is the whole attachment.
    size: int | None = None

    @property
    def whole(self) -> bool:
        return self.size is None

    @property
    def length(self) -> int:
        """Its decoded size in the mail, kept or not."""
        return len(self.data) if self.size is None else self.size


@dataclass(frozen=True, slots=True)
class ListFacts:
    """What a mailing list's headers say of it (mail/machine.py `list_facts`)."""

    id: str  # List-Id's <id>, else the list's posting address, else "unknown"
    post_address: str | None  # List-Post's mailto: address, the list's own
    digest: bool  # a digest of posts (multipart/digest, "Digest, Vol 3, Issue 2")
    # Who posted it, as the list server claims when it rewrote From: for DMARC
    # ("Alice via security <security@...>"): X-Original-From, X-Original-Sender, Reply-To.
    # Claims: they choose whom a case is answered at, never who is staff (triage/lists.py).
    claims: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ParsedMail:
    """One mail as the pipeline sees it. Every text field is already decoded."""

    message_id: str | None  # with angle brackets, as in the header
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    subject: str  # single line: CR/LF and control characters removed
    from_addr: str  # bare, lower-cased address, "" when there is none
    from_name: str
    reply_to: str | None
    to: tuple[str, ...]
    cc: tuple[str, ...]
    date: datetime | None  # aware; None when missing or unparseable
    language: str | None  # Content-Language, when the sender gave one
    text: str  # the best plain-text rendering of the body
    html: str | None
    attachments: tuple[Attachment, ...]
    machine: str | None  # why this mail is machine-made (never answered), None for a human
    defects: tuple[str, ...] = field(default=())
    # Why From: is not exactly one plain address (parse then leaves `from_addr` "", and the
    # pipeline puts the envelope sender there); None when it is.
    from_problem: str | None = None
    # Every occurrence of the headers the bot reads (USED_HEADERS), as (lower-cased name,
    # raw value): staff proofs hold only when each occurs once and is the one proven.
    headers: tuple[tuple[str, str], ...] = field(default=())
    # The mailing list it came through, when list headers say so (None: direct mail).
    mailing_list: ListFacts | None = None
