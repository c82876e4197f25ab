"""Apply a staff mail's commands to its case: checked against the case, then all applied.

Parsing (commands.py) catches what is wrong with a line on its own; `check` catches what
is wrong for this case (a closed case cannot change status, a duplicate must name another
case of the inbox). Only when both find nothing is anything changed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from mailbot.clock import iso
from mailbot.config import PolicyConfig
from mailbot.errors import CommandError
from mailbot.models import CaseState
from mailbot.sla import BusinessCalendar, Duration, Unit, deadlines
from mailbot.store import Db
from mailbot.store import cases as case_q
from mailbot.triage import forward
from mailbot.triage.commands import Command, Parsed

# What the reporter is told of (SPEC: accepted, expected date, resolved, rejected, duplicate).
REPORTER_STATES = frozenset({"accepted", "resolved", "rejected", "duplicate"})
_CLOSED = frozenset({CaseState.RESOLVED, CaseState.REJECTED, CaseState.DUPLICATE,
                     CaseState.CLOSED})
_OLDEST_ORIGINAL = timedelta(days=366)  # an original-date further back is a typo or a trick


@dataclass
class Applied:
    """What a command mail did: lines for the transcript, and what the reporter hears."""

    done: list[str] = field(default_factory=list)
    reporter_news: list[tuple[str, str]] = field(default_factory=list)  # (what, value)
    reply_text: str | None = None
    new_reporter: str | None = None  # #open-for: the acknowledgement goes to them
    original: forward.Original | None = None  # the forwarded report #open-for found


async def check(db: Db, case: Mapping[str, Any], parsed: Parsed, *, actor: str = "",
                at: datetime | None = None) -> list[CommandError]:
    """Problems of these commands for this case, sent by `actor` at `at`; empty when all
    can be applied."""
    errors: list[CommandError] = []
    for c in parsed.commands:
        if c.name == "open-for":
            why = await _open_for_problem(db, case, c, actor, at)
            if why:
                errors.append(CommandError(c.line, why))
    state = CaseState(case["state"])
    names = {c.name for c in parsed.commands}
    for c in parsed.commands:
        if c.name in ("status", "duplicate", "close") and state in _CLOSED:
            errors.append(CommandError(c.line, f"the case is {state}; #reopen it first"))
        elif c.name == "status" and c.value == state:
            errors.append(CommandError(c.line, f"the case is already {state}"))
        elif c.name == "reopen" and state not in _CLOSED:
            errors.append(CommandError(c.line, f"the case is {state}, not closed"))
        elif c.name == "duplicate":
            other = await case_q.get(db, str(c.value))
            if other is None or other["inbox"] != case["inbox"]:
                errors.append(CommandError(c.line, f"no case {c.value} in this inbox"))
            elif other["id"] == case["id"]:
                errors.append(CommandError(c.line, "a case cannot duplicate itself"))
    if len(names & {"status", "duplicate", "close", "reopen"}) > 1:
        line = min(c.line for c in parsed.commands
                   if c.name in {"status", "duplicate", "close", "reopen"})
        errors.append(CommandError(line, "only one of #status, #duplicate, #close, #reopen"))
    return errors


async def forwarded(db: Db, case: Mapping[str, Any]) -> forward.Original | None:
    """The report forwarded in the mail that opened the case, if it holds one."""
    rows = list(await db.execute_fetchall(
        "SELECT i.raw, m.body FROM messages m JOIN inbound i ON i.id = m.inbound_id"
        " WHERE m.case_id = ? AND m.direction = 'in' ORDER BY m.id LIMIT 1", (case["id"],)))
    if not rows:
        return None
    raw, body = rows[0]
    return forward.original(bytes(raw), str(body))


async def _open_for_problem(db: Db, case: Mapping[str, Any], c: Command, actor: str,
                            at: datetime | None) -> str | None:
    """Why #open-for cannot re-address this case. Only the staff member whose forward
    opened the case may: so a staff command can never take a researcher's case away."""
    if not actor or str(case["reporter"]).lower() != actor.lower():
        return ("#open-for names the reporter of a case you opened by forwarding a report; "
                f"this case's reporter is {case['reporter']}")
    if c.value == actor.lower():
        return "#open-for needs the original sender's address, not yours"
    if not c.flag:
        return None
    original = await forwarded(db, case)
    if original is None or original.date is None:
        return ("no forwarded message with a readable date in the mail that opened the case: "
                "leave out 'original-date'")
    now = at or datetime.now(original.date.tzinfo)
    if original.date > now or now - original.date > _OLDEST_ORIGINAL:
        return f"the forwarded message is dated {iso(original.date)}: not within the last year"
    return None


def resume(case: Mapping[str, Any], calendar: BusinessCalendar, at: datetime) -> dict[str, Any]:
    """Leaving needs-info: the clocks resume, each open deadline moved by the business days
    the case waited on the reporter."""
    fields: dict[str, Any] = {"paused_at": None, "paused_from": None, "next_escalation_at": None}
    if not case["paused_at"]:
        return fields
    waited = calendar.business_days_between(datetime.fromisoformat(case["paused_at"]), at)
    if waited:
        later = Duration(waited, Unit.BUSINESS_DAYS)
        if case["first_response_due"] and not case["first_responded_at"]:
            fields["first_response_due"] = iso(calendar.add(
                datetime.fromisoformat(case["first_response_due"]), later))
        if case["resolution_due"]:
            fields["resolution_due"] = iso(calendar.add(
                datetime.fromisoformat(case["resolution_due"]), later))
    return fields


