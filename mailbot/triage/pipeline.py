"""The stages, in order, one transaction per mail.

parse → classify → find the case → decide → act (open / append / ignore) → queue the mail
it implies → mark the inbound row. What happens to a mail is a `Decision` value that one
function applies; a mail that raises is quarantined with its reason and the worker goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from mailbot.clock import Clock, iso
from mailbot.config import Config, InboxConfig, PolicyConfig
from mailbot.errors import CommandError, MessageError, TransientError
from mailbot.keyfile import load_or_create_secret
from mailbot.mail.dkim import DkimResult, DnsFunc, resolver, verify
from mailbot.mail.machine import subject_only
from mailbot.mail.parse import parse
from mailbot.mail.pgp import Opened, looks_pgp
from mailbot.mail.quotes import new_text
from mailbot.mail.render import LANGUAGES, Templates
from mailbot.mail.sender import envelope_address
from mailbot.models import CaseState, Disposition, InboundStatus, ParsedMail
from mailbot.sla import BusinessCalendar, deadlines
from mailbot.store import Db, Store
from mailbot.store import cases as case_q
from mailbot.store import inbound as inbound_q
from mailbot.store import keys as keys_q
from mailbot.store import notices as notices_q
from mailbot.store.inbound import InboundRow
from mailbot.triage import actions, assessing, commands, letters, lists, policy_commands
from mailbot.triage.auth import CaseFacts, Kind, named_ids, speaker
from mailbot.triage.crypto import Crypto, KeyChoice, Sealer, note
from mailbot.triage.threads import find_case

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Decision:
    disposition: Disposition
    reason: str | None = None  # why ignored, quarantined, or untrusted
    case: Mapping[str, Any] | None = None  # the case the mail belongs to
    kind: Kind = Kind.REPORT  # who is speaking (auth.speaker)
    trusted: bool = True  # the sender is who the mail says

    @property
    def case_id(self) -> int | None:
        return int(self.case["id"]) if self.case else None


# Who hears of what: mail from the reporter, and every mail that must not be trusted.
NOTIFY_KINDS = frozenset({Kind.FOLLOW_UP, Kind.STRANGER, Kind.UNTRUSTED_STAFF})


@dataclass(frozen=True, slots=True)
class Outcome:
    inbound_id: int
    status: InboundStatus
    case_ref: str | None = None
    reason: str | None = None
    queued: int = 0  # outgoing mails queued
    opened: bool = False  # a new case


_AS_RECEIVED = Opened(b"")  # no PGP stage: a row that failed before it
_UNSIGNED = DkimResult()


@dataclass(frozen=True, slots=True)
class Prepared:
    """What the thread stage learned of a mail before its transaction."""

    mail: ParsedMail
    dkim: DkimResult = _UNSIGNED  # its valid DKIM signatures (staff mail only)
    opened: Opened = _AS_RECEIVED  # what PGP made of it (parse always sets it)
    offered_key: str | None = None  # the fingerprint of a key it offered for its sender
    failure: str | None = None  # a reason to quarantine found before the transaction
    via: lists.Via | None = None  # the mailing list it came through (and is not bulk of)


def _deliveries(
    items: Sequence[tuple[InboundRow, Prepared]]
) -> list[list[tuple[InboundRow, Prepared]]]:
    """Consecutive rows of one delivery (several addressed inboxes) grouped, in order."""
    groups: list[list[tuple[InboundRow, Prepared]]] = []
    for item in items:
        if groups and groups[-1][0][0].delivery == item[0].delivery:
            groups[-1].append(item)
        else:
            groups.append([item])
    return groups


class _TakenElsewhere(Exception):
    """The row was no longer pending when this transaction came to mark it."""


class _Lookup:
    """threads.CaseLookup over the open transaction, for mail of `sender` (`party`: staff)."""

    def __init__(self, db: Db, sender: str, party: bool) -> None:
        self.db, self.sender, self.party = db, sender, party

    async def by_message_ids(self, message_ids: tuple[str, ...]) -> int | None:
        return await case_q.case_of_message_ids(self.db, message_ids, sender=self.sender,
                                                party=self.party)

    async def by_ref(self, ref: str, inbox: str) -> int | None:
        return await case_q.case_id_of_ref(self.db, ref, inbox)


class Pipeline:
    def __init__(
        self, config: Config, store: Store, templates: Templates, clock: Clock, secret: bytes,
        crypto: Crypto | None = None,
    ) -> None:
        self.config = config
        self.crypto = crypto or Crypto(config, None)
        self.secret = secret
        # [auth] dns_servers, or None: the system's resolver (tests may answer themselves).
        self.dkim_dns: DnsFunc | None = (resolver(config.auth.dns_servers)
                                         if config.auth.dns_servers else None)
        self.store = store
        self.templates = templates
        self.clock = clock
        self.loop_markers = frozenset(i.address.lower() for i in config.inboxes)
        self.calendars = {
            name: BusinessCalendar.create(p.timezone, p.holidays, p.workdays, p.business_hours)
            for name, p in config.policies.items()
        }

    @classmethod
    def create(cls, config: Config, store: Store, clock: Clock) -> Pipeline:
        """The pipeline with the templates and the bot's secret (created on first use)."""
        secret = load_or_create_secret(config.auth.secret_file)
        return cls(config, store, Templates(), clock, secret, Crypto.create(config))

    def parse(self, row: InboundRow) -> Prepared:
        """The first stage, outside the transaction; the worker runs it in a thread, as it
        may look up DKIM keys in the DNS and run gpg."""
        opened, failure = self.crypto.open(row.raw)
        mail = parse(opened.raw, loop_markers=self.loop_markers)
        offered = self.crypto.learn(opened, mail)
        if mail.from_problem:
            # From: is not one plain address: what mail systems read there is anyone's
            # guess, so a case is answered at the envelope sender only (never staff).
            mail = replace(mail, from_addr=envelope_address(row.mail_from), from_name="")
        # List mail: ours, a report through another's list, or bulk (triage/lists.py).
        mail, via = lists.resolve(mail, self._inbox(row), self.config)
        dkim = _UNSIGNED
        if (mail.from_addr and not mail.from_problem and self.config.is_staff(mail.from_addr)
                and "dkim" in self._inbox(row).staff_auth):
            dkim = verify(row.raw, self.dkim_dns)
        return Prepared(mail, dkim, opened, offered, failure, via)

    def parse_all(self, rows: Sequence[InboundRow]) -> list[Prepared]:
        """Each row parsed, in order. PGP mail waits on gpg processes: several of those run
        at once (up to [gpg] max_processes), on both cores; plain mail is parsed here."""
        pgp = sum(looks_pgp(row.raw) for row in rows) if self.crypto.gpg else 0
        if pgp > 1:
            workers = min(pgp, self.config.gpg.max_processes)
            with ThreadPoolExecutor(workers, thread_name_prefix="pgp") as pool:
                return list(pool.map(self._parse_one, rows))
        return [self._parse_one(row) for row in rows]

    def _parse_one(self, row: InboundRow) -> Prepared:
        """One that raises (a bug) is quarantined, never the worker's end."""
        try:
            return self.parse(row)
        except Exception as e:
            log.exception("inbound %d: parsing failed", row.id)
            return Prepared(parse(b""), failure=f"internal error while parsing: "
                                                f"{type(e).__name__}: {e}")

    async def process_batch(self, items: Sequence[tuple[InboundRow, Prepared]]) -> list[Outcome]:
        """Several mails in one transaction, which saves a commit per mail under load.

        Optimistic: if any mail raises, the whole batch is rolled back and each mail is then
        processed in a transaction of its own, where a failure quarantines that mail alone.
        """
        groups = _deliveries(items)
        if len(groups) > 1:
            done: list[Outcome] = []
            try:
                async with self.store.write() as db:
                    for group in groups:
                        done += await self._decide_and_apply(db, group)
                        if self.store.intake_waiting and len(done) < len(items):
                            break  # a sender waits for its 250: commit this much, let it in
            except TransientError:
                raise
            except Exception:
                log.info("batch of %d rolled back; processing one by one", len(items))
            else:
                if len(done) < len(items):
                    return done + await self.process_batch(items[len(done):])
                return done
        return [o for group in groups for o in await self._process_delivery(group)]

    async def _decide_and_apply(
        self, db: Db, group: Sequence[tuple[InboundRow, Prepared]]
    ) -> list[Outcome]:
        """The rows of one delivery (one per addressed inbox) are all decided before any is
        applied: each inbox decides as if the mail had come to it alone, and the case the
        first opens can neither make the second a duplicate nor take it in. Two that thread
        onto the same case (a reply citing one case, sent to both inboxes) land there once."""
        decisions: list[Decision] = []
        first = group[0][0].id
        for row, p in group:
            d = await self._decide(db, row, p)
            if d.case_id is not None and any(e.case_id == d.case_id for e in decisions):
                d = Decision(Disposition.IGNORE, f"the same delivery as inbound {first}, on"
                                                 f" {d.case['ref'] if d.case else 'its case'}")
            decisions.append(d)
        return [await self._apply(db, row, p, d)
                for (row, p), d in zip(group, decisions, strict=True)]

    async def _process_delivery(
        self, group: Sequence[tuple[InboundRow, Prepared]]
    ) -> list[Outcome]:
        """One delivery in one transaction; should it raise, each row on its own."""
        if len(group) > 1:
            try:
                async with self.store.write() as db:
                    return await self._decide_and_apply(db, group)
            except TransientError:
                raise
            except Exception:
                log.info("inbound %d: its %d inboxes rolled back; processing one by one",
                         group[0][0].id, len(group))
        return [await self.process(row, p) for row, p in group]

    async def process(self, row: InboundRow, prepared: Prepared | None = None) -> Outcome:
        """Process one inbound row; never raises for a problem of the mail itself."""
        try:
            if prepared is None:
                prepared = await asyncio.to_thread(self.parse, row)
            async with self.store.write() as db:
                decision = await self._decide(db, row, prepared)
                return await self._apply(db, row, prepared, decision)
        except _TakenElsewhere:
            # Another worker (a concurrent `mailbot import`) processed it first: rolled back.
            return Outcome(row.id, InboundStatus.DONE, reason="already processed")
        except TransientError:
            raise
        except MessageError as e:
            return await self._quarantine(row, str(e))
        except Exception as e:  # a bug: keep the mail for a human, go on with the next
            log.exception("inbound %d: processing failed", row.id)
            return await self._quarantine(row, f"internal error: {type(e).__name__}: {e}")

    async def _quarantine(self, row: InboundRow, reason: str) -> Outcome:
        async with self.store.write() as db:
            await inbound_q.finish(
                db, row.id, status=InboundStatus.QUARANTINED, at=iso(self.clock()), reason=reason
            )
        log.warning("inbound %d quarantined: %s", row.id, reason)
        return Outcome(row.id, InboundStatus.QUARANTINED, reason=reason)

    async def _decide(self, db: Db, row: InboundRow, prepared: Prepared) -> Decision:
        mail = prepared.mail
        inbox = self._inbox(row)
        if prepared.failure:
            return Decision(Disposition.QUARANTINE, prepared.failure)
        if mail.message_id and await case_q.has_inbound_message(db, mail.message_id,
                                                                mail.from_addr):
            return Decision(Disposition.IGNORE, f"duplicate of {mail.message_id} already on a case")
        machine = mail.machine or ("empty return path" if row.mail_from == "" else None)
        if not machine and not mail.from_addr:
            return Decision(Disposition.QUARANTINE, (
                f"{mail.from_problem}, and no envelope sender" if mail.from_problem
                else "no sender address in From:"))
        recipients = (*row.rcpt_to, *mail.to, *mail.cc)
        staff = self.config.is_staff(mail.from_addr)
        case_id = await find_case(mail, recipients, inbox=inbox,
                                  lookup=_Lookup(db, mail.from_addr, staff))
        case = await case_q.get_by_id(db, case_id) if case_id is not None else None
        machine = subject_only(machine, row.mail_from, mail.from_addr,
                               case["reporter"] if case is not None else None)
        facts, threads, replayed = None, {}, False
        if case is not None:
            facts = CaseFacts(int(case["id"]), str(case["ref"]), str(case["reporter"]))
        if case is not None and staff:
            threads = await case_q.cases_of_message_ids(db, named_ids(mail, prepared.opened))
            sig_id = prepared.opened.sig_id
            replayed = sig_id is not None and await keys_q.signature_seen_elsewhere(
                db, sig_id, row.id)
        who = speaker(
            mail, facts, recipients=recipients, inbox=inbox, staff=self.config.staff,
            machine=machine, pgp=prepared.opened, pgp_replayed=replayed, dkim=prepared.dkim,
            threads=threads, secret=self.secret, now=self.clock(),
            window=self.config.auth.replay_window)
        if case is None:
            if who.kind is Kind.MACHINE:
                return Decision(Disposition.IGNORE, who.reason)
            return Decision(Disposition.OPEN)
        # Recorded on its case; machine mail is never answered and never reopens it.
        return Decision(Disposition.APPEND, lists.noted(who.reason, prepared.via), case,
                        who.kind, who.trusted)

    async def _apply(
        self, db: Db, row: InboundRow, prepared: Prepared, decision: Decision
    ) -> Outcome:
        now = self.clock()
        case_id, ref, queued = decision.case_id, None, 0
        match decision.disposition:
            case Disposition.IGNORE:
                status = InboundStatus.IGNORED
            case Disposition.QUARANTINE:
                status = InboundStatus.QUARANTINED
            case Disposition.APPEND:
                status = InboundStatus.DONE
                ref, queued = await self._append(db, row, prepared, decision, now)
            case Disposition.OPEN:
                status = InboundStatus.DONE
                case_id, ref, queued = await self._open(db, row, prepared, now)
        if not await inbound_q.finish(
            db, row.id, status=status, at=iso(now), reason=decision.reason, case_id=case_id
        ):
            raise _TakenElsewhere
        return Outcome(row.id, status, ref, decision.reason, queued,
                       decision.disposition is Disposition.OPEN)

    async def _open(
        self, db: Db, row: InboundRow, prepared: Prepared, now: datetime
    ) -> tuple[int, str, int]:
        mail, pgp = prepared.mail, prepared.opened
        inbox = self._inbox(row)
        policy = self._policy(inbox)
        calendar = self.calendars[policy.name]
        received = datetime.fromisoformat(row.received_at)
        due = deadlines(calendar, received, policy.first_response, policy.resolution)
        language = mail.language if mail.language in LANGUAGES else inbox.language
        subject = mail.subject or "(no subject)"
        case_id, ref = await case_q.open_case(db, case_q.NewCase(
            inbox=inbox.name, prefix=inbox.prefix, year=calendar.local(received).year,
            reporter=mail.from_addr, reporter_name=mail.from_name or None, subject=subject,
            language=language, created_at=iso(received),
            first_response_due=iso(due.first_response_due),
            resolution_due=iso(due.resolution_due),
        ))
        key_note = await self._record(db, case_id, row, prepared, "report", trusted=True)
        await case_q.add_event(
            db, case_id, at=iso(now), actor=mail.from_addr, action="opened", new=ref,
            detail=f"first response due {iso(due.first_response_due)}",
        )
        remarks = await self._pgp_remarks(db, case_id, pgp, now) + ([key_note] if key_note else [])
        if prepared.via is not None:
            remarks += await lists.record(db, case_id, prepared.via, mail.from_addr, now)
        remarks += await assessing.on_mail(db, case_id=case_id, inbox=inbox, policy=policy,
                                           language=language, mail=mail, at=now, opened=True)
        hour_ago = iso(received - timedelta(hours=1))
        limits = self.config.limits
        facts = await case_q.ack_facts(db, mail.from_addr, hour_ago, limits.acks_per_hour)
        flood = (f"{facts.by_reporter} cases from this sender in the last hour"
                 if facts.by_reporter > limits.acks_per_sender_per_hour else None)
        if flood is None and facts.acks >= limits.acks_per_hour:
            flood = f"{limits.acks_per_hour} acknowledgements in the last hour"
        if flood:
            # A flood or a loop: the case is kept and threaded, no acknowledgement is sent,
            # and staff learn of it in the next summary (jobs/summary.py) instead of not at all.
            await case_q.add_event(db, case_id, at=iso(now), actor="mailbot",
                                   action="acknowledgement withheld", detail=flood)
            await self._hold(db, row, case_id, mail, "new", now, flood)
            log.warning("inbound %d: %s opened %s; ack withheld, staff told in the next "
                        "summary (%s)", row.id, mail.from_addr, ref, flood)
            return case_id, ref, 0
        ack = letters.acknowledgement(
            self.templates, inbox, policy,
            letters.AckFacts(
                ref=ref, reporter=mail.from_addr, reporter_name=mail.from_name,
                subject=mail.subject, language=language, report_message_id=mail.message_id,
                report_references=mail.references, first_response_due=due.first_response_due,
                resolution_due=due.resolution_due, undecryptable=not pgp.readable,
                key_fingerprint=inbox.pgp_key, key_url=self.config.security_txt.encryption,
            ),
            now,
        )
        acked = 0
        if prepared.via is not None and prepared.via.quiet:
            await case_q.add_event(db, case_id, at=iso(now), actor="mailbot",
                                   action="acknowledgement withheld", detail=prepared.via.why)
        else:
            choice = await self.crypto.reporter_key(db, case_id, mail.from_addr)
            seal = self.crypto.sealer(inbox, choice.fingerprint, ref,
                                      required="ack" in policy.require_encryption)
            queued = await letters.queue(
                db, purpose=f"ack:{ref}", case_id=case_id, kind="ack", mail=ack,
                envelope_from=inbox.address, at=now, seal=seal,
            )
            acked = int(queued.outbox_id is not None)
            remarks.append(await self._sealing_note(db, case_id, "acknowledgement", choice,
                                                    seal, now))
        view = letters.CaseView(ref, subject, "new", mail.from_addr, mail.from_name or None,
                                due.first_response_due, due.resolution_due)
        notified = await self._notify(db, row, inbox, case_id, view, mail, "new", now, remarks)
        log.info("inbound %d %s: opened %s", row.id, mail.message_id, ref)
        return case_id, ref, acked + notified

    async def _pgp_remarks(self, db: Db, case_id: int, pgp: Opened, now: datetime) -> list[str]:
        """What staff are told of a mail's PGP; an unreadable mail is also an event."""
        if not pgp.readable:
            await case_q.add_event(db, case_id, at=iso(now), actor="mailbot",
                                   action="undecryptable", detail=pgp.error)
        remark = note(pgp)
        return [f"PGP: {remark}"] if remark else []

    async def _sealing_note(self, db: Db, case_id: int, what: str, choice: KeyChoice,
                            seal: Sealer, now: datetime) -> str:
        """What staff are told of a mail to the reporter: the key it was encrypted to, or
        why it went in clear, or why it was withheld (then also an event)."""
        if seal.withheld:
            reason = (f"{what} NOT sent: the policy requires encryption and {seal.withheld}")
            await case_q.add_event(db, case_id, at=iso(now), actor="mailbot",
                                   action=f"{what} withheld", detail=reason)
            return reason
        if seal.clear_reason:
            await case_q.add_event(db, case_id, at=iso(now), actor="mailbot",
                                   action=f"{what} sent in clear", detail=seal.clear_reason)
            return f"{what} sent in CLEAR: {seal.clear_reason}"
        return choice.line()

    async def _append(
        self, db: Db, row: InboundRow, prepared: Prepared, decision: Decision, now: datetime
    ) -> tuple[str, int]:
        assert decision.case is not None
        mail = prepared.mail
        case_id, ref = int(decision.case["id"]), str(decision.case["ref"])
        key_note = await self._record(db, case_id, row, prepared, decision.kind,
                                      trusted=decision.trusted)
        await case_q.add_event(
            db, case_id, at=iso(now), actor=mail.from_addr or "(unknown)",
            action=decision.kind, detail=decision.reason,
        )
        remarks = await self._pgp_remarks(db, case_id, prepared.opened, now)
        remarks += [key_note] if key_note else []
        if decision.kind == "follow-up":
            remarks.append((await self.crypto.reporter_key(db, case_id, mail.from_addr)).line())
        if decision.kind is Kind.FOLLOW_UP:  # the reporter's new text: the triage help anew
            remarks += await assessing.on_mail(
                db, case_id=case_id, inbox=self._inbox(row), policy=self._policy(self._inbox(row)),
                language=decision.case["language"], mail=mail, at=now,
                severity=decision.case["severity"])
            remarks += await policy_commands.on_reporter_mail(db, decision.case, mail, now)
        await case_q.touch(db, case_id, iso(now))
        if decision.kind is Kind.FOLLOW_UP and decision.case["state"] == CaseState.NEEDS_INFO:
            await self._resume(db, row, decision.case, mail, now)
        notified = 0
        if decision.kind is Kind.STAFF:
            notified = await self._staff_mail(db, row, mail, decision.case, now)
        if decision.kind in NOTIFY_KINDS:
            inbox = self._inbox(row)
            notified = await self._notify(db, row, inbox, case_id,
                                          letters.CaseView.of(decision.case), mail,
                                          decision.kind, now, remarks)
        log.info("inbound %d %s: %s on %s", row.id, mail.message_id, decision.kind, ref)
        return ref, notified

    async def _resume(self, db: Db, row: InboundRow, case: Mapping[str, Any],
                      mail: ParsedMail, now: datetime) -> None:
        """The reporter answered: back to the state before needs-info, clocks resumed."""
        policy = self._policy(self._inbox(row))
        back = case["paused_from"] or CaseState.TRIAGED.value
        fields = actions.resume(case, self.calendars[policy.name], now)
        await case_q.update(db, int(case["id"]), {**fields, "state": back})
        await case_q.add_event(db, int(case["id"]), at=iso(now), actor=mail.from_addr,
                               action="status", old=CaseState.NEEDS_INFO.value, new=back,
                               detail="the reporter answered: clocks resumed")

    async def _staff_mail(
        self, db: Db, row: InboundRow, mail: ParsedMail, case: Mapping[str, Any], now: datetime
    ) -> int:
        """Apply an authenticated staff mail's commands (all or none); answer with a
        transcript; tell the reporter what concerns them. Returns the mails queued."""
        inbox = self._inbox(row)
        policy = self._policy(inbox)
        parsed = commands.parse(new_text(mail.text))
        errors = list(parsed.errors)
        if parsed.commands and not errors:
            window = self.config.auth.replay_window
            if mail.date is None or abs(now - mail.date) > window:
                errors.append(CommandError(1, f"the mail is dated {mail.date or 'nowhere'}, "
                                              "outside the replay window; send it anew"))
        if not errors:
            errors = await actions.check(db, case, parsed, actor=mail.from_addr, at=now)
            parsed, more = await policy_commands.prepare(db, case, parsed, policy, now)
            errors += more
        done: list[str] = []
        remarks: list[str] = []
        queued = 0
        if not errors:
            applied = await actions.apply(db, case, parsed, actor=mail.from_addr, at=now,
                                          calendar=self.calendars[policy.name], policy=policy)
            await policy_commands.after(db, self.templates, case, parsed, policy, applied,
                                        actor=mail.from_addr, at=now)
            done = applied.done
            if applied.new_reporter:
                queued += await self._ack_forwarded(db, row, case, applied, now, remarks)
                case = await case_q.get_by_id(db, int(case["id"])) or case  # the new reporter
            if applied.reply_text or applied.reporter_news:
                thread = await case_q.thread_ids(db, int(case["id"]))
                update = letters.reporter_update(
                    self.templates, inbox, policy, case, applied.reporter_news,
                    applied.reply_text, thread, now)
                if listed := await lists.unanswerable(db, self.config, int(case["id"]),
                                                      case["reporter"]):
                    remarks.append(listed)
                else:
                    choice = await self.crypto.reporter_key(db, int(case["id"]),
                                                            case["reporter"])
                    seal = self.crypto.sealer(inbox, choice.fingerprint, case["ref"],
                                              required="update" in policy.require_encryption)
                    q = await letters.queue(db, purpose=f"reporter:{row.id}",
                                            case_id=int(case["id"]), kind="reply", mail=update,
                                            envelope_from=inbox.address, at=now, seal=seal)
                    queued += q.outbox_id is not None
                    remarks.append(await self._sealing_note(db, int(case["id"]), "update",
                                                            choice, seal, now))
        notice = letters.transcript(self.templates, inbox, str(case["ref"]), mail.from_addr,
                                    mail, errors, done, bool(queued), now, remarks)
        q = await letters.queue(db, purpose=f"transcript:{row.id}", case_id=int(case["id"]),
                                kind="transcript", mail=notice, envelope_from=inbox.address,
                                at=now)
        log.info("inbound %d: %d commands on %s%s", row.id, len(parsed.commands), case["ref"],
                 f", refused: {errors[0]}" if errors else "")
        return queued + (q.outbox_id is not None)

    async def _ack_forwarded(self, db: Db, row: InboundRow, case: Mapping[str, Any],
                             applied: actions.Applied, now: datetime,
                             remarks: list[str]) -> int:
        """#open-for: the original sender's acknowledgement, answering their own report."""
        inbox = self._inbox(row)
        policy = self._policy(inbox)
        fresh = await case_q.get_by_id(db, int(case["id"]))
        assert fresh is not None and applied.new_reporter is not None
        original = applied.original
        facts = letters.AckFacts(
            ref=fresh["ref"], reporter=applied.new_reporter,
            reporter_name=fresh["reporter_name"] or "",
            subject=original.subject if original and original.subject else fresh["subject"],
            language=fresh["language"],
            report_message_id=original.message_id if original else None, report_references=(),
            first_response_due=datetime.fromisoformat(fresh["first_response_due"]),
            resolution_due=datetime.fromisoformat(fresh["resolution_due"]),
            key_fingerprint=inbox.pgp_key, key_url=self.config.security_txt.encryption)
        choice = await self.crypto.reporter_key(db, int(case["id"]), applied.new_reporter)
        seal = self.crypto.sealer(inbox, choice.fingerprint, fresh["ref"],
                                  required="ack" in policy.require_encryption)
        queued = await letters.queue(
            db, purpose=f"ack-for:{fresh['ref']}:{row.id}", case_id=int(case["id"]), kind="ack",
            mail=letters.acknowledgement(self.templates, inbox, policy, facts, now),
            envelope_from=inbox.address, at=now, seal=seal)
        remarks.append(await self._sealing_note(db, int(case["id"]), "acknowledgement", choice,
                                                seal, now))
        return int(queued.outbox_id is not None)

    async def _notify(
        self, db: Db, row: InboundRow, inbox: InboxConfig, case_id: int,
        case: letters.CaseView, mail: ParsedMail, kind: str, now: datetime,
        remarks: Sequence[str] = (),
    ) -> int:
        """One notification per staff address, each with that person's reply address,
        encrypted to those who have a key."""
        policy = self._policy(inbox)
        keys = {s.address.lower(): s.pgp_fingerprint for s in self.config.staff}
        ignored: list[str] = []
        if kind == "untrusted-staff":
            lines = new_text(mail.text).split("\n")
            ignored = [lines[c.line - 1].strip()[:200]
                       for c in commands.parse(new_text(mail.text)).commands]
        addresses = self.config.notified(inbox)
        limits = self.config.limits
        spent = await notices_q.spent(db, addresses, iso(now - timedelta(hours=1)),
                                      limits.notifications_per_hour)
        busiest = max((s.notices for s in spent.values()), default=0)
        if busiest >= limits.notifications_per_hour:
            await self._hold(db, row, case_id, mail, kind, now,
                             f"{busiest} notifications to one staff member in the last hour")
            return 0
        sent = 0
        for address in addresses:
            # A flood of mail with attachments must not become megabytes in staff mailboxes.
            carried = letters.carry(mail.attachments, limits.notify_attachments_per_mail,
                                    limits.notify_attachments_per_hour,
                                    spent[address.lower()].attachment_bytes)
            notice = letters.notification(self.templates, self.secret, inbox, policy, case,
                                          mail, kind, address, now, ignored, remarks,
                                          carried, row.id)
            queued = await letters.queue(
                db, purpose=f"notify:{row.id}:{address.lower()}", case_id=case_id,
                kind="notification", mail=notice, envelope_from=inbox.address, at=now,
                seal=self.crypto.sealer(inbox, keys.get(address.lower()), case.ref),
            )
            if queued.outbox_id is not None:
                sent += 1
                await notices_q.record(db, address, iso(now), carried.size)
        return sent

    async def _hold(self, db: Db, row: InboundRow, case_id: int, mail: ParsedMail, kind: str,
                    now: datetime, reason: str) -> None:
        """A limit was reached: the mail is listed in the next summary (jobs/summary.py)
        instead of notifications of its own, never left untold."""
        await notices_q.hold(db, inbound_id=row.id, case_id=case_id, kind=kind,
                             sender=mail.from_addr or "(none)",
                             subject=mail.subject or "(no subject)", at=iso(now), reason=reason)
        log.info("inbound %d: %s held for the staff summary (%s)", row.id, kind, reason)

    async def _record(
        self, db: Db, case_id: int, row: InboundRow, prepared: Prepared, kind: str, *,
        trusted: bool,
    ) -> str | None:
        """The message on its case, and the key it offered for its sender (a line for
        staff when a key was taken or refused)."""
        mail, pgp = prepared.mail, prepared.opened
        await case_q.add_message(
            db, case_id=case_id, direction="in", kind=kind, sender=mail.from_addr,
            recipients=list(mail.to + mail.cc), message_id=mail.message_id,
            subject=mail.subject, date=iso(mail.date or datetime.fromisoformat(row.received_at)),
            body=mail.text, new_text=new_text(mail.text), inbound_id=row.id, trusted=trusted,
            encrypted=pgp.encrypted, signature=pgp.signature, signer=pgp.signer,
            readable=pgp.readable,
        )
        key_note = await self.crypto.remember(
            db, case_id=case_id, kind=kind, mail=mail, opened=pgp,
            offered=prepared.offered_key, at=self.clock(), inbound_id=row.id)
        if key_note:
            await case_q.add_event(db, case_id, at=iso(self.clock()), actor="mailbot",
                                   action="pgp key", detail=key_note)
        if pgp.sig_id and pgp.signature == "good" and kind == Kind.STAFF:
            # Spent only when it proved a command: a copy sent ahead to another case
            # (refused there) must not make the genuine mail look like its replay.
            await keys_q.remember_signature(db, pgp.sig_id, row.id)
        # What it answers threads later mail of the same sender (a reply that overtook the
        # mail it answers), never anyone else's: see store.cases.case_of_message_ids.
        await case_q.remember_citations(db, case_id, mail.from_addr,
                                        mail.in_reply_to + mail.references)
        return key_note

    def _inbox(self, row: InboundRow) -> InboxConfig:
        return self.config.inbox(row.inbox)

    def _policy(self, inbox: InboxConfig) -> PolicyConfig:
        return self.config.policies[inbox.policy]
