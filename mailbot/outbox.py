"""Deliver queued mail: over SMTP with aiosmtplib, or into a local maildir.

Rows are rendered when queued, so this only moves bytes. A row is marked sent right after
the relay accepts it; retries back off exponentially with jitter while the relay is down,
and a 5xx answer marks the row failed for a human to look at.

On PostgreSQL rows are claimed before they are sent (store/claims.py): several instances
sharing the database never send the same row while its claim lives (leasing.CLAIM, renewed
while the batch is sent); marking a row sent, retried or failed ends its claim. An SQLite
database has one daemon, so one sender: it reads what is due, as it always did.

Between the relay's 250 and the row's update the sender may wait for the database (the
worker holds it for a batch); a crash there would send the mail again. On SQLite the 250 is
first appended to a journal next to the database, in the same step as the answer arrives,
and a restart marks what the journal names as sent before sending anything. On PostgreSQL
there is no journal (another host could not read it): an instance that dies between a 250
and its mark leaves that row claimed; once the instance is seen gone (its connections
closed) or the claim lapses, another instance sends it again. So a mail goes twice only
when its instance dies in that window, and then once more at most (the claim keeps a third
instance off while the second sends). While the database alone fails at the mark, the
instance remembers the row and marks it before sending anything more.

No single row stops the sender: a row that cannot go through this relay at all (a
non-ASCII local part without SMTPUTF8) fails at once with that reason, and anything
unexpected while sending one row is logged with its id and retried with backoff, a few
times, then failed. A failed row is handed to `on_failed` in the transaction that marks it
(the daemon tells staff there).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path

import aiosmtplib

from mailbot import leasing
from mailbot.clock import Clock, iso
from mailbot.config import SmtpOutConfig
from mailbot.errors import DeliveryDeferred, DeliveryFailed, StoreBusy, TransientError
from mailbot.mail import intl
from mailbot.private import make_dirs, tighten
from mailbot.store import Db, Store
from mailbot.store import claims as claims_q
from mailbot.store import outbox as outbox_q
from mailbot.store.outbox import OutboxRow
from mailbot.waiting import wait_any

log = logging.getLogger(__name__)

MAX_BACKOFF = 3600.0
BATCH = 50
INTERNAL_ATTEMPTS = 5  # a row that keeps raising something unexpected fails after these

# Told of a row failed for good, inside the transaction that marks it: (db, row, reason).
FailureHook = Callable[[Db, OutboxRow, str], Awaitable[None]]


class Sender:
    def __init__(self, store: Store, config: SmtpOutConfig, clock: Clock,
                 on_failed: FailureHook | None = None) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.on_failed = on_failed
        self._wake = asyncio.Event()
        # Without a journal (PostgreSQL): ids the relay took whose mark the database refused;
        # marked before anything more is sent (our own claims would let us send them again).
        self._unmarked: set[int] = set()
        # PostgreSQL needs none: a claimed row's lease does the journal's job there.
        self.journal = SentJournal(Path(f"{store.path}.sent")) \
            if store.path is not None and str(store.path) != ":memory:" else None

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self._run(stop)
        finally:
            if self.journal:
                self.journal.close()

    async def _run(self, stop: asyncio.Event) -> None:
        replayed, backoff = False, 1.0
        while not stop.is_set():
            self._wake.clear()
            try:
                if not replayed:
                    await self._replay_journal()
                    replayed = True
                sent_any = await self.send_due(stop)
                if not sent_any and self.journal:
                    with contextlib.suppress(OSError):  # kept lines are replayed harmlessly
                        self.journal.clear()  # every line in it is in the database by now
                backoff = 1.0
            except TransientError as e:
                # The database cannot record what the relay took (disk full, locked): send
                # nothing more until the journal's lines are recorded, or they go twice.
                log.warning("outbox: %s; retrying in %.0fs", e, backoff)
                replayed = False
                await wait_any(stop, None, backoff)
                backoff = min(backoff * 2, 60.0)
                continue
            except Exception:  # a bug outside any one row: the sender lives and tries again
                log.exception("outbox: unexpected error; retrying in %.0fs", backoff)
                replayed = False
                await wait_any(stop, None, backoff)
                backoff = min(backoff * 2, 60.0)
                continue
            if sent_any:
                continue
            await wait_any(stop, self._wake, await self._idle_seconds())

    async def _idle_seconds(self) -> float:
        try:
            async with self.store.read() as db:
                nxt = await outbox_q.next_attempt(db, self.store.instance)
        except TransientError:
            return 5.0
        if nxt is None:
            return 60.0
        delta = (datetime.fromisoformat(nxt) - self.clock()).total_seconds()
        return min(max(delta, 0.05), 60.0)

    async def send_due(self, stop: asyncio.Event | None = None) -> bool:
        """Send one batch of due mail; True when anything was attempted."""
        if self.store.path is not None:
            # SQLite: this daemon is the one sender of its database, and the journal covers
            # its crashes; sending must not wait for a write (a full disk) either.
            async with self.store.read() as db:
                rows = await outbox_q.due(db, iso(self.clock()), BATCH)
            if rows:
                await self._send(rows, stop)
            return bool(rows)
        rows = await self._claim()
        if not rows:
            return False
        async with leasing.kept(self.store, "outbox", [r.id for r in rows], self.clock):
            await self._send(rows, stop)
        # Rows left unsent (a stop, a dropped connection) go back for any instance.
        async with self.store.statement() as db:
            await claims_q.release(db, "outbox", self.store.instance, [r.id for r in rows])
        return True

    async def _claim(self) -> list[OutboxRow]:
        me, now = self.store.instance, self.clock()
        async with self.store.read() as db:  # claims of an instance that is gone: freed
            dead = await claims_q.absent(db, await claims_q.holders(db, "outbox", me))
        async with self.store.write() as db:
            if dead:
                log.info("outbox: freeing the claims of %s, gone", ", ".join(dead))
                await claims_q.release_holders(db, "outbox", dead)
            ids = await claims_q.claim_outbox(db, me, iso(now), iso(now + leasing.CLAIM),
                                              BATCH)
        if not ids:
            return []
        async with self.store.read() as db:
            return await outbox_q.claimed(db, ids)

    async def _send(self, rows: list[OutboxRow], stop: asyncio.Event | None) -> None:
        if self.config.maildir is not None:
            for row in rows:
                try:
                    await asyncio.to_thread(_write_maildir, self.config.maildir, row)
                except OSError as e:
                    await self._failed(row, DeliveryDeferred(None, f"maildir: {e}"))
                    continue
                except Exception as e:
                    await self._unexpected(row, e)
                    continue
                await self._sent(row)
            return
        await self._send_smtp(rows, stop)

    async def _send_smtp(self, rows: list[OutboxRow], stop: asyncio.Event | None) -> None:
        cfg = self.config
        smtp = aiosmtplib.SMTP(
            hostname=cfg.host, port=cfg.port, timeout=cfg.timeout,
            use_tls=cfg.tls == "implicit", start_tls=cfg.tls == "starttls",
        )
        try:
            try:
                await smtp.connect()
                if cfg.username and cfg.password_file:
                    password = await asyncio.to_thread(cfg.password_file.read_text)
                    await smtp.login(cfg.username, password.strip())
                if smtp.is_ehlo_or_helo_needed:
                    try:  # what it offers (SMTPUTF8) is known only after EHLO
                        await smtp.ehlo()
                    except aiosmtplib.SMTPHeloError:
                        await smtp.helo()  # an old relay: plain SMTP, no extensions
            except (aiosmtplib.SMTPException, OSError) as e:
                err = _translate(e)
                for row in rows:
                    await self._failed(row, err)
                return
            utf8 = smtp.supports_extension("smtputf8")
            for row in rows:
                if stop is not None and stop.is_set():
                    return
                try:
                    env = self._envelope(row, utf8)
                except intl.Unsendable as e:
                    await self._refused(row, str(e) if utf8 or not row.rcpt_to else
                                        f"{e}; the relay {cfg.host}:{cfg.port} does not offer"
                                        " SMTPUTF8")
                    continue
                except Exception as e:
                    await self._unexpected(row, e)
                    continue
                try:
                    await smtp.sendmail(env.mail_from, list(env.rcpt_to), env.raw,
                                        mail_options=list(env.options))
                except (aiosmtplib.SMTPException, OSError) as e:
                    await self._failed(row, _translate(e))
                    if not smtp.is_connected:
                        return  # the rest stay due and go in the next round
                    continue
                except Exception as e:
                    await self._unexpected(row, e)
                    smtp.close()  # the session is in an unknown state: the rest go next round
                    return
                if self.journal:
                    self.journal.record(row.id)  # no await since the 250: see the docstring
                else:
                    self._unmarked.add(row.id)
                await self._sent(row)
        finally:
            if smtp.is_connected:
                try:
                    await smtp.quit()
                except (aiosmtplib.SMTPException, OSError):
                    smtp.close()

    async def _replay_journal(self) -> None:
        """Rows a crash left unmarked after the relay took them: marked, never sent again."""
        if self._unmarked:  # the database failed at the mark: this process remembers
            async with self.store.write() as db:
                for outbox_id in sorted(self._unmarked):
                    await outbox_q.mark_sent(db, outbox_id, iso(self.clock()))
            self._unmarked.clear()
        if self.journal is None:
            return
        ids = await asyncio.to_thread(self.journal.read)
        if ids:
            async with self.store.write() as db:
                for outbox_id in ids:
                    await outbox_q.mark_sent(db, outbox_id, iso(self.clock()))
            log.info("outbox: %d sent mails recorded from the journal", len(ids))
        try:
            self.journal.clear()
        except OSError as e:  # cannot even open it: the database will not take much either
            raise StoreBusy(f"sent journal {self.journal.path}: {e}") from e

    @staticmethod
    def _envelope(row: OutboxRow, smtputf8: bool) -> intl.Envelope:
        if not row.rcpt_to:
            raise intl.Unsendable(f"outbox {row.id} names no valid recipient")
        return intl.envelope(row.mail_from, row.rcpt_to, row.raw, smtputf8)

    async def _unexpected(self, row: OutboxRow, e: Exception) -> None:
        """A bug while sending this row: retried a few times, then failed; logged once per
        attempt, with the traceback."""
        reason = f"internal error: {type(e).__name__}: {e}"
        if row.attempts + 1 >= INTERNAL_ATTEMPTS:
            log.error("outbox %d %s: unexpected error while sending (attempt %d)", row.id,
                      row.message_id, row.attempts + 1, exc_info=e)
            await self._refused(row, reason, logged=True)
            return
        delay = await self._retry(row, reason)
        log.error("outbox %d %s: unexpected error while sending (attempt %d); retry in %.0fs",
                  row.id, row.message_id, row.attempts + 1, delay, exc_info=e)

    async def _refused(self, row: OutboxRow, reason: str, logged: bool = False) -> None:
        """Failed for good, by our own decision rather than a relay's 5xx."""
        async with self.store.write() as db:
            await outbox_q.mark_failed(db, row.id, error=reason)
            if self.on_failed is not None:
                await self.on_failed(db, row, reason)
        if not logged:
            log.error("outbox %d %s: failed: %s", row.id, row.message_id, reason)

    async def _sent(self, row: OutboxRow) -> None:
        async with self.store.statement() as db:
            await outbox_q.mark_sent(db, row.id, iso(self.clock()))
        self._unmarked.discard(row.id)
        log.info("outbox %d %s: sent (%s)", row.id, row.message_id, row.purpose)

    async def _failed(self, row: OutboxRow, err: DeliveryDeferred | DeliveryFailed) -> None:
        if isinstance(err, DeliveryFailed):
            async with self.store.write() as db:
                await outbox_q.mark_failed(db, row.id, error=str(err))
                if self.on_failed is not None:
                    await self.on_failed(db, row, f"the relay refused it: {err}")
            log.error("outbox %d %s: refused: %s", row.id, row.message_id, err)
            return
        delay = await self._retry(row, str(err))
        log.warning("outbox %d: deferred (%s); retry in %.0fs", row.id, err, delay)

    async def _retry(self, row: OutboxRow, reason: str) -> float:
        """Due again after a backoff that doubles with each attempt; the delay in seconds."""
        delay: float = min(MAX_BACKOFF, 5.0 * 2 ** min(row.attempts, 12))
        delay *= random.uniform(0.8, 1.2)
        async with self.store.write() as db:
            await outbox_q.mark_retry(db, row.id, next_at=iso(self.clock() + timedelta(
                seconds=delay)), error=reason)
        return delay


