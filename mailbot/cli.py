"""The `mailbot` command. Thin: it loads the config once and calls the modules below.

The only caller of asyncio.run(). Exit codes: 0 done, 1 failed, 2 bad config or usage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from mailbot import __version__, gpgagent, logformat, logsafe, pgpadmin
from mailbot.clock import iso, system_clock
from mailbot.config import Config, load_config
from mailbot.errors import ConfigErrors, MailbotError
from mailbot.models import CaseState
from mailbot.store import Db, Store, open_store
from mailbot.store import assessments as assess_q
from mailbot.store import cases as case_q
from mailbot.store import disclosures as disclosures_q
from mailbot.store import inbound as inbound_q

log = logging.getLogger("mailbot")
Handler = Callable[[argparse.Namespace, Config], Coroutine[Any, Any, int]]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # What mailbot writes holds case text and secrets, and some of it is written by gpg and
    # SQLite: private whatever the caller's umask (mailbot/private.py sets modes too).
    os.umask(0o077)
    logformat.configure(args.log_level, args.log_format)
    logsafe.install()  # the commands' logs as safe as the daemon's
    try:
        config = load_config(args.config)
    except ConfigErrors as e:
        for err in e.errors:
            print(f"error: {err}", file=sys.stderr)
        return 2
    if problem := _unknown_inbox(args, config):
        print(f"error: {problem}", file=sys.stderr)
        return 2
    handler: Handler = args.handler
    debug = args.log_level == "debug"
    with gpgagent.as_found(config.gpg.home) if args.uses_gpg else contextlib.nullcontext():
        try:
            return asyncio.run(handler(args, config))
        except KeyboardInterrupt:
            return 130
        except BrokenPipeError:  # `mailbot show REF | head`: the reader had enough
            sys.stderr.close()
            return 0
        except Exception as e:  # a user's mistake reads as one line; where it came from on ask
            if debug:
                log.exception("%s failed", args.command)
            print(f"error: {one_line(e)}", file=sys.stderr)
            return 1


def _unknown_inbox(args: argparse.Namespace, config: Config) -> str | None:
    """`--inbox` names a configured inbox, or the command does not start."""
    names = [i.name for i in config.inboxes]
    inbox = getattr(args, "inbox", None)
    if inbox is None or inbox in names:
        return None
    return f"no inbox named {inbox!r} (the inboxes: {', '.join(names)})"


def one_line(e: BaseException) -> str:
    """An error as the one line the user sees: the file and the reason, no traceback."""
    if isinstance(e, MailbotError):
        text = str(e)
    elif isinstance(e, OSError) and e.strerror:
        names = [str(n) for n in (e.filename, e.filename2) if n is not None]
        text = ": ".join([*names, e.strerror.lower()])
    else:  # a bug: say so, and how to see more
        text = f"unexpected {type(e).__name__}: {e} (--log-level debug shows where)"
    return " ".join(text.split())


DESCRIPTION = """Email triage for security@ and support@ inboxes: receives reports, opens
cases, acknowledges them, and keeps the promised deadlines. Exit status: 0 done, 1 failed,
2 bad configuration or usage."""


def _global_options(p: argparse.ArgumentParser, defaults: bool) -> None:
    """--config, --log-level and --log-format, accepted before and after the command: the
    copy after it has no defaults, so it only overrides what was given."""
    def default(value: str | None) -> Any:
        return value if defaults else argparse.SUPPRESS

    p.add_argument("--config", metavar="FILE", default=default(None),
                   help="the TOML config (else $MAILBOT_CONFIG, else config/mailbot.toml, "
                        "else the embedded defaults)")
    p.add_argument("--log-level", default=default("info"),
                   choices=["debug", "info", "warning", "error"],
                   help="the least important log lines shown, on stderr (default: info); "
                        "debug adds tracebacks to errors")
    p.add_argument("--log-format", default=default("text"), choices=["text", "json"],
                   help="json: one object per line (time, level, logger, event, inbound_id, "
                        "case_ref) for log shippers (default: text)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mailbot", description=DESCRIPTION)
    p.add_argument("--version", action="version", version=f"mailbot {__version__}")
    _global_options(p, defaults=True)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, defaults=False)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn: Handler, help: str, gpg: bool = False) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, parents=[common], help=help, description=help)
        sp.set_defaults(handler=fn, uses_gpg=gpg)
        return sp

    add("run", _run, "run the daemon: listener, worker, outbox sender", gpg=True)
    add("migrate", _migrate, "apply database migrations")
    sp = add("copy-store", _copy_store, "copy a SQLite database (live or stopped) into an "
             "empty PostgreSQL one, then compare every table's rows and checksum")
    sp.add_argument("--from", dest="source", type=Path, required=True, metavar="PATH",
                    help="the SQLite file, at this mailbot's schema version")
    sp.add_argument("--to", dest="target", required=True, metavar="URL",
                    help="postgresql://user@host/dbname (TLS options as URL parameters)")
    sp.add_argument("--password-file", type=Path, metavar="FILE",
                    help="the target's password (else libpq's: the URL, $PGPASSWORD, "
                         "~/.pgpass)")
    sp.add_argument("--verify-only", action="store_true",
                    help="copy nothing: compare a finished copy with its (stopped) source")
    sp = add("check", _check, "validate the configuration, the keys, and talk to the relay "
             "and the IMAP servers as the daemon will", gpg=True)
    sp.add_argument("--offline", action="store_true",
                    help="check the files only: connect to no relay or IMAP server")
    sp = add("queue", _queue, "outgoing mail that waits or failed: list it, retry it, drop it")
    sp.add_argument("action", nargs="?", choices=["retry", "drop"],
                    help="retry ID|--all-failed: send again now; drop ID: never send it")
    sp.add_argument("id", nargs="?", type=int, help="the outbox id `mailbot queue` lists")
    sp.add_argument("--all-failed", action="store_true", help="retry: every failed mail")
    sp.add_argument("--json", action="store_true", help="machine-readable")
    sp = add("export", _export, "a reporter's access request: every stored mail of theirs "
             "as an mbox and their cases' fields as JSON")
    sp.add_argument("--reporter", required=True, metavar="ADDRESS", help="their mail address")
    sp.add_argument("--out", type=Path, default=Path("."),
                    help="the directory for reporter.mbox and cases.json (default: here)")
    sp.add_argument("--force", action="store_true", help="also while a case of theirs is open")
    sp = add("erase", _erase, "a reporter's erasure request: pseudonymise their address and "
             "delete the mail and texts of their closed cases")
    sp.add_argument("--reporter", required=True, metavar="ADDRESS", help="their mail address")
    sp.add_argument("--force", action="store_true",
                    help="also erase the cases of theirs that are still open")
    sp = add("import", _import, "feed an mbox file or a Maildir through the pipeline", gpg=True)
    sp.add_argument("path", type=Path, help="an mbox file or a Maildir directory")
    sp.add_argument("--inbox", help="the inbox to file every mail under (default: the inbox "
                    "each mail is addressed to, else the first)")
    sp = add("tickets", _tickets, "list cases, with both deadlines in the policy's time zone")
    sp.add_argument("--inbox", help="only this inbox")
    sp.add_argument("--state", choices=[str(s) for s in CaseState], metavar="STATE",
                    help="only cases in this state: " + ", ".join(CaseState))
    sp.add_argument("--json", action="store_true", help="machine-readable, times in UTC")
    sp = add("show", _show, "one case: fields, messages, audit log (times in the policy's "
             "time zone)")
    sp.add_argument("ref", help="the case reference, e.g. SEC-2026-0001 (any case)")
    sp.add_argument("--json", action="store_true", help="machine-readable, times in UTC")
    sp = add("attachments", _attachments,
             "write the attachments of a case's stored mail into a directory, whole", gpg=True)
    sp.add_argument("ref", help="the case reference (any case)")
    sp.add_argument("directory", nargs="?", type=Path, default=Path("."),
                    help="where to write them (made if missing; default: here)")
    sp.add_argument("--mail", type=int, help="only this mail of the case (the number a "
                    "notification names); else each mail's into a subdirectory mail-N")
    sp = add("quarantine", _quarantine, "list mail that could not be handled, with reasons")
    sp.add_argument("--json", action="store_true", help="machine-readable")
    sp = add("inbound", _inbound, "received mail: --ignored lists every mail that opened no "
             "case, with its reason")
    sp.add_argument("--ignored", action="store_true", required=True,
                    help="mail that opened no case (bounce, auto-reply, loop, list, duplicate)")
    sp.add_argument("--since", type=_moment, metavar="YYYY-MM-DD|ISO-8601",
                    help="only mail received at or after this day (UTC) or moment")
    sp.add_argument("--json", action="store_true", help="machine-readable")
    sp = add("digest", _digest, "print the weekly digest now, or queue it to send (--send)")
    sp.add_argument("--send", action="store_true",
                    help="queue it for the [digest] recipients instead of printing it")
    sp.add_argument("--inbox", help="only this inbox")
    listed = sp.add_mutually_exclusive_group()
    listed.add_argument("--due", type=_day, metavar="YYYY-MM-DD",
                        help="list every case with a deadline on this day (within 7 days)")
    listed.add_argument("--broken", action="store_true", help="list every broken promise")
    sp = add("report", _report, "promises kept per inbox and severity over a period "
             "(the compliance report)")
    sp.add_argument("--from", dest="start", type=_day, required=True, metavar="YYYY-MM-DD",
                    help="the first day of the period")
    sp.add_argument("--to", dest="end", type=_day, required=True, metavar="YYYY-MM-DD",
                    help="the last day of the period")
    sp.add_argument("--inbox", help="only this inbox")
    sp.add_argument("--format", choices=["text", "html", "csv", "json"], default="text",
                    help="default: text")
    sp = add("retry", _retry, "process one quarantined mail again", gpg=True)
    sp.add_argument("id", type=int, help="the id `mailbot quarantine` lists")
    sp = add("key", _key, "inbox keys: generate INBOX, export INBOX, import FILE", gpg=True)
    sp.add_argument("action", choices=["generate", "export", "import"],
                    help="generate or export an inbox's key; import a key file")
    sp.add_argument("target", help="an inbox name (generate, export) or a key file (import)")
    sp.add_argument("--expire", default="2y", help="generate: how long the key is valid")
    sp = add("security-txt", _security_txt, "print an RFC 9116 security.txt for the inboxes",
             gpg=True)
    sp.add_argument("--sign", action="store_true", help="clear-sign it with the inbox key")
    sp = add("status", _status, "what the sender and each IMAP watcher are doing (as the "
             "database shows it)")
    sp.add_argument("--json", action="store_true", help="the IMAP watchers, machine-readable")
    sp = add("hall-of-fame", _hall_of_fame, "print the public acknowledgements page: credited "
             "reporters of disclosed cases, as they chose to be named")
    sp.add_argument("--inbox", help="only this inbox")
    sp.add_argument("--format", choices=["md", "html"], default="md",
                    help="Markdown (default) or HTML")
    return p


def _staff_warning(config: Config) -> str | None:
    """What a config without [[staff]] loses: fine to try mailbot out, not to run it."""
    if config.staff:
        return None
    silent = [i.name for i in config.inboxes if not i.notify]
    lost = "no command by mail is obeyed, no escalation is sent"
    if silent:
        lost = f"nobody is notified of new cases in {', '.join(silent)}, " + lost
    return f"no [[staff]]: mail is stored and acknowledged, but {lost}"


async def _run(args: argparse.Namespace, config: Config) -> int:
    from mailbot import daemon

    if warning := _staff_warning(config):
        log.warning("%s", warning)
    await daemon.run(config)
    return 0


async def _migrate(args: argparse.Namespace, config: Config) -> int:
    store = await open_store(config.storage, apply_migrations=False)
    try:
        applied = await store.migrate()
    finally:
        await store.close()
    for m in applied:
        print(f"applied {m.version:04d}_{m.name}")
    if not applied:
        print("database is up to date")
    return 0


async def _copy_store(args: argparse.Namespace, config: Config) -> int:
    from mailbot import copystore
    from mailbot.store.db import is_postgres
    from mailbot.store.pg import redact

    if not is_postgres(args.target):
        print(f"error: --to {redact(args.target)!r} is not a postgresql:// URL",
              file=sys.stderr)
        return 2
    password = await copystore.read_password(args.password_file)
    await copystore.copy_store(args.source, args.target, password=password,
                               verify_only=args.verify_only)
    print("verified: the target matches the source" if args.verify_only else
          "copied and verified; point [storage] database at the new URL")
    return 0


async def _check(args: argparse.Namespace, config: Config) -> int:
    from mailbot.mail.render import Templates

    problems = []
    try:
        templates = Templates()
        for inbox in config.inboxes:
            templates.env.get_template(f"ack.{inbox.language}.txt")
    except Exception as e:
        problems.append(f"templates: {e}")
    if warning := _staff_warning(config):
        print(f"warning: {warning}", file=sys.stderr)
    problems += await asyncio.to_thread(pgpadmin.key_problems, config)
    if not args.offline:
        problems += await _check_database(config)
        problems += await _check_imap(config)
        problems += await _check_relay(config)
    for warning in await _list_warnings(config):
        print(f"warning: {warning}", file=sys.stderr)
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    if problems:
        return 2
    source = config.source or "embedded defaults"
    print(f"{source}: OK ({len(config.inboxes)} inboxes, {len(config.policies)} policies, "
          f"{len(config.staff)} staff)")
    return 0


async def _key(args: argparse.Namespace, config: Config) -> int:
    if args.action == "import":
        for fpr in await asyncio.to_thread(pgpadmin.import_file, config, Path(args.target)):
            print(f"imported {fpr}")
        return 0
    if args.target not in {i.name for i in config.inboxes}:
        print(f"error: no inbox named {args.target!r}", file=sys.stderr)
        return 2
    if args.action == "export":
        print(await asyncio.to_thread(pgpadmin.export, config, args.target), end="")
        return 0
    fpr = await asyncio.to_thread(pgpadmin.generate, config, args.target, args.expire)
    print(f"generated {fpr} for {config.inbox(args.target).address}\n"
          f"add to its [[inbox]]:  pgp_key = \"{fpr}\"")
    return 0


async def _security_txt(args: argparse.Namespace, config: Config) -> int:
    from datetime import UTC, datetime

    print(await asyncio.to_thread(pgpadmin.security_txt, config, datetime.now(UTC), args.sign),
          end="")
    return 0


async def _check_database(config: Config) -> list[str]:
    """A PostgreSQL database: can this host log in, and is its schema this mailbot's?
    (A SQLite file is made by the first `run`: nothing to ask.)"""
    from mailbot.errors import MailbotError
    from mailbot.resources import migrations_dir
    from mailbot.store.migrate import discover
    from mailbot.store.pg import redact

    if config.storage.url is None:
        return []
    try:
        store = await open_store(config.storage, apply_migrations=False)
    except MailbotError as e:
        return [str(e)]
    try:
        found = await store.schema_version()
    finally:
        await store.close()
    known = [m.version for m in discover(migrations_dir() / "postgresql")]
    missing = sum(1 for v in known if found is None or v > found)
    state = (f"schema version {found}" if found else "empty") + (
        f", {missing} migrations to apply (mailbot migrate, or the first run)" if missing
        else ", up to date")
    print(f"database: {redact(config.storage.url)}: OK ({state})")
    return []


async def _check_relay(config: Config) -> list[str]:
    from mailbot.relaycheck import relay_problem

    cfg = config.smtp_out
    if problem := await relay_problem(cfg):
        return [problem]
    if cfg.maildir is not None:
        print(f"outgoing mail: maildir {cfg.maildir}: OK (writable)")
    else:
        steps = ["EHLO"] + (["STARTTLS"] if cfg.tls == "starttls" else []) \
            + (["AUTH"] if cfg.username and cfg.password_file else [])
        print(f"outgoing mail: relay {cfg.host}:{cfg.port}: OK ({', '.join(steps)})")
    return []


async def _queue(args: argparse.Namespace, config: Config) -> int:
    from mailbot import outqueue

    if args.action is None and (args.id is not None or args.all_failed):
        print("error: queue: an id or --all-failed goes with retry or drop", file=sys.stderr)
        return 2
    if args.action == "retry" and (args.id is None) == (not args.all_failed):
        print("error: queue retry: give one ID or --all-failed", file=sys.stderr)
        return 2
    if args.action == "drop" and (args.id is None or args.all_failed):
        print("error: queue drop: give one ID", file=sys.stderr)
        return 2
    store = await _open(config)
    try:
        if args.action == "retry":
            done = await outqueue.retry(store, system_clock,
                                        None if args.all_failed else [args.id])
            print(f"{len(done)} mails due now: the daemon sends them within a minute"
                  if done else "no failed mail to retry")
            return 0
        if args.action == "drop":
            mail = await outqueue.drop(store, system_clock, args.id)
            print(f"outbox {mail.id} ({mail.purpose}) dropped: it will not be sent")
            return 0
        mails = await outqueue.listing(store)
    finally:
        await store.close()
    now = system_clock()
    if args.json:
        print(json.dumps([outqueue.as_json(m, now) for m in mails], indent=2))
        return 0
    if not mails:
        print("the outgoing queue is empty", file=sys.stderr)
        return 0
    print("\n".join(outqueue.as_lines(mails, now)))
    return 0


async def _export(args: argparse.Namespace, config: Config) -> int:
    from mailbot.reporterdata import export

    store = await _open(config)
    try:
        done = await export(store, args.reporter, args.out, args.force)
    finally:
        await store.close()
    print(f"{done.mails} mails in {done.mbox}, {done.cases} cases in {done.fields}")
    return 0


async def _erase(args: argparse.Namespace, config: Config) -> int:
    from mailbot.reporterdata import erase_reporter

    store = await _open(config)
    try:
        cases, mails = await erase_reporter(store, system_clock, args.reporter, args.force)
    finally:
        await store.close()
    print(f"{args.reporter}: erased from {cases} cases; {mails} stored mails deleted")
    return 0


async def _check_imap(config: Config) -> list[str]:
    """Log in and select each watched folder; the errors never carry the password."""
    from mailbot.intake.imap import probe

    problems = []
    for inbox in config.inboxes:
        if inbox.imap is None:
            continue
        where = f"inbox {inbox.name}: IMAP {inbox.imap.mailbox}"
        try:
            found = await asyncio.to_thread(probe, inbox.imap)
        except MailbotError as e:
            problems.append(f"{where}: {e}")
            continue
        folder = found.folder
        print(f"{where}: OK ({folder.exists} messages, UIDVALIDITY {folder.uidvalidity})")
        if found.processed:
            print(f"{where}: processed folder {found.processed}")
        for warning in found.warnings:
            if warning.startswith("processed folder"):  # mail would stay marked in place
                problems.append(f"{where}: {warning}")
            else:
                print(f"warning: {where}: {warning}", file=sys.stderr)
    return problems


async def _list_warnings(config: Config) -> list[str]:
    """Watched IMAP folders whose recent mail mostly comes through a list that is not
    configured as ours (triage/lists.py); read from the database, never changing it."""
    from mailbot.store import ignored
    from mailbot.triage.lists import unconfigured

    watched = [i for i in config.inboxes if i.imap is not None]
    if not watched or (config.storage.url is None and not config.storage.database.exists()):
        return []
    store = await open_store(config.storage, apply_migrations=False)
    found = []
    try:
        if await store.schema_version() is None:
            return []
        for inbox in watched:
            assert inbox.imap is not None
            async with store.read() as db:
                heads = await ignored.recent_heads(db, inbox.imap.mailbox)
            if warning := await asyncio.to_thread(unconfigured, heads, inbox):
                found.append(f"inbox {inbox.name}: IMAP {inbox.imap.mailbox}: {warning}")
    finally:
        await store.close()
    return found


async def _status(args: argparse.Namespace, config: Config) -> int:
    from mailbot.outqueue import sender_state
    from mailbot.store import imap as imap_q
    from mailbot.store import leases as leases_q

    store = await _open(config)
    try:
        async with store.read() as db:
            rows = {r["mailbox"]: r for r in await imap_q.statuses(db)}
            sender = await sender_state(db)
            leases = await leases_q.every(db)
    finally:
        await store.close()
    if not args.json:
        print(f"{'sender':<12} {_outgoing(config):<40} {sender.line(system_clock())}")
        now = iso(system_clock())
        for name, holder, until in leases:  # who leads, with several instances
            held = f"held by {holder} until {until}" if until > now else f"free (was {holder})"
            print(f"{'lease':<12} {name:<40} {held}")
    watched = [(i.name, i.imap.mailbox) for i in config.inboxes if i.imap]
    for inbox, mailbox in watched:  # configured, but no daemon has started it yet
        rows.setdefault(mailbox, {"mailbox": mailbox, "inbox": inbox, "state": "never started"})
    if args.json:
        print(json.dumps(list(rows.values()), indent=2))
        return 0
    for r in rows.values():
        line = f"{r['inbox']:<12} {r['mailbox']:<40} {r['state']}"
        if r.get("since"):
            line += f" since {r['since']}"
        if r.get("uidvalidity") is not None:
            line += (f"; UIDVALIDITY {r['uidvalidity']}, last UID {r['last_uid'] or 0},"
                     f" {r['taken']} taken, {r['unmarked']} not yet marked")
        if r.get("failures"):
            line += f"; {r['failures']} failures in a row"
        if r.get("last_error"):
            line += f"\n{'':<13}last error: {r['last_error']}"
        if r.get("mode"):
            line += f"\n{'':<13}waiting: {r['mode']}"
        if r.get("warnings"):
            line += f"\n{'':<13}warning: {r['warnings']}"
        print(line)
    if not rows:
        print("no IMAP folders are watched", file=sys.stderr)
    return 0


def _outgoing(config: Config) -> str:
    cfg = config.smtp_out
    return f"maildir {cfg.maildir}" if cfg.maildir else f"relay {cfg.host}:{cfg.port}"


async def _open(config: Config) -> Store:
    return await open_store(config.storage)


async def _import(args: argparse.Namespace, config: Config) -> int:
    from mailbot.intake.mbox import import_path, source_problem
    from mailbot.triage.pipeline import Pipeline
    from mailbot.triage.worker import Worker

    if args.inbox and args.inbox not in {i.name for i in config.inboxes}:
        print(f"error: no inbox named {args.inbox!r}", file=sys.stderr)
        return 2
    if problem := source_problem(args.path):  # before the database is made or opened
        print(f"error: {problem}", file=sys.stderr)
        return 1
    if warning := _staff_warning(config):
        log.warning("%s", warning)
    store = await _open(config)
    try:
        result = await import_path(store, config, args.path, system_clock, args.inbox)
        worker = Worker(Pipeline.create(config, store, system_clock), store)
        outcomes = await worker.drain()
    finally:
        await store.close()
    tally: dict[str, int] = {}
    for o in outcomes:
        tally[o.status] = tally.get(o.status, 0) + 1
    opened = sum(1 for o in outcomes if o.opened)
    print(f"stored {result.stored} new mails ({result.duplicates} already stored); "
          + ", ".join([f"processed {len(outcomes)}: {opened} new cases",
                       *(f"{n} {s}" for s, n in sorted(tally.items()))]))
    return 0


async def _tickets(args: argparse.Namespace, config: Config) -> int:
    store = await _open(config)
    try:
        async with store.read() as db:
            rows = await case_q.listing(db, inbox=args.inbox, state=args.state)
    finally:
        await store.close()
    if args.json:
        print(json.dumps([_case_json(r) for r in rows], indent=2))
        return 0
    if rows:
        print(f"{'REF':<16} {'STATE':<10} {'FIRST RESPONSE DUE':<23} {'RESOLUTION DUE':<23} "
              f"{'REPORTER':<30} SUBJECT")
    for r in rows:
        first = "done" if r["first_responded_at"] else _local(config, r["inbox"],
                                                               r["first_response_due"])
        print(f"{r['ref']:<16} {r['state']:<10} {first:<23} "
              f"{_local(config, r['inbox'], r['resolution_due']):<23} "
              f"{r['reporter']:<30} {r['subject'][:60]}")
    if not rows:
        print("no cases", file=sys.stderr)
    return 0


async def _show(args: argparse.Namespace, config: Config) -> int:
    store = await _open(config)
    try:
        async with store.read() as db:
            case = await _case(db, args.ref)
            if case is None:
                print(f"error: no case {args.ref}", file=sys.stderr)
                return 1
            messages = await case_q.messages(db, case["id"])
            events = await case_q.events(db, case["id"])
            assessment = await assess_q.get(db, case["id"])
    finally:
        await store.close()
    data = _case_json(case) | {"messages": messages, "events": events,
                               "assessment": assessment}
    if args.json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return 0
    inbox = case["inbox"]
    for key, value in _case_json(case).items():
        if value is not None:
            print(f"{key + ':':<20} {_local(config, inbox, value)}")
    for line in _assessment_lines(assessment):
        print(line)
    for m in messages:
        arrow = "<-" if m["direction"] == "in" else "->"
        trust = "" if m["trusted"] else " [untrusted]"
        pgp = " [UNDECRYPTABLE]" if not m["readable"] else " [encrypted]" if m["encrypted"] else ""
        if m["signature"] != "none":
            pgp += f" [signature {m['signature']}{' ' + m['signer'] if m['signer'] else ''}]"
        print(f"\n{arrow} {_local(config, inbox, m['date'])} {m['kind']} {m['sender']}{trust}"
              f"{pgp}\n   {m['subject']}")
        for line in m["new_text"].splitlines()[:20]:
            print(f"   | {line}")
    print("\naudit log:")
    for e in events:
        change = f" {e['old'] or ''} -> {e['new']}" if e["new"] else ""
        print(f"  {_local(config, inbox, e['at'])} {e['actor']}: {e['action']}{change}"
              + (f" ({e['detail']})" if e["detail"] else ""))
    return 0


def _assessment_lines(a: dict[str, Any] | None) -> list[str]:
    """The triage help in `show`'s text form: hosts by scope, classes, duplicates."""
    if not a:
        return []
    lines = [f"{'hosts ' + k.replace('_', ' ') + ':':<20} {', '.join(v)}"
             for k, v in a["hosts"].items() if v]
    lines += [f"{'out-of-scope class:':<20} {c['id']} ({c['score']}): {c['clause']}"
              for c in a["out_of_scope_classes"]]
    lines += [f"{'likely duplicate:':<20} {d['ref']} ({d['why']})" for d in a["duplicates"]]
    return lines


