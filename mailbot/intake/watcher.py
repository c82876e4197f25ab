"""IMAP watchers: one thread per watched folder, each taking new mail exactly once.

A session: select the folder; if its UIDVALIDITY is not the one stored, count UIDs afresh
(mail already taken is recognised, see `ledger.py`); finish marking what a crash left
unmarked; then fetch every UID above the last one taken, in batches, commit each batch and
only then mark it on the server. Then IDLE (or poll) and do it again. Any failure (drop,
timeout, BYE, refused login, a busy database) ends the session; the watcher reconnects
after an exponential backoff with jitter, capped at `backoff_max`. A watcher's troubles are
its own: they never reach another watcher, the listener or the loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
from collections.abc import Callable

from mailbot.clock import Clock
from mailbot.config import Config, ImapConfig, InboxConfig
from mailbot.errors import ConfigError, TransientError
from mailbot.intake.imap import ImapRefused, Session
from mailbot.intake.ledger import Ledger
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
    def __init__(self, inbox: InboxConfig, ledger: Ledger) -> None:
        assert inbox.imap is not None
        self.inbox = inbox
        self.imap: ImapConfig = inbox.imap
        self.ledger = ledger
        self.failures = 0
        self._state = ""
        self._last_bug: str | None = None
        self._tries: dict[tuple[int, int], int] = {}  # (UIDVALIDITY, UID) -> failed sessions
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
            os.write(self._wake_w, b"x")

    def close(self) -> None:
        """Release the wake pipe, once the thread is gone."""
        if not self.thread.is_alive():
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._session()
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
            if self.imap.processed_folder:
                session.ensure_folder(self.imap.processed_folder)
            uidvalidity, last, resync_below = self._resume(session)
            settled = False
            while not self._stop.is_set():
                if not settled:
                    self._report("syncing")
                last = self._sync(session, uidvalidity, last, resync_below)
                if not settled:
                    self._report("idle" if session.can_idle else "polling")
                    self.failures = 0
                    settled = True
                told = False
                if session.can_idle:
                    told = session.idle(self.imap.poll_interval, self._wake_r)
                else:
                    self._stop.wait(self.imap.poll_interval)
                if not told and not self._stop.is_set() and (
                        session.reselect().uidvalidity != uidvalidity):
                    uidvalidity, last, resync_below = self._resume(session)
                    settled = False
        finally:
            session.close()

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
        resync_below = folder.uidnext if stored.uidvalidity is not None else 0
        if stored.uidvalidity is not None:
            log.warning("imap %s: UIDVALIDITY changed from %d to %d; re-syncing the folder"
                        " (mail already taken is recognised by Message-ID and digest)",
                        self.name, stored.uidvalidity, folder.uidvalidity)
        self.ledger.call(self.ledger.new_generation(self.inbox, self.imap, folder.uidvalidity,
                                                    resync_below))
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
                                              fetched))
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
                                                             uid, reason))
        log.error("imap %s: UID %d failed %d sessions running (%s); quarantined as inbound %d,"
                  " left on the server", self.name, uid, tries, reason, inbound_id,
                  exc_info=not isinstance(e, ImapRefused))
        del self._tries[(uidvalidity, uid)]
        return max(last, uid)

    def _mark(self, session: Session, uidvalidity: int, uids: list[int]) -> None:
        session.mark(uids)
        self.ledger.call(self.ledger.marked(self.name, uidvalidity, uids))


class Watchers:
    """The daemon's watcher threads: started together, stopped together."""

    def __init__(self, watchers: list[Watcher], ledger: Ledger) -> None:
        self.watchers = watchers
        self.ledger = ledger

    @classmethod
    def start(cls, config: Config, store: Store, clock: Clock,
              on_stored: Callable[[], None]) -> Watchers:
        ledger = Ledger(store, clock, on_stored, asyncio.get_running_loop())
        watchers = [Watcher(inbox, ledger) for inbox in config.inboxes if inbox.imap]
        for w in watchers:
            log.info("imap %s: watching for inbox %s", w.name, w.inbox.name)
            w.thread.start()
        return cls(watchers, ledger)

    async def stop(self) -> None:
        """Stop every thread; wait for them off the loop (they may need it to finish)."""
        for w in self.watchers:
            w.stop()
        for w in self.watchers:
            await asyncio.to_thread(w.thread.join, JOIN_TIMEOUT)
            if w.thread.is_alive():
                log.warning("imap %s: thread still busy at shutdown; abandoning it", w.name)
            w.close()
        self.ledger.closed = True
        self.watchers = []
