"""The staff commands the policy fills in: `#template`, `#bounty` without an amount, `#credit`
as the reporter chose, and `#disclose` by mutual consent (issue 17).

Two seams in the pipeline's staff mail: `prepare` before anything is applied (fills in
values, finds what is wrong for this case), `after` once the commands are applied (the
canned reply and the disclosure proposal to the reporter, the consent recorded). And one
on the reporter's own mail: `on_reporter_mail` records their agreement line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from mailbot.clock import iso
from mailbot.config import PolicyConfig
from mailbot.errors import CommandError
from mailbot.mail.quotes import new_text
from mailbot.mail.render import Templates
from mailbot.models import ParsedMail
from mailbot.store import Db
from mailbot.store import cases as case_q
from mailbot.store import disclosures as disc_q
from mailbot.triage import canned
from mailbot.triage.actions import Applied
from mailbot.triage.commands import Command, Parsed

# A reporter's consent: a line that says only this, optionally with the proposed date
# ("agree", "I agree", "agreed", "akkoord", "ik ga akkoord", "akkoord 2027-01-31").
AGREEMENT = re.compile(
    r"(?:i\s+|ik\s+ga\s+)?(?:agreed?|akkoord)(?:\s*[:,]?\s*(\d{4}-\d{2}-\d{2}))?\s*[.!]?",
    re.IGNORECASE)


def _first(parsed: Parsed, name: str) -> Command | None:
    return next((c for c in parsed.commands if c.name == name), None)


async def prepare(db: Db, case: Mapping[str, Any], parsed: Parsed, policy: PolicyConfig,
                  at: datetime) -> tuple[Parsed, list[CommandError]]:
    """The commands with the policy's values filled in, and what is wrong for this case."""
    errors: list[CommandError] = []
    filled: list[Command] = []
    today = at.astimezone(ZoneInfo(policy.timezone)).date().isoformat()
    severity = next((str(c.value) for c in parsed.commands if c.name == "severity"),
                    case["severity"])
    for c in parsed.commands:
        if c.name == "bounty" and c.value is None:
            reward = policy.scope.rewards.get(severity or "")
            if not severity:
                errors.append(CommandError(c.line, "#bounty without an amount takes the "
                                           "policy's reward for the severity: set #severity"))
            elif not reward:
                errors.append(CommandError(c.line, f"the policy names no reward for "
                                           f"{severity}; give an amount"))
            else:
                c = replace(c, value=reward)
        elif c.name == "credit" and "@" in str(c.value):
            errors.append(CommandError(c.line, "#credit names a person (NAME, pseudonym "
                                       "NAME or anonymous), never an address"))
        elif c.name == "credit" and str(c.value).lower().strip() == "pseudonym":
            errors.append(CommandError(c.line, "#credit pseudonym needs the pseudonym"))
        elif (c.name == "disclose" and c.value != "public"
              and str(c.value).split(" ")[0] < today):
            errors.append(CommandError(c.line, f"{str(c.value).split(' ')[0]} has passed"))
        filled.append(c)
    parsed = replace(parsed, commands=tuple(filled))
    if not errors:
        errors += await canned.check(db, case, parsed, policy)
    return parsed, errors


async def after(db: Db, templates: Templates, case: Mapping[str, Any], parsed: Parsed,
                policy: PolicyConfig, applied: Applied, *, actor: str, at: datetime) -> None:
    """What the applied commands send to the reporter and record, added to `applied`."""
    texts: list[str] = []
    canned_text = await canned.compose(db, templates, case, parsed, policy)
    if canned_text:
        texts.append(canned_text)  # a #reply text is inside it
    elif applied.reply_text:
        texts.append(applied.reply_text)
    c = _first(parsed, "disclose")
    case_id = int(case["id"])
    if c is not None and c.value == "public":
        await disc_q.make_public(db, case_id, at=iso(at), by=actor)
        await case_q.add_event(db, case_id, at=iso(at), actor=actor,
                               action="disclosure public")
    elif c is not None:
        day, _, agreed = str(c.value).partition(" ")
        await disc_q.propose(db, case_id, day, at=iso(at), by=actor, agreed=bool(agreed))
        await case_q.add_event(db, case_id, at=iso(at), actor=actor, new=day,
                               action="disclosure agreed" if agreed else "disclosure proposed")
        noon = datetime.combine(date.fromisoformat(day), time(12), ZoneInfo(policy.timezone))
        texts.append(templates.render("disclose-proposal", case["language"], agreed=bool(agreed),
                                      day=noon, day_iso=day, zone=policy.timezone).strip())
        applied.done.append(f"line {c.line}: #disclose {day}: "
                            + ("consent recorded; the reporter is told" if agreed else
                               "proposed to the reporter, who is asked to agree"))
    if texts:
        applied.reply_text = "\n\n".join(texts)


def agreement(text: str) -> tuple[str, str | None] | None:
    """The reporter's agreement line of a reply's new text and the date on it, if any."""
    for line in new_text(text).splitlines():
        m = AGREEMENT.fullmatch(line.strip())
        if m:
            return line.strip(), m.group(1)
    return None


async def on_reporter_mail(db: Db, case: Mapping[str, Any], mail: ParsedMail,
                           at: datetime) -> list[str]:
    """Record the reporter's consent to a proposed date; the notification's remark."""
    case_id = int(case["id"])
    d = await disc_q.get(db, case_id)
    if d is None or not d["proposed_on"] or d["agreed_at"]:
        return []
    found = agreement(mail.text)
    if found is None:
        return []
    line, day = found
    if day and day != d["proposed_on"]:
        return [f"Disclosure: the reporter answered '{line[:60]}', another date than the "
                f"proposed {d['proposed_on']}: no consent recorded."]
    await disc_q.agree(db, case_id, at=iso(at), by=str(case["reporter"]))
    await case_q.add_event(db, case_id, at=iso(at), actor=str(case["reporter"]),
                           action="disclosure agreed", new=d["proposed_on"])
    return [f"Disclosure: the reporter AGREED to publication on {d['proposed_on']} "
            f"(their line: '{line[:60]}'). Reminders follow 7 and 1 days before."]
