"""Mail that came through a mailing list or a group: whose it is, and whom it may answer.

`parse` marks list mail as machine mail (`machine.LIST_REASONS`); `resolve` decides:
- our own list (a List-Id in the inbox's `list_ids`, or a list whose posting address is
  one of the inbox's): mail to the inbox, a case answered like direct mail, at its poster;
- a post of another list that names the inbox in To: or Cc:: a report, opened or threaded
  and shown to staff, never answered automatically (`Via.quiet`);
- anything else from a list (a digest, a post we only receive as a member): ignored, with
  its reason (`mailbot inbound --ignored`).

A list that rewrites From: for DMARC ("Alice via security <security@…>") puts its own
address there; the poster is then only claimed (X-Original-From, X-Original-Sender,
Reply-To, or the one other address in Cc). A claim chooses whom a case is answered at,
never who speaks as staff (`auth.speaker` sees the claim as a plain sender): a claim
naming staff, one of our addresses or the list itself is not taken, and such a case is
quiet.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from mailbot.clock import iso
from mailbot.config import Config, InboxConfig
from mailbot.mail.machine import LIST_REASONS, SUBJECT_ONLY, is_auto_reply_subject
from mailbot.mail.parse import header_block, parse
from mailbot.models import ListFacts, ParsedMail
from mailbot.store import Db
from mailbot.store import cases as case_q
from mailbot.store import lists as lists_q


@dataclass(frozen=True, slots=True)
class Via:
    """The list a case's mail came through."""

    list_id: str
    ours: bool
    address: str | None  # the list's own address: never a reporter's
    quiet: bool  # nothing is sent automatically (another's list, or no poster to answer)
    why: str  # for staff: what the bot made of it


def resolve(mail: ParsedMail, inbox: InboxConfig, config: Config) -> tuple[ParsedMail, Via | None]:
    """The mail as the pipeline goes on with it (a list post: no longer machine mail, its
    poster as sender), and the list it came through (None: direct mail, or ignored)."""
    facts = mail.mailing_list
    if facts is None or mail.machine not in LIST_REASONS:
        return mail, None
    ours = facts.id in inbox.list_ids or facts.post_address in inbox.addresses
    if facts.digest:
        return replace(mail, machine=f"mailing list digest: {facts.id}"), None
    if not ours and not set(inbox.addresses) & {*mail.to, *mail.cc}:
        return replace(mail, machine=f"mailing list: {facts.id}, not addressed to the inbox"), None
    own = config.own_addresses()
    listed = _list_addresses(facts)
    machine = SUBJECT_ONLY if is_auto_reply_subject(mail.subject) else None
    mail = replace(mail, machine=machine)
    address = facts.post_address or (mail.from_addr if mail.from_addr in listed else None)
    kind = "our list" if ours else "another list"
    if not mail.from_problem and mail.from_addr not in own and mail.from_addr not in listed:
        quiet = not ours
        why = f"via {kind} {facts.id}" + ("" if ours else ": not answered automatically")
        return mail, Via(facts.id, ours, address, quiet, why)
    # From: is the list's own (the list rewrote it for DMARC), or no one address (then
    # `from_addr` is the envelope's, the list's bounce address). Whom to answer is a claim:
    # a list that sets Reply-To to itself puts the poster in Cc (Mailman 3), alone there.
    others = [a for a in mail.cc if a not in own and a not in listed]
    claims = (*facts.claims, *others[:1]) if len(others) == 1 else facts.claims
    poster = next((c for c in claims
                   if c not in own and c not in listed and not config.is_staff(c)), None)
    if poster is None:
        why = (f"via {kind} {facts.id}, which rewrote From: and names no poster we may "
               "answer: not answered automatically")
        return mail, Via(facts.id, ours, address or mail.from_addr, True, why)
    name = (mail.from_name.rsplit(" via ", 1)[0].strip().strip("'\"").strip()
            if " via " in mail.from_name else "")
    why = (f"via {kind} {facts.id}, which rewrote From:; the poster {poster} is as the "
           "list claims it" + ("" if ours else "; not answered automatically"))
    return (replace(mail, from_addr=poster, from_name=name),
            Via(facts.id, ours, address or mail.from_addr, not ours, why))


def _list_addresses(facts: ListFacts) -> set[str]:
    """The addresses a list posts from: its List-Post, and its List-Id read as an address
    (Google Groups: "security.example.org" is security@example.org)."""
    found = {facts.post_address} if facts.post_address else set()
    local, dot, domain = facts.id.partition(".")
    if dot and "." in domain:
        found.add(f"{local}@{domain}")
    return found


def noted(reason: str | None, via: Via | None) -> str | None:
    """A mail's reason on its case, with the list it came through."""
    return "; ".join(r for r in (reason, via.why if via else None) if r) or None


async def record(db: Db, case_id: int, via: Via, actor: str, now: datetime) -> list[str]:
    """The case is marked as reached through the list; what staff are told of it."""
    await lists_q.remember(db, case_id, via.list_id, via.address, ours=via.ours)
    await case_q.add_event(db, case_id, at=iso(now), actor=actor, action="via list",
                           new=via.list_id, detail=via.why)
    return [f"Came {via.why}."]


async def unanswerable(db: Db, config: Config, case_id: int, reporter: str) -> str | None:
    """Why mail for the reporter must not go to `reporter` (None: it may): an address of
    ours, or that of a list the case came through."""
    address = reporter.lower()
    if address in config.own_addresses() or address in await lists_q.addresses(db, case_id):
        return (f"NOT sent to {address}: it is a mailing list's address, not the "
                "reporter's; answer them by hand")
    return None


def unconfigured(heads: Sequence[bytes], inbox: InboxConfig) -> str | None:
    """A warning when most of an inbox's recent mail came through a list that is not one
    of its own: the bot was made a member of a group nobody configured, and that group's
    posts are ignored (unless they name the inbox) instead of answered."""
    seen: Counter[str] = Counter()
    for head in heads:
        facts = parse(header_block(head) + b"\r\n\r\n").mailing_list
        if (facts is not None and facts.id not in inbox.list_ids
                and facts.post_address not in inbox.addresses):
            seen[facts.id] += 1
    if len(heads) < 3 or not seen:
        return None
    list_id, n = seen.most_common(1)[0]
    if 2 * n <= len(heads):
        return None
    return (f"{n} of the last {len(heads)} mails came through the list {list_id}, which is "
            f"not in inbox.list_ids: if it is our own group, add list_ids = [\"{list_id}\"] "
            "to the inbox; otherwise its posts open a case only when they name the inbox")
