"""The order rule across instances: which claimed mails must wait for mail another holds.

One instance takes mail in arrival order, so a follow-up always finds the case its report
opened. Two instances work on different mails at once; a follow-up claimed by one while the
other still holds its report would open a second case. The rule: a claimed mail waits while
a lower-id pending mail that is not ours carries a Message-ID it names (its own: a second
copy of one mail; In-Reply-To, References: what it answers); so does a claimed mail naming
one that waits, and the rest of a waiting mail's delivery. Only related mail waits, so the
instances still work side by side on everything else. Mail related in no header (a second
report, a reply by case reference, which needs the case to exist anyway) is not held.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from mailbot.mail.parse import header_block
from mailbot.store.inbound import InboundRow

_FOLD = re.compile(rb"\r?\n[ \t]+")
_FIELD = re.compile(rb"^(message-id|in-reply-to|references):(.*)$", re.I | re.M)
_MSGID = re.compile(rb"<[^<>\s]{1,900}>")
NAMED_MAX = 200  # ids read per mail: the threading stage reads no more (auth.named_ids)


def named(raw: bytes) -> tuple[str | None, tuple[str, ...]]:
    """(its own Message-ID, every Message-ID its header names: its own, In-Reply-To,
    References), read cheaply from the header block before any parse."""
    block = _FOLD.sub(b" ", header_block(raw))
    own: str | None = None
    ids: list[str] = []
    for m in _FIELD.finditer(block):
        found = [i.decode("ascii", "replace") for i in _MSGID.findall(m.group(2))]
        if m.group(1).lower() == b"message-id" and found and own is None:
            own = found[0]
        ids += found
    return own, tuple(dict.fromkeys(ids))[:NAMED_MAX]


def waiting(rows: Sequence[InboundRow], earlier: Iterable[tuple[int, str]]) -> set[int]:
    """The ids of `rows` (a claimed batch) that must wait, given the (id, Message-ID) of the
    pending mail not ours below them. A delivery's rows wait or go together."""
    held = list(earlier)
    out: set[int] = set()
    for row in sorted(rows, key=lambda r: r.id):
        if row.delivery in out:
            out.add(row.id)
            continue
        own, ids = named(row.raw)
        wanted = set(ids)
        if any(i < row.delivery and mid in wanted for i, mid in held):
            out.update((row.id, row.delivery))
            if own is not None:  # what answers this one waits too
                held.append((row.id, own))
    return {r.id for r in rows if r.id in out}
