"""IMAP watchers: one thread per watched folder, each taking new mail exactly once.

A session: select the folder; if its UIDVALIDITY is not the one stored, count UIDs afresh
(mail already taken is recognised, see `ledger.py`); finish marking what a crash left
unmarked; then fetch every UID above the last one taken, in batches, commit each batch and
only then mark it on the server. Then IDLE, ended every `idle_check` seconds for a look
of its own (some servers' IDLE reports new mail a minute late), or poll; and do it again.
Any failure (drop, timeout, BYE, refused login, a busy database) ends the session; the
watcher reconnects after an exponential backoff with jitter, capped at `backoff_max`. A
watcher's troubles are its own: they never reach another watcher, the listener or the loop.

Several instances on one database: each folder is watched by one of them at a time, the
holder of the lease `imap:<mailbox>` (leasing.py). A task on the event loop takes or renews
it every RENEW_EVERY seconds; the thread waits while another instance holds it, and a
session ends at once when it is lost (its IDLE is woken). Every batch the thread stores is
fenced by the lease in its own transaction, so mail is never taken by an instance that
lost the folder; a dead holder's folder is taken over within a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import select
import threading
import time
from collections.abc import Callable

from mailbot import leasing
from mailbot.clock import Clock
from mailbot.config import Config, ImapConfig, InboxConfig
from mailbot.errors import ConfigError, TransientError
from mailbot.intake.imap import ImapRefused, Session
from mailbot.intake.ledger import Ledger
from mailbot.leasing import Lease, LeaseLost
from mailbot.store import Store

log = logging.getLogger(__name__)

FIRST_BACKOFF = 1.0
JOIN_TIMEOUT = 5.0
POISON_TRIES = 3  # sessions running in which one message failed before it is set aside


def backoff(failures: int, cap: float) -> float:
    """Seconds to wait after the n-th consecutive failure: doubling, capped, jittered."""
    ceiling = min(cap, FIRST_BACKOFF * 2 ** min(failures - 1, 30))
    return random.uniform(ceiling / 2, ceiling)


class Watcher:
    def __init__(self, inbox: InboxConfig, ledger: Ledger, lease: Lease) -> None:
        assert inbox.imap is not None
        self.inbox = inbox
        self.imap: ImapConfig = inbox.imap
        self.ledger = ledger
        self.lease = lease
        self._held = threading.Event()  # this instance holds the folder's lease
        self._turn = threading.Event()  # held, or stopping: the thread has work
        self.failures = 0
        self._state = ""
        self._last_bug: str | None = None
        self._tries: dict[tuple[int, int], int] = {}  # (UIDVALIDITY, UID) -> failed sessions
        self._waited = False  # the last wait ended without the server reporting new mail
        self._missed = 0  # new mail found by a look after an IDLE that reported nothing
        self._shown: tuple[str, tuple[str, ...]] = ("", ())
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self.thread = threading.Thread(target=self._run, name=f"imap-{inbox.name}", daemon=True)

    @property
    def name(self) -> str:
        return self.imap.mailbox

    def stop(self) -> None:
        """Ask the thread to end; an IDLE in progress is interrupted at once."""
        if not self._stop.is_set():
            self._stop.set()
            self._turn.set()
            os.write(self._wake_w, b"x")

    def granted(self, held: bool) -> None:
        """What the lease keeper found: the thread watches while held; a session in
        progress when it is lost ends at once (its IDLE or poll is woken)."""
        if held:
            self._held.set()
            self._turn.set()
        elif self._held.is_set():
            self._held.clear()
            self._turn.clear()
            os.write(self._wake_w, b"x")

    def _pause(self, seconds: float) -> None:
        """Wait `seconds`, or until stopped or the lease is lost."""
        select.select([self._wake_r], [], [], seconds)

    def _drain_wake(self) -> None:
        """Forget wake-ups already seen (a lost lease), so the next IDLE waits again; a
        stop is seen by `_stop` anyway."""
        os.set_blocking(self._wake_r, False)
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 64):
                pass
        os.set_blocking(self._wake_r, True)

    def close(self) -> None:
        """Release the wake pipe, once the thread is gone."""
        if not self.thread.is_alive():
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._held.is_set():
                self._turn.wait()
                self._drain_wake()
                continue
            try:
                self._session()
            except LeaseLost as e:  # found by a store: wait for the keeper's next look
                log.info("imap %s: %s; standing by", self.name, e)
                self._held.clear()
                self._turn.clear()
            except (TransientError, ConfigError) as e:
                self._failed(str(e))
            except Exception as e:  # a bug: keep the watcher alive, and say so loudly
                error = f"internal error: {e!r}"
                if error != self._last_bug:  # the traceback once; a repeat is a warning line
                    log.exception("imap %s: unexpected error", self.name)
                    self._last_bug = error
                self._failed(error)
        self._report("stopped")

    def _failed(self, error: str) -> None:
        if self._stop.is_set():
            return
        self.failures += 1
        delay = backoff(self.failures, self.imap.backoff_max)
        log.warning("imap %s: %s; reconnecting in %.1fs (failure %d)", self.name, error, delay,
                    self.failures)
        self._report("backing off", error)
        self._stop.wait(delay)

    def _report(self, state: str, error: str | None = None) -> None:
        """Record the state for `mailbot status` (changes only; a failure always)."""
        if state == self._state and error is None:
            return
        if state != self._state:
            log.info("imap %s: %s", self.name, state)
        self._state = state
        try:
            self.ledger.call(self.ledger.report(self.inbox, self.imap, state, error,
                                                self.failures))
        except Exception as e:  # the state is a courtesy; the mail is what matters
            log.warning("imap %s: cannot record state %r: %s", self.name, state, e)

    def _session(self) -> None:
        self._report("connecting")
        session = Session.open(self.imap, self.imap.password())
        try:
            session.prepare_processed()
            uidvalidity, last, resync_below = self._resume(session)
            settled = False
            selected = time.monotonic()
            while not self._stop.is_set():
                if not self._held.is_set():
                    raise LeaseLost(f"lease {self.lease.name}: another instance holds it now")
                if not settled:
                    self._report("syncing")
                before = last
                last = self._sync(session, uidvalidity, last, resync_below)
                if self._waited and session.can_idle and last > before:
                    self._missed += 1  # the IDLE said nothing, the check found mail
                self._show_mode(session)
                if not settled:
                    self._report("idle" if session.can_idle else "polling")
                    self.failures = 0
                    settled = True
                told = False
                if session.can_idle:
                    told = session.idle(min(self.imap.idle_check or self.imap.poll_interval,
                                            self.imap.poll_interval), self._wake_r)
                else:
                    self._pause(self.imap.poll_interval)
                if not self._stop.is_set():
                    self._drain_wake()  # a lost lease is seen by `_held` at the loop's top
                self._waited = not told
                if told or self._stop.is_set():
                    continue
                # A quiet IDLE: look for new mail anyway (the UID SEARCH of the next sync),
                # and every poll_interval select again to notice a new UIDVALIDITY.
                if time.monotonic() - selected >= self.imap.poll_interval or not session.can_idle:
                    selected = time.monotonic()
                    if session.reselect().uidvalidity != uidvalidity:
                        uidvalidity, last, resync_below = self._resume(session)
                        self._waited = False
                        settled = False
        finally:
            self._waited = False
            session.close()

    def _show_mode(self, session: Session) -> None:
        """Record how this watcher waits for mail and why, and its warnings (on change)."""
        imap = self.imap
        if not session.can_idle:
            mode = f"polling every {imap.poll_interval:g}s: the server does not offer IDLE"
        elif not imap.idle_check:
            mode = "IDLE alone (idle_check = 0): the server's notices are trusted"
        else:
            mode = f"IDLE, with a look every {imap.idle_check:g}s (idle_check)"
            if self._missed:
                mode += (f": the server's IDLE stayed silent about new mail {self._missed}"
                         " times; the looks found it")
        shown = (mode, tuple(session.warnings.values()))
        if shown == self._shown:
            return
        for warning in shown[1]:
            if warning not in self._shown[1]:
                log.error("imap %s: %s", self.name, warning)
        self._shown = shown
        try:
            self.ledger.call(self.ledger.mode(imap, *shown))
        except Exception as e:  # the mode is a courtesy; the mail is what matters
            log.warning("imap %s: cannot record mode: %s", self.name, e)

    def _resume(self, session: Session) -> tuple[int, int, int]:
        """(UIDVALIDITY, last UID taken, resync_below) for this session, after marking what
        an earlier session stored but did not mark."""
        folder = session.folder
        stored = self.ledger.call(self.ledger.resume(self.name))
        if stored.uidvalidity == folder.uidvalidity:
            if stored.unmarked:
                log.info("imap %s: marking %d mails stored before an interruption",
                         self.name, len(stored.unmarked))
                self._mark(session, folder.uidvalidity, list(stored.unmarked))
            return folder.uidvalidity, stored.last_uid, stored.resync_below
        # A new folder, or a folder the server renumbered: every UID present now may be mail
        # taken before under the old numbering.
        resync_below = session.uidnext() if stored.uidvalidity is not None else 0
        if stored.uidvalidity is not None:
            log.warning("imap %s: UIDVALIDITY changed from %d to %d; re-syncing the folder"
                        " (mail already taken is recognised by Message-ID and digest)",
                        self.name, stored.uidvalidity, folder.uidvalidity)
        self.ledger.call(self.ledger.new_generation(self.inbox, self.imap, folder.uidvalidity,
                                                    resync_below, self.lease))
        return folder.uidvalidity, 0, resync_below

    def _sync(self, session: Session, uidvalidity: int, last: int, resync_below: int) -> int:
        """Take every message above UID `last`; return the new last UID."""
        uids = session.uids_above(last)
        for batch in session.batches(uids):
            if self._stop.is_set():
                break
            last = self._take(session, uidvalidity, resync_below, batch, last)
        return last

    def _take(self, session: Session, uidvalidity: int, resync_below: int, batch: list[int],
              last: int) -> int:
        """Fetch, store and mark one batch. A batch that fails for one of its messages (the
        server refuses it, or taking it raises) is taken message by message; a message that
        fails POISON_TRIES sessions running is quarantined as unreadable (it stays on the
        server, unmarked) and the folder goes on past it."""
        failed: Exception | None = None
        try:
            fetched = session.fetch(batch)
            self.ledger.call(self.ledger.take(self.inbox, self.imap, uidvalidity, resync_below,
                                              fetched, self.lease))
        except ImapRefused as e:  # before TransientError, which it also is
            failed = e
        except TransientError:
            raise  # the connection or the database: the session ends and is tried again
        except Exception as e:
            failed = e
        if failed is not None:
            return self._poisoned(session, uidvalidity, resync_below, batch, last, failed)
        for uid in batch:
            self._tries.pop((uidvalidity, uid), None)
        self._mark(session, uidvalidity, [uid for uid, _ in fetched])
        return max(last, *batch)

    def _poisoned(self, session: Session, uidvalidity: int, resync_below: int,
                  batch: list[int], last: int, e: Exception) -> int:
        if len(batch) > 1:
            for uid in batch:
                last = self._take(session, uidvalidity, resync_below, [uid], last)
            return last
        uid = batch[0]
        tries = self._tries.get((uidvalidity, uid), 0) + 1
        self._tries[(uidvalidity, uid)] = tries
        if tries < POISON_TRIES:
            raise e
        reason = str(e) if isinstance(e, ImapRefused) else f"internal error: {e!r}"
        inbound_id = self.ledger.call(self.ledger.unreadable(self.inbox, self.imap, uidvalidity,
                                                             uid, reason, self.lease))
        log.error("imap %s: UID %d failed %d sessions running (%s); quarantined as inbound %d,"
                  " left on the server", self.name, uid, tries, reason, inbound_id,
                  exc_info=not isinstance(e, ImapRefused))
        del self._tries[(uidvalidity, uid)]
        return max(last, uid)

    def _mark(self, session: Session, uidvalidity: int, uids: list[int]) -> None:
        session.mark(uids)
        self.ledger.call(self.ledger.marked(self.name, uidvalidity, uids))


class Watchers:
    """The daemon's watcher threads, and the tasks that keep their folders' leases: started
    together, stopped together."""

    def __init__(self, watchers: list[Watcher], ledger: Ledger) -> None:
        self.watchers = watchers
        self.ledger = ledger
        self.keepers: list[asyncio.Task[None]] = []

    @classmethod
    def start(cls, config: Config, store: Store, clock: Clock,
              on_stored: Callable[[], None]) -> Watchers:
        ledger = Ledger(store, clock, on_stored, asyncio.get_running_loop())
        watchers = [Watcher(inbox, ledger, Lease(store, f"imap:{inbox.imap.mailbox}", clock))
                    for inbox in config.inboxes if inbox.imap]
        started = cls(watchers, ledger)
        for w in watchers:
            log.info("imap %s: watching for inbox %s", w.name, w.inbox.name)
            w.thread.start()
            started.keepers.append(asyncio.create_task(started.keep(w), name=f"lease-{w.name}"))
        return started

    async def keep(self, w: Watcher) -> None:
        """Take or renew the folder's lease, and tell the thread, until stopped."""
        standing_by = False
        while True:
            held = await w.lease.hold()
            if held:
                standing_by = False
            elif not standing_by:  # (its state row is the holder's to write)
                standing_by = True
                log.info("imap %s: another instance watches it; standing by", w.name)
            w.granted(held)
            await asyncio.sleep(leasing.RENEW_EVERY)

    async def stop(self) -> None:
        """Stop every thread; wait for them off the loop (they may need it to finish); hand
        the folders' leases on."""
        for task in self.keepers:
            task.cancel()
        for task in self.keepers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.keepers = []
        for w in self.watchers:
            w.stop()
        for w in self.watchers:
            await asyncio.to_thread(w.thread.join, JOIN_TIMEOUT)
            if w.thread.is_alive():
                log.warning("imap %s: thread still busy at shutdown; abandoning it", w.name)
            w.close()
            await w.lease.release()
        self.ledger.closed = True
        self.watchers = []