async def _attachments(args: argparse.Namespace, config: Config) -> int:
    from mailbot import extract
    from mailbot.triage.crypto import Crypto

    store = await _open(config)
    try:
        async with store.read() as db:
            case = await _case(db, args.ref)
            if case is None:
                print(f"error: no case {args.ref}", file=sys.stderr)
                return 1
            ids = await case_q.inbound_ids(db, case["id"])
            if args.mail is not None and args.mail not in ids:
                print(f"error: mail {args.mail} is not a mail of {args.ref} (its mails: "
                      f"{', '.join(map(str, ids)) or 'none'})", file=sys.stderr)
                return 1
            one = args.mail is not None
            rows = [await inbound_q.get(db, i) for i in ([args.mail] if one else ids)]
    finally:
        await store.close()
    crypto = Crypto.create(config)
    count = 0
    for row in rows:
        assert row is not None
        target = args.directory if one else args.directory / f"mail-{row.id}"
        try:
            found = await asyncio.to_thread(extract.attachments_of, crypto, row.raw)
            if not found:
                print(f"mail {row.id}: no attachments", file=sys.stderr)
                continue
            written = await asyncio.to_thread(extract.write_all, found, target)
        except OSError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        for w in written:
            print(f"{w.path}  {w.size} bytes")
        count += len(written)
    if not count and not one:
        print(f"{args.ref}: no attachments", file=sys.stderr)
    return 0


