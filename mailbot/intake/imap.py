"""The IMAP adapter (imapclient): one blocking connection to one folder, errors translated.

imapclient blocks and is not thread-safe, so a session belongs to one thread: a watcher's
(`intake/watcher.py`) or the one `mailbot check` borrows. Every library and socket error
leaves this module as an `ImapError` (the `map_httpcore_exceptions` habit of httpx), and no
message names the password.
"""

from __future__ import annotations

import contextlib
import re
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
TIMING = re.compile(r"\s*\([\d.+ ]+ secs\)(?=\.?$)")
NO_UIDNEXT = 2**32  # UIDs are 32-bit: below this, every UID gets the Message-ID check
IDLE_MAX = 25 * 60.0  # RFC 2177: a server may drop an IDLE after 29 minutes; renew well before
BATCH_COUNT = 200  # messages per FETCH (and per commit)
BATCH_BYTES = 16 * 1024 * 1024  # ... unless they add up to more than this


class ImapRefused(ImapError):
    """The server answered NO or BAD: about what was asked (a message it cannot give, say),
    not the connection."""


@dataclass(frozen=True, slots=True)
class Folder:
    """The selected folder as the server described it."""

    name: str  # as the server calls it
    uidvalidity: int
    uidnext: int  # 0: the server did not say (Courier); see Session.uidnext
    exists: int
    permanent_flags: tuple[bytes, ...] | None  # None: not given, so FLAGS are all permanent
    flags: tuple[bytes, ...] = ()

    def keeps(self, flag: bytes) -> bool:
        """Will the server keep `flag` on a message beyond this session (RFC 3501 7.1)?"""
        if self.permanent_flags is None:
            return flag in self.flags
        return rb"\*" in self.permanent_flags or flag in self.permanent_flags


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
    s = s[2:-1] if s.startswith(("b'", 'b"')) else s
    # Dovecot's timings ("(0.001 + 0.000 secs).") would make the same refusal a new message.
    return TIMING.sub("", s)


class Session:
    """A logged-in connection with the watched folder selected."""

    def __init__(self, cfg: ImapConfig, client: IMAPClient, folder: Folder) -> None:
        self.cfg = cfg
        self.client = client
        self.folder = folder
        self.can_idle = client.has_capability("IDLE")
        # Where taken mail goes (the server's name for processed_folder), or None: marked in
        # place with `flag`. A refused folder or keyword changes these and says so here.
        self.processed: str | None = None
        self.flag = SEEN if cfg.mark == "seen" else KEYWORD
        self.warnings: dict[str, str] = {}
        self._check_flag()

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
            folder = _select(cfg, client, _resolve(cfg, client, cfg.folder))
        except BaseException:
            with contextlib.suppress(Exception):
                client.shutdown()
            raise
        return cls(cfg, client, folder)

    def reselect(self) -> Folder:
        """Select the folder again: what a poll does, and how a folder deleted, recreated or
        renumbered (a new UIDVALIDITY) is noticed while IDLE was told nothing."""
        self.folder = _select(self.cfg, self.client, self.folder_name)
        self._check_flag()
        return self.folder

    @property
    def folder_name(self) -> str:
        """The watched folder as the server names it (`folder` under its namespace)."""
        return self.folder.name

    def prepare_processed(self) -> str | None:
        """Find or create processed_folder under the server's namespace; the server's answer.

        A folder the server refuses leaves taken mail marked in place (a warning says so):
        one folder name must never stop intake."""
        name = self.cfg.processed_folder
        if name is None:
            return None
        try:
            with _translate(self.cfg, f"CREATE {name}"):
                resolved = _resolve(self.cfg, self.client, name)
                if _exists(self.client, resolved):
                    answer = f"{resolved!r} exists"
                else:
                    said = self.client.create_folder(resolved)
                    answer = f"{resolved!r} created: {_text(Exception(said))}"
        except ImapRefused as e:
            self._refused(name, str(e))
            return None
        self.processed = resolved
        self.warnings.pop("processed", None)
        self._check_flag()
        return answer

    def _refused(self, name: str, why: str) -> None:
        self.processed = None
        self._check_flag()
        self.warnings["processed"] = (f"processed folder {name!r} refused ({why}); taken mail"
                                      f" is marked {self.flag.decode()} in place instead")

    def _check_flag(self) -> None:
        """Fall back to \\Seen when the keyword asked for would not be kept (pymap)."""
        if self.cfg.mark != "keyword" or self.processed is not None:
            self.warnings.pop("keyword", None)
            return
        if self.folder.keeps(KEYWORD):
            self.flag = KEYWORD
            self.warnings.pop("keyword", None)
            return
        self.flag = SEEN
        kept = b" ".join(self.folder.permanent_flags or ()).decode(errors="replace")
        self.warnings["keyword"] = (f"the server does not keep the keyword {KEYWORD.decode()}"
                                    f" (PERMANENTFLAGS ({kept})); taken mail is marked \\Seen"
                                    " instead")

    def uidnext(self) -> int:
        """The UID the next new message will get: SELECT's UIDNEXT, or else one above the
        highest UID present (UID SEARCH), or else NO_UIDNEXT (take every UID as maybe known)."""
        if self.folder.uidnext:
            return self.folder.uidnext
        if not self.folder.exists:
            return 1
        try:
            with _translate(self.cfg, "UID SEARCH UID *"):
                found = self.client.search(["UID", "*"])
        except ImapRefused:
            return NO_UIDNEXT
        return max(found) + 1 if found else NO_UIDNEXT

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
        target = self.processed
        if target is not None:
            try:
                self._move(uids, target)
                return
            except ImapRefused as e:  # the folder went, or is full: mark in place instead
                self._refused(target, str(e))
        with _translate(self.cfg, "marking taken mail"):
            self.client.add_flags(list(uids), [self.flag], silent=True)

    def _move(self, uids: Sequence[int], target: str) -> None:
        with _translate(self.cfg, f"moving taken mail to {target}"):
            if self.client.has_capability("MOVE"):
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


