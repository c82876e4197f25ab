"""The triage help inside the pipeline's transaction: gather the reporter's text, assess
it against the policy (assess.py, in a thread: a 1 MB report is CPU work), compare it with
the inbox's recent cases that share a key with it (at most 50), store the result and
say it to staff in a few lines.

It never changes the case and never writes to the reporter. A bug here costs the triage
help of one mail, never the mail itself: it is logged and the pipeline goes on.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import datetime, timedelta

from mailbot.clock import iso
from mailbot.config import InboxConfig, PolicyConfig, ScopeConfig
from mailbot.models import ParsedMail
from mailbot.store import Db
from mailbot.store import assessments as assess_q
from mailbot.triage import canned
from mailbot.triage.assess import Assessment, assess
from mailbot.triage.duplicates import Features, keys, likely_duplicates

log = logging.getLogger(__name__)

# Closed cases stay candidates for duplicates this long (a fix still being verified, a
# researcher who did not hear back and writes again).
RECENT = timedelta(days=90)
TEXT_ATTACHMENT_LIMIT = 1024 * 1024  # bytes of one text attachment that are read
INLINE_LIMIT = 4 * 1024  # characters of report assessed on the loop (about 1 ms); more in a thread


async def on_mail(db: Db, *, case_id: int, inbox: InboxConfig, policy: PolicyConfig,
                  language: str, mail: ParsedMail, at: datetime,
                  severity: str | None = None, opened: bool = False) -> list[str]:
    """Assess the case anew with this mail from its reporter (already recorded; `opened`:
    the report itself) and return the notification's block; [] when it failed, or when
    the policy names no scope (nothing to hold the report against)."""
    if not policy.scope.named:
        return []
    try:
        # Each query is a trip to the database thread: a new case's text is this mail's.
        texts = ([f"{mail.subject or ''}\n{mail.text}"] if opened
                 else await assess_q.reporter_texts(db, case_id))
        texts += [t for a in mail.attachments if (t := _text_of(a.content_type, a.data))]
        scope = policy.scope
        text = "\n".join(texts)
        if len(text) > INLINE_LIMIT:  # CPU work of milliseconds: off the event loop
            found = await asyncio.to_thread(assess, text, scope, language, scope.catalogue)
        else:  # a usual report takes well under a millisecond, less than a thread's handoff
            found = assess(text, scope, language, scope.catalogue)
        shared = sorted(keys(found.features, scope.same_codebase))
        others = await assess_q.candidates(db, inbox.name, case_id, shared, iso(at - RECENT))
        found = replace(found, duplicates=tuple(likely_duplicates(
            found.features, [(ref, Features.from_json(f)) for ref, f in others],
            scope.same_codebase)))
        await assess_q.save(db, case_id, inbox=inbox.name, at=iso(at),
                            assessment=found.as_json(), features=found.features.as_json(),
                            keys=shared)
    except Exception:
        log.exception("case %d: the triage help failed; the mail is processed without it",
                      case_id)
        return []
    return [block(found, policy.scope, severity)]


def _text_of(content_type: str, data: bytes) -> str | None:
    if not content_type.lower().startswith("text/"):
        return None
    return data[:TEXT_ATTACHMENT_LIMIT].decode("utf-8", errors="replace")


def block(a: Assessment, scope: ScopeConfig, severity: str | None) -> str:
    """The notification's short block: staff read it, staff decide."""
    lines: list[str] = []
    for label, hosts in (("in scope", a.in_scope), ("OUT of scope", a.out_of_scope),
                         ("unknown", a.unknown)):
        if hosts:
            shown = ", ".join(hosts[:8]) + (f" (+{len(hosts) - 8} more)" if len(hosts) > 8
                                             else "")
            lines.append(f"  Hosts {label + ':':<14}{shown}")
    for c in a.classes[:3]:
        lines.append(f"  Out-of-scope class: {c.id} (score {c.score:.1f})")
        lines.append(f"    policy: \"{c.clause}\"")
    for d in a.duplicates[:5]:
        lines.append(f"  Likely duplicate of {d.ref}: {d.why}")
    if severity and scope.rewards.get(severity):
        lines.append(f"  Reward for {severity} (policy): {scope.rewards[severity]}")
    if a.suggested_template:
        lines.append(f"  Suggested reply: #template {a.suggested_template}")
    lines.append(f"  Canned replies (#template NAME): {', '.join(canned.names())}")
    return "\n".join(["Triage help (read from the policy; nothing was decided or sent):",
                      *lines])