class SentJournal:
    """Outbox ids the relay accepted, one per line, each written with one pwrite(2).

    Room for a few thousand lines is reserved up front and cleared by overwriting it with
    zeros, so a full disk cannot stop a record. Not synced: it guards against a crash of
    the process (the page cache survives that), not against a power failure, like the
    commits it stands in for until they are made."""

    SPACE = 64 * 1024

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._end = 0  # where the next line goes

    def open(self) -> int:
        if self._fd is None:
            tighten(self.path)  # one an older version left readable to others
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._end = os.fstat(self._fd).st_size  # what is there is cleared by clear()
            with contextlib.suppress(OSError):
                os.posix_fallocate(self._fd, 0, self.SPACE)
        return self._fd

    def record(self, outbox_id: int) -> None:
        line = b"%d\n" % outbox_id
        try:
            os.pwrite(self.open(), line, self._end)
        except OSError as e:
            log.warning("outbox %d: sent, but not journalled (%s): a crash now sends it again",
                        outbox_id, e)
            return
        self._end += len(line)

    def read(self) -> list[int]:
        try:
            text = self.path.read_bytes()
        except FileNotFoundError:
            return []
        # A line cut short by the crash has no newline: its mail was not recorded as taken;
        # the reserved room reads as NUL bytes.
        return [int(line) for line in text.split(b"\n")[:-1] if line.strip().isdigit()]

    def clear(self) -> None:
        """Forget every line (all are in the database): zeros over them, keeping the room."""
        fd = self.open()
        if self._end:
            os.pwrite(fd, bytes(self._end), 0)
            self._end = 0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _translate(e: BaseException) -> DeliveryDeferred | DeliveryFailed:
    """aiosmtplib's errors into ours: 5xx is final, anything else is worth a retry."""
    if isinstance(e, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in e.recipients]
        if codes and all(500 <= c < 600 for c in codes):
            return DeliveryFailed(codes[0], str(e))
        return DeliveryDeferred(codes[0] if codes else None, str(e))
    if isinstance(e, aiosmtplib.SMTPResponseException) and 500 <= e.code < 600:
        return DeliveryFailed(e.code, e.message)
    if isinstance(e, aiosmtplib.SMTPResponseException):
        return DeliveryDeferred(e.code, e.message)
    return DeliveryDeferred(None, f"{type(e).__name__}: {e}")


def _write_maildir(maildir: Path, row: OutboxRow) -> None:
    """Write into maildir/new; the name is fixed per row so a re-send replaces, not repeats."""
    for sub in ("tmp", "new", "cur"):
        # Private whatever the umask: the mail holds case text and staff reply tokens.
        make_dirs(maildir / sub)
    name = f"outbox-{row.id:010d}.{socket.gethostname().replace('/', '_')}"
    tmp = maildir / "tmp" / name
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()  # left by a crash, perhaps with the modes of an older version
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
        f.write(row.raw)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, maildir / "new" / name)