def _select(cfg: ImapConfig, client: IMAPClient, name: str) -> Folder:
    with _translate(cfg, "SELECT"):
        try:
            info = client.select_folder(name)
        except IMAPClientAbortError:
            raise
        except IMAPClientError as e:
            shown = repr(cfg.folder) if name == cfg.folder else f"{cfg.folder!r} ({name!r})"
            raise ImapNoFolder(f"cannot select folder {shown} on {cfg.host}:"
                               f"{cfg.port}: {_text(e)}") from None
    permanent = info.get(b"PERMANENTFLAGS")
    return Folder(name, int(info[b"UIDVALIDITY"]), int(info.get(b"UIDNEXT", 0)),
                  int(info.get(b"EXISTS", 0)),
                  tuple(permanent) if permanent is not None else None,
                  tuple(info.get(b"FLAGS", ())))


def _resolve(cfg: ImapConfig, client: IMAPClient, name: str) -> str:
    """The server's name for folder `name`: as given if it exists (or is INBOX), else under
    the personal namespace (Courier and Cyrus: `Processed` is `INBOX.Processed`), else
    the folder flagged with a special-use attribute (`\\Archive`, RFC 6154) when `name` is
    one."""
    if name.upper() == "INBOX":
        return name
    with _translate(cfg, "LIST"):
        listed = client.list_folders()
        if name.startswith("\\"):
            want = name.encode().lower()
            for flags, _, found in listed:
                if want in (f.lower() for f in flags):
                    return str(found)
            raise ImapRefused(f"{cfg.host}:{cfg.port} has no folder flagged {name}")
        names = {str(found) for _, _, found in listed}
        if name in names:
            return name
        if not client.has_capability("NAMESPACE"):
            return name
        personal = client.namespace().personal or ()
    for prefix, sep in personal[:1]:
        prefix = str(prefix)
        if prefix and not name.startswith(prefix):
            return prefix + (name.replace("/", sep) if sep else name)
    return name


def _exists(client: IMAPClient, name: str) -> bool:
    return bool(client.folder_exists(name))


def _tls_context(cfg: ImapConfig) -> ssl.SSLContext | None:
    if cfg.tls == "none":
        return None
    return ssl.create_default_context(cafile=str(cfg.ca_file) if cfg.ca_file else None)


@dataclass(frozen=True, slots=True)
class Probe:
    """What `mailbot check` learnt: the folder, the processed folder's answer, warnings."""

    folder: Folder
    processed: str | None
    warnings: tuple[str, ...]


def probe(cfg: ImapConfig) -> Probe:
    """Log in, select the folder and find or create the processed folder, for `mailbot
    check`; raises ImapError or ConfigError."""
    session = Session.open(cfg, cfg.password())
    try:
        answer = session.prepare_processed()
        return Probe(session.folder, answer, tuple(session.warnings.values()))
    finally:
        session.close()