async def _case(db: Db, ref: str) -> dict[str, Any] | None:
    """A case by its reference, however it is capitalised (`sec-2026-0001` finds it)."""
    return await case_q.get(db, ref) or await case_q.get(db, ref.upper())


def _local(config: Config, inbox: str, value: Any) -> Any:
    """A stored UTC time as people read it: in the time zone of the inbox's policy, with
    the offset (2026-12-23 09:00 +01:00); anything else unchanged."""
    if not isinstance(value, str) or len(value) < 20 or value[10:11] != "T":
        return value
    try:
        moment = datetime.fromisoformat(value)
        zone = ZoneInfo(config.policies[config.inbox(inbox).policy].timezone)
    except (ValueError, KeyError):
        return value
    if moment.tzinfo is None:
        return value
    local = moment.astimezone(zone)
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M} {offset[:3]}:{offset[3:]}"


def _case_json(case: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in case.items() if k != "id"}


async def _hall_of_fame(args: argparse.Namespace, config: Config) -> int:
    from zoneinfo import ZoneInfo

    from mailbot.mail.render import Templates
    from mailbot.triage import credits

    if args.inbox and args.inbox not in {i.name for i in config.inboxes}:
        print(f"error: no inbox {args.inbox}", file=sys.stderr)
        return 1
    policy = config.policies[(config.inbox(args.inbox) if args.inbox else config.inboxes[0]).policy]
    today = system_clock().astimezone(ZoneInfo(policy.timezone)).date().isoformat()
    store = await _open(config)
    try:
        async with store.read() as db:
            rows = await disclosures_q.hall_of_fame(db, today, args.inbox)
    finally:
        await store.close()
    found = credits.entries(rows)
    print(credits.html(Templates(), found) if args.format == "html" else credits.markdown(found),
          end="")
    return 0


