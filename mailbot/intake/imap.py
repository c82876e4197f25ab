"""The IMAP adapter (imapclient): one blocking connection to one folder, errors translated.

imapclient blocks and is not thread-safe, so a session belongs to one thread: a watcher's
(`intake/watcher.py`) or the one `mailbot check` borrows. Every library and socket error
leaves this module as an `ImapError` (the `map_httpcore_exceptions` habit of httpx), and no
message names the password.
"""

from __future__ import annotations

import contextlib
import select
import ssl
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError
from imapclient.imapclient import _parse_untagged_response

from mailbot.config import ImapConfig
from mailbot.errors import ImapError, ImapLoginRefused, ImapNoFolder

SEEN = rb"\Seen"
DELETED = rb"\Deleted"
KEYWORD = b"$MailbotTaken"
IDLE_MAX = 25 * 60.0  # RFC 2177: a server may drop an IDLE after 29 minutes; renew well before
BATCH_COUNT = 200  # messages per FETCH (and per commit)
BATCH_BYTES = 16 * 1024 * 1024  # ... unless they add up to more than this


class ImapRefused(ImapError):
    """The server answered NO or BAD: about what was asked (a message it cannot give, say),
    not the connection."""


@dataclass(frozen=True, slots=True)
class Folder:
    """The selected folder as the server described it."""

    uidvalidity: int
    uidnext: int
    exists: int


@contextlib.contextmanager
def _translate(cfg: ImapConfig, doing: str) -> Iterator[None]:
    where = f"{cfg.host}:{cfg.port}"
    try:
        yield
    except ImapError:
        raise
    except LoginError as e:
        raise ImapLoginRefused(f"login as {cfg.username!r} refused by {where}: "
                               f"{_text(e)}") from None
    except ssl.SSLError as e:
        raise ImapError(f"TLS with {where} failed: {e.reason or e}") from None
    except TimeoutError:
        raise ImapError(f"{where} did not answer within {cfg.timeout:g}s ({doing})") from None
    except IMAPClientAbortError as e:
        raise ImapError(f"connection to {where} lost ({doing}): {_text(e)}") from None
    except IMAPClientError as e:
        raise ImapRefused(f"{where} refused {doing}: {_text(e)}") from None
    except OSError as e:
        raise ImapError(f"cannot talk to {where} ({doing}): {e.strerror or e}") from None


def _text(e: Exception) -> str:
    s = str(e.args[0] if e.args else e)
    return s[2:-1] if s.startswith(("b'", 'b"')) else s


