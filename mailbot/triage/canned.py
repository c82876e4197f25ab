"""Canned replies: `#template NAME [CLASS|REF]` sends templates/replies/NAME.<lang>.txt to
the reporter, filled from the case, the policy and the stored assessment. With `#reply`
in the same mail the text below the commands goes into the canned reply; without it that
text stays an internal note, as always.

The templates are files of ours rendered in jinja2's sandbox; what comes from mail (the
staff text below the commands, the reporter's hosts) is only ever a value in them.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from jinja2 import TemplateError

from mailbot.config import PolicyConfig
from mailbot.errors import CommandError
from mailbot.mail.render import LANGUAGES, Templates
from mailbot.resources import templates_dir
from mailbot.store import Db
from mailbot.store import assessments as assess_q
from mailbot.triage.commands import Command, Parsed

DIRECTORY = "replies"
_REF = re.compile(r"[A-Z][A-Z0-9]{0,9}-\d{4}-\d{4,}")


@functools.cache
def names() -> tuple[str, ...]:
    """The canned replies there are (each in English at least); read once per process."""
    return tuple(sorted(p.name.removesuffix(".en.txt")
                        for p in (templates_dir() / DIRECTORY).glob("*.en.txt")))


def _command(parsed: Parsed) -> Command | None:
    return next((c for c in parsed.commands if c.name == "template"), None)


async def check(db: Db, case: Mapping[str, Any], parsed: Parsed,
                policy: PolicyConfig) -> list[CommandError]:
    """What stops this #template for this case: an unknown name, a reply it cannot fill."""
    c = _command(parsed)
    if c is None:
        return []
    name = str(c.value).partition(" ")[0]
    if name not in names():
        return [CommandError(c.line, f"no canned reply '{name}'; there are: "
                             + ", ".join(names()))]
    try:
        values = await context(db, case, parsed, policy)
        # Rendered once here, so a template an operator got wrong refuses the command mail
        # with the reason instead of failing it while it is applied.
        _render(_templates(), name, case["language"], values)
    except ValueError as e:
        return [CommandError(c.line, str(e))]
    except TemplateError as e:
        return [CommandError(c.line, f"the canned reply {name} cannot be filled: {e}")]
    return []


@functools.cache
def _templates() -> Templates:
    return Templates()


def _render(templates: Templates, name: str, language: str, values: dict[str, Any]) -> str:
    """In the case's language when the reply exists in it, else in English."""
    if not (templates_dir() / DIRECTORY / f"{name}.{language}.txt").is_file():
        language = "en"
    return templates.render(f"{DIRECTORY}/{name}", language, **values).strip()


async def context(db: Db, case: Mapping[str, Any], parsed: Parsed,
                  policy: PolicyConfig) -> dict[str, Any]:
    """The values a canned reply may use; ValueError when the one asked for lacks one."""
    c = _command(parsed)
    assert c is not None
    name, _, arg = str(c.value).partition(" ")
    scope = policy.scope
    assessment = await assess_q.get(db, int(case["id"])) or {}
    language = case["language"] if case["language"] in LANGUAGES else "en"
    severity = _new(parsed, "severity") or case["severity"]
    reward = _new(parsed, "bounty") or case["bounty"] or scope.rewards.get(severity or "")
    if arg and name not in ("out-of-scope", "duplicate-of"):
        raise ValueError(f"#template {name} takes no argument")
    classes = [x["id"] for x in assessment.get("out_of_scope_classes", [])]
    class_id = (arg if name == "out-of-scope" else None) or (classes[0] if classes else None)
    clause = None
    if class_id:
        found = scope.catalogue.get(class_id)
        if found is None:
            raise ValueError(f"no out-of-scope class '{class_id[:40]}'")
        clause = found.clause(language)
    duplicate_of = (arg.upper() if name == "duplicate-of" and arg else None) or _new(
        parsed, "duplicate") or case["duplicate_of"] or next(
        (d["ref"] for d in assessment.get("duplicates", [])), None)
    due = _new(parsed, "due") or case["resolution_due"]
    if name == "out-of-scope" and clause is None:
        raise ValueError("no out-of-scope class matched this report; name one: "
                         "#template out-of-scope CLASS")
    if name == "duplicate-of" and duplicate_of and not _REF.fullmatch(duplicate_of):
        raise ValueError(f"'{duplicate_of[:30]}' is not a case reference")
    if name == "reward-offer" and not reward:
        raise ValueError("no reward to offer: set #severity (the policy's rewards) or "
                         "#bounty AMOUNT")
    if name == "accepted-with-date" and not due:
        raise ValueError("no expected date: add #due YYYY-MM-DD")
    return {
        "name": case["reporter_name"] or "", "ref": case["ref"], "subject": case["subject"],
        "severity": severity, "reward": reward, "class_id": class_id, "clause": clause,
        "hosts": assessment.get("hosts", {}).get("out_of_scope", [])
        + assessment.get("hosts", {}).get("unknown", []),
        "duplicate_of": duplicate_of,
        "due": datetime.fromisoformat(due if "T" in due else f"{due}T12:00:00+00:00")
        if due else None,
        "zone": policy.timezone, "policy_url": scope.policy_url,
        # Staff text reaches the reporter only when staff say so: `#reply` with `#template`.
        "text": parsed.text or None if parsed.replies else None,
    }


def _new(parsed: Parsed, name: str) -> str | None:
    """A value set by a command of the same mail (`#severity high` + `#template ...`)."""
    return next((str(c.value) for c in parsed.commands if c.name == name), None)


async def compose(db: Db, templates: Templates, case: Mapping[str, Any], parsed: Parsed,
                  policy: PolicyConfig) -> str | None:
    """The canned reply's text in the case's language, or None without a #template."""
    c = _command(parsed)
    if c is None:
        return None
    name = str(c.value).partition(" ")[0]
    return _render(templates, name, case["language"], await context(db, case, parsed, policy))