async def _quarantine(args: argparse.Namespace, config: Config) -> int:
    store = await _open(config)
    try:
        async with store.read() as db:
            rows = await inbound_q.quarantined(db)
    finally:
        await store.close()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        print(f"{r['id']:>6} {r['received_at']} {r['mail_from'] or '-':<30} {r['reason']}")
    if not rows:
        print("quarantine is empty", file=sys.stderr)
    return 0


async def _inbound(args: argparse.Namespace, config: Config) -> int:
    from mailbot.store import ignored

    store = await _open(config)
    try:
        async with store.read() as db:
            rows = await ignored.listing(db, since=args.since)
    finally:
        await store.close()
    for r in rows:
        r["group"] = ignored.group(str(r["reason"]) if r["reason"] else None)
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    for r in rows:
        print(f"{r['id']:>6} {r['received_at']} {r['inbox']:<10} {r['mail_from'] or '-':<30} "
              f"{r['reason']}")
    if not rows:
        print("no ignored mail" + (f" since {args.since}" if args.since else ""),
              file=sys.stderr)
    elif len(rows) == ignored.LIMIT:
        print(f"only the latest {ignored.LIMIT} shown: narrow with --since", file=sys.stderr)
    return 0


def _moment(text: str) -> str:
    """--since: a day (midnight UTC) or an ISO 8601 moment, as the ISO text rows carry."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date like 2026-12-01 or a time like 2026-12-01T09:00+01:00"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return iso(moment)


async def _digest(args: argparse.Namespace, config: Config) -> int:
    from zoneinfo import ZoneInfo

    from mailbot.clock import iso
    from mailbot.jobs import digest
    from mailbot.jobs.digest_view import full_list
    from mailbot.jobs.words import Words
    from mailbot.mail.render import Templates

    if args.inbox and args.inbox not in {i.name for i in config.inboxes}:
        print(f"error: no inbox named {args.inbox!r}", file=sys.stderr)
        return 2
    store = await _open(config)
    now = system_clock()
    try:
        if args.send:
            if await digest.queue(store, config, Templates(), now, f"digest:manual:{iso(now)}"):
                print(f"digest queued for {', '.join(config.digest.to)}; the daemon sends it")
            else:
                print("no [digest] to addresses configured", file=sys.stderr)
                return 1
            return 0
        digests = await digest.build(store, config, now)
    finally:
        await store.close()
    digests = [d for d in digests if not args.inbox or d.inbox == args.inbox]
    zone = digest.zone_of(config)
    if args.due or args.broken:
        words = Words.of(config.digest.language)
        for d in digests:
            for line in full_list(d, words, ZoneInfo(zone), args.due):
                print(f"{d.inbox}  {line}" if len(digests) > 1 else line)
        return 0
    text, _ = digest.render(Templates(), digests, config.digest.language, zone,
                            config.digest.target)
    print(text)
    return 0


async def _report(args: argparse.Namespace, config: Config) -> int:
    from mailbot.jobs import report, report_view
    from mailbot.mail.render import Templates

    if args.inbox and args.inbox not in {i.name for i in config.inboxes}:
        print(f"error: no inbox named {args.inbox!r}", file=sys.stderr)
        return 2
    if args.end < args.start:
        print(f"error: --to {args.end} is before --from {args.start}", file=sys.stderr)
        return 2
    store = await _open(config)
    try:
        found = await report.build(store, config, args.start, args.end, args.inbox,
                                   system_clock())
    finally:
        await store.close()
    if args.format == "json":
        print(json.dumps(report_view.to_json(found), indent=2, ensure_ascii=False))
    elif args.format == "csv":
        print(report_view.to_csv(found), end="")
    else:
        print(report_view.render(Templates(), found, config.digest.language,
                                 config.digest.target, args.format), end="")
    return 0


def _day(text: str) -> date:
    """A YYYY-MM-DD argument; argparse turns the ValueError into a one-line usage error."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-12-24") from None


async def _retry(args: argparse.Namespace, config: Config) -> int:
    from mailbot.triage.pipeline import Pipeline

    store = await _open(config)
    try:
        async with store.write() as db:
            if not await inbound_q.requeue(db, args.id):
                print(f"error: inbound {args.id} is not in quarantine", file=sys.stderr)
                return 1
        async with store.read() as db:
            row = await inbound_q.get(db, args.id)
        assert row is not None
        outcome = await Pipeline.create(config, store, system_clock).process(row)
    finally:
        await store.close()
    print(f"inbound {args.id}: {outcome.status}"
          + (f" on {outcome.case_ref}" if outcome.case_ref else "")
          + (f" ({outcome.reason})" if outcome.reason else ""))
    return 0 if outcome.status != "quarantined" else 1