async def apply(
    db: Db, case: Mapping[str, Any], parsed: Parsed, *, actor: str, at: datetime,
    calendar: BusinessCalendar, policy: PolicyConfig | None = None,
) -> Applied:
    """Apply every command; the caller has run `check` and holds the transaction."""
    zone = calendar.timezone.key
    result = Applied()
    fields: dict[str, Any] = {}
    case_id = int(case["id"])

    async def change(c: Command, column: str, new: Any, action: str | None = None,
                     detail: str | None = None) -> None:
        old = case[column]
        fields[column] = new
        await case_q.add_event(db, case_id, at=iso(at), actor=actor, action=action or c.name,
                               old=None if old is None else str(old),
                               new=None if new is None else str(new), detail=detail)
        result.done.append(f"line {c.line}: #{c.name} {c.value or ''}".rstrip()
                           + f": {old or '-'} -> {new or '-'}")

    for c in parsed.commands:
        match c.name:
            case "status":
                await change(c, "state", c.value)
                if c.value in ("resolved", "rejected"):
                    fields["resolved_at"] = iso(at)
                if c.value in REPORTER_STATES:
                    result.reporter_news.append(("status", str(c.value)))
            case "duplicate":
                await change(c, "state", CaseState.DUPLICATE.value)
                fields["duplicate_of"] = c.value
                fields["resolved_at"] = iso(at)
                result.reporter_news.append(("status", "duplicate"))
            case "close":
                # The reason is kept: the compliance report counts closes by it (out of scope).
                await change(c, "state", CaseState.CLOSED.value, detail=str(c.value or ""))
                fields["resolved_at"] = iso(at)
                result.done[-1] += f" ({c.value})"
            case "reopen":
                await change(c, "state", CaseState.TRIAGED.value)
                fields["resolved_at"] = None
            case "severity":
                await change(c, "severity", c.value)
                if c.vector:
                    fields["cvss_vector"] = c.vector
                    result.done[-1] += f" (CVSS {c.score})"
            case "assign":
                await change(c, "assignee", c.value)
            case "due":
                due = datetime.combine(date.fromisoformat(str(c.value)), time(23, 59, 59),
                                       tzinfo=ZoneInfo(zone))
                await change(c, "resolution_due", iso(due))
                result.reporter_news.append(("due", str(c.value)))
            case "credit" | "cve" | "bounty":
                await change(c, c.name, c.value)
            case "disclose":  # the proposal and the consent: policy_commands.after
                if c.value == "public":
                    result.done.append(f"line {c.line}: #disclose public: the case is public "
                                       "(the hall of fame lists its credit)")
                else:
                    await change(c, "disclose_on", str(c.value).split(" ")[0])
            case "template":  # the text itself is rendered by canned.compose
                await case_q.add_event(db, case_id, at=iso(at), actor=actor, action="template",
                                       new=c.value)
                result.done.append(f"line {c.line}: #template {c.value}: the canned reply "
                                   f"({case['language']}) was sent to the reporter")
            case "reply":
                result.reply_text = parsed.text
                result.done.append(f"line {c.line}: #reply: the text below was sent to the "
                                   "reporter")
            case "note":
                result.done.append(f"line {c.line}: #note: the text below is an internal note")
            case "open-for":
                await _open_for(db, case, c, result, fields, change, calendar, policy)
    new_state = fields.get("state")
    if new_state == CaseState.NEEDS_INFO and case["state"] != CaseState.NEEDS_INFO:
        fields |= {"paused_at": iso(at), "paused_from": case["state"]}
    elif new_state and case["state"] == CaseState.NEEDS_INFO:
        moved = resume(case, calendar, at)
        if "resolution_due" in fields:  # a #due in the same mail is the new date as given
            moved.pop("resolution_due", None)
        fields |= moved
    if result.reply_text or result.reporter_news:
        fields["last_reporter_update_at"] = iso(at)
        fields["next_escalation_at"] = None  # the update cadence starts again
        if not case["first_responded_at"]:
            # The first staff word that reaches the reporter keeps the first-response promise.
            fields["first_responded_at"] = iso(at)
    if fields.keys() & {"state", "resolution_due", "first_responded_at"}:
        fields["next_escalation_at"] = None  # the escalation sweep computes it anew
    if fields:
        fields["updated_at"] = iso(at)
        await case_q.update(db, case_id, fields)
    return result


async def _open_for(
    db: Db, case: Mapping[str, Any], c: Command, result: Applied, fields: dict[str, Any],
    change: Callable[..., Awaitable[None]], calendar: BusinessCalendar,
    policy: PolicyConfig | None,
) -> None:
    """The case becomes the original sender's: they get the acknowledgement; with
    original-date its deadlines count from the forwarded message's Date:."""
    original = await forwarded(db, case)
    await change(c, "reporter", c.value)
    same = original is not None and original.sender == c.value
    fields["reporter_name"] = original.sender_name or None if original and same else None
    result.new_reporter, result.original = str(c.value), original
    if original is not None and not same:
        result.done[-1] += f" (the forwarded message is from {original.sender})"
    if c.flag and original is not None and original.date is not None and policy is not None:
        due = deadlines(calendar, original.date, policy.first_response, policy.resolution)
        await change(c, "first_response_due", iso(due.first_response_due), "receipt time")
        await change(c, "resolution_due", iso(due.resolution_due), "receipt time")
