"""Apply a staff mail's commands to its case: checked against the case, then all applied.

Parsing (commands.py) catches what is wrong with a line on its own; `check` catches what
is wrong for this case (a closed case cannot change status, a duplicate must name another
case of the inbox). Only when both find nothing is anything changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from mailbot.clock import iso
from mailbot.errors import CommandError
from mailbot.models import CaseState
from mailbot.sla import BusinessCalendar, Duration, Unit
from mailbot.store import Db
from mailbot.store import cases as case_q
from mailbot.triage.commands import Command, Parsed

# What the reporter is told of (SPEC: accepted, expected date, resolved, rejected, duplicate).
REPORTER_STATES = frozenset({"accepted", "resolved", "rejected", "duplicate"})
_CLOSED = frozenset({CaseState.RESOLVED, CaseState.REJECTED, CaseState.DUPLICATE,
                     CaseState.CLOSED})


@dataclass
class Applied:
    """What a command mail did: lines for the transcript, and what the reporter hears."""

    done: list[str] = field(default_factory=list)
    reporter_news: list[tuple[str, str]] = field(default_factory=list)  # (what, value)
    reply_text: str | None = None


async def check(db: Db, case: Mapping[str, Any], parsed: Parsed) -> list[CommandError]:
    """Problems of these commands for this case; empty when all can be applied."""
    errors: list[CommandError] = []
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
    calendar: BusinessCalendar,
) -> Applied:
    """Apply every command; the caller has run `check` and holds the transaction."""
    zone = calendar.timezone.key
    result = Applied()
    fields: dict[str, Any] = {}
    case_id = int(case["id"])

    async def change(c: Command, column: str, new: Any, action: str | None = None) -> None:
        old = case[column]
        fields[column] = new
        await case_q.add_event(db, case_id, at=iso(at), actor=actor, action=action or c.name,
                               old=None if old is None else str(old),
                               new=None if new is None else str(new))
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
                await change(c, "state", CaseState.CLOSED.value)
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