class Session:
    """A logged-in connection with the watched folder selected."""

    def __init__(self, cfg: ImapConfig, client: IMAPClient, folder: Folder) -> None:
        self.cfg = cfg
        self.client = client
        self.folder = folder
        self.can_idle = client.has_capability("IDLE")

    @classmethod
    def open(cls, cfg: ImapConfig, password: str) -> Session:
        """Connect, secure, log in and select `cfg.folder` (ImapError says which step failed)."""
        with _translate(cfg, "connect"):
            client = IMAPClient(cfg.host, cfg.port, ssl=cfg.tls == "implicit",
                                ssl_context=_tls_context(cfg), timeout=cfg.timeout)
        try:
            with _translate(cfg, "STARTTLS"):
                if cfg.tls == "starttls":
                    if not client.has_capability("STARTTLS"):
                        raise ImapError(f"{cfg.host}:{cfg.port} does not offer STARTTLS")
                    client.starttls(_tls_context(cfg))
            with _translate(cfg, "LOGIN"):
                client.login(cfg.username, password)
            folder = _select(cfg, client)
        except BaseException:
            with contextlib.suppress(Exception):
                client.shutdown()
            raise
        return cls(cfg, client, folder)

    def reselect(self) -> Folder:
        """Select the folder again: what a poll does, and how a folder deleted, recreated or
        renumbered (a new UIDVALIDITY) is noticed while IDLE was told nothing."""
        self.folder = _select(self.cfg, self.client)
        return self.folder

    def ensure_folder(self, name: str) -> None:
        with _translate(self.cfg, f"CREATE {name}"):
            if not self.client.folder_exists(name):
                self.client.create_folder(name)

    def uids_above(self, last: int) -> list[int]:
        """UIDs of the messages after `last`, in order."""
        with _translate(self.cfg, "UID SEARCH"):
            found = self.client.search(["UID", f"{last + 1}:*"])
        # `n:*` always matches the highest UID, even one below n (RFC 3501 6.4.8).
        return sorted(uid for uid in found if uid > last)

    def batches(self, uids: Sequence[int]) -> Iterator[list[int]]:
        """`uids` in FETCH-sized groups: at most BATCH_COUNT mails or BATCH_BYTES bytes."""
        for start in range(0, len(uids), 1000):
            chunk = list(uids[start:start + 1000])
            with _translate(self.cfg, "FETCH RFC822.SIZE"):
                sizes = self.client.fetch(chunk, [b"RFC822.SIZE"])
            batch: list[int] = []
            total = 0
            for uid in chunk:
                size = int(sizes.get(uid, {}).get(b"RFC822.SIZE", 0))
                if batch and (len(batch) >= BATCH_COUNT or total + size > BATCH_BYTES):
                    yield batch
                    batch, total = [], 0
                batch.append(uid)
                total += size
            if batch:
                yield batch

    def fetch(self, uids: Sequence[int]) -> list[tuple[int, bytes]]:
        """The raw bytes of each message, unread: BODY.PEEK[] leaves \\Seen alone."""
        with _translate(self.cfg, "UID FETCH"):
            found = self.client.fetch(list(uids), [b"BODY.PEEK[]"])
        # A message expunged by someone else in the meantime is simply absent.
        return [(uid, bytes(found[uid][b"BODY[]"])) for uid in sorted(found)
                if b"BODY[]" in found[uid]]

    def mark(self, uids: Sequence[int]) -> None:
        """Tell the server these messages are taken: a flag, or a move to processed_folder."""
        if not uids:
            return
        target = self.cfg.processed_folder
        with _translate(self.cfg, "marking taken mail"):
            if target is None:
                flag = SEEN if self.cfg.mark == "seen" else KEYWORD
                self.client.add_flags(list(uids), [flag], silent=True)
            elif self.client.has_capability("MOVE"):
                self.client.move(list(uids), target)
            else:
                self.client.copy(list(uids), target)
                self.client.add_flags(list(uids), [DELETED], silent=True)
                if self.client.has_capability("UIDPLUS"):
                    self.client.uid_expunge(list(uids))
                else:  # without UIDPLUS, EXPUNGE also removes others' \Deleted mail, as asked
                    self.client.expunge()

    def idle(self, seconds: float, wake: int) -> bool:
        """IDLE until the server reports new mail (True), `seconds` pass, or `wake` is
        readable (False).

        Returns having ended the IDLE; raises ImapError when the server says BYE or the
        connection is gone. Responses are read line by line here rather than with
        imapclient's idle_check, which polls the socket only: an EXISTS that arrived with
        the "+ idling" sits in imaplib's buffer, where a poll never sees it.
        """
        with _translate(self.cfg, "IDLE"):
            self.client.idle()
            sock = self.client.socket()
            poller = select.poll()
            poller.register(sock.fileno(), select.POLLIN)
            poller.register(wake, select.POLLIN)
            deadline = time.monotonic() + min(seconds, IDLE_MAX)
            told = False
            while not told:
                if self._readable():
                    response = _parse_untagged_response(self.client._imap._get_line())
                    if response[:1] == (b"BYE",):
                        said = b" ".join(x for x in response[1:] if isinstance(x, bytes))
                        raise ImapError(f"{self.cfg.host}:{self.cfg.port} ended the session:"
                                        f" {said.decode(errors='replace')}")
                    told = len(response) > 1 and response[1] in (b"EXISTS", b"RECENT")
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                events = dict(poller.poll(left * 1000))
                if wake in events:
                    break
                if events and not self._readable():
                    break  # readable, yet nothing to read: closed? DONE below will tell
            self.client.idle_done()
            return told

    def _readable(self) -> bool:
        """Is a response waiting, in imaplib's buffer or on the socket? Never blocks."""
        sock = self.client.socket()
        sock.setblocking(False)
        try:
            return bool(self.client._imap.file.peek(1))
        except (BlockingIOError, ssl.SSLWantReadError):
            return False
        finally:
            sock.settimeout(self.cfg.timeout)

    def close(self) -> None:
        try:
            self.client.logout()
        except Exception:  # the connection is already gone: nothing to log out of
            with contextlib.suppress(Exception):
                self.client.shutdown()


def _select(cfg: ImapConfig, client: IMAPClient) -> Folder:
    with _translate(cfg, "SELECT"):
        try:
            info = client.select_folder(cfg.folder)
        except IMAPClientAbortError:
            raise
        except IMAPClientError as e:
            raise ImapNoFolder(f"cannot select folder {cfg.folder!r} on {cfg.host}:"
                               f"{cfg.port}: {_text(e)}") from None
    return Folder(int(info[b"UIDVALIDITY"]), int(info.get(b"UIDNEXT", 0)),
                  int(info.get(b"EXISTS", 0)))


def _tls_context(cfg: ImapConfig) -> ssl.SSLContext | None:
    if cfg.tls == "none":
        return None
    return ssl.create_default_context(cafile=str(cfg.ca_file) if cfg.ca_file else None)


def probe(cfg: ImapConfig) -> Folder:
    """Log in and select the folder, for `mailbot check`; raises ImapError or ConfigError."""
    session = Session.open(cfg, cfg.password())
    try:
        return session.folder
    finally:
        session.close()
