"""A real Dovecot (Debian's dovecot-imapd) for the tests: its own config, passwd-file users,
Maildir storage and logs in a temp dir, in the foreground on a free loopback port.

It never touches the system's Dovecot service or /etc/dovecot. Run as root, Dovecot refuses
root for login processes and mail access, so those use the package's own `dovenull` and
`dovecot` users; otherwise everything runs as the current user.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from email.message import EmailMessage
from pathlib import Path

from imapclient import IMAPClient

from tests.listening import wait_for_greeting

DOVECOT = Path("/usr/sbin/dovecot")
PASSWORD = "secret"
POOL = 100  # users in the passwd-file
# What Dovecot 2.3 announces after login, less IDLE and MOVE: a server the watcher must poll
# and move mail on with COPY + \Deleted + UID EXPUNGE.
PLAIN_CAPABILITIES = ("IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE SORT THREAD=REFERENCES "
                      "MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS "
                      "LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES "
                      "WITHIN CONTEXT=SEARCH LIST-STATUS BINARY LITERAL+")

CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
instance_name = mailbot-test-{port}
log_path = {root}/dovecot.log
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
mail_uid = {mail_user}
mail_gid = {mail_group}
first_valid_uid = 1
first_valid_gid = 1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = maildir:{root}/mail/%u
{capability}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/users
}}
# No auth penalty: it delays every login from an IP (ours: 127.0.0.1) after a failure, so
# one test's wrong password would slow the next tests' logins by up to 15 s.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""



def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Courier's and Cyrus's layout: every personal folder lives under "INBOX.", so a bare
# `CREATE Processed` is refused.
INBOX_NAMESPACE = """\
namespace inbox {
  inbox = yes
  prefix = INBOX.
  separator = .
}
"""


class ImapServer:
    """What the tests need of any IMAP server: a port, users, and a client to append with."""

    name = "imap"

    def __init__(self) -> None:
        self.port = free_port()
        self._users: dict[str, str] = {}
        self._pool = [f"user{i}" for i in range(POOL, 0, -1)]

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the server as a service manager would; `start` brings it back."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop the server and remove its files."""
        raise NotImplementedError

    def add_user(self) -> str:
        """A mailbox owner no other test has used; the password is PASSWORD."""
        name = self._pool.pop()
        self._users[name] = PASSWORD
        return name

    @contextlib.contextmanager
    def client(self, user: str) -> Iterator[IMAPClient]:
        """Another IMAP client, as a mail server or a colleague would be."""
        c = IMAPClient("127.0.0.1", self.port, ssl=False, timeout=10)
        try:
            c.login(user, self._users[user])
            yield c
        finally:
            with contextlib.suppress(Exception):
                c.logout()

    def append(
        self, user: str, mails: Sequence[bytes | EmailMessage], folder: str = "INBOX"
    ) -> None:
        """APPEND the mails (MULTIAPPEND, a hundred per command)."""
        raws = [m.as_bytes() if isinstance(m, EmailMessage) else m for m in mails]
        with self.client(user) as c:
            if not c.folder_exists(folder):
                c.create_folder(folder)
            for start in range(0, len(raws), 100):
                c.multiappend(folder, raws[start:start + 100])

    def flags(self, user: str, folder: str = "INBOX") -> dict[int, tuple[bytes, ...]]:
        with self.client(user) as c:
            c.select_folder(folder, readonly=True)
            uids = c.search("ALL")
            found = c.fetch(uids, ["FLAGS"]) if uids else {}
            return {uid: tuple(f for f in v[b"FLAGS"] if f != rb"\Recent")
                    for uid, v in found.items()}


class Dovecot(ImapServer):
    name = "dovecot"

    def __init__(self, capabilities: str | None = None, namespace: str = "") -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="mailbot-dovecot-"))
        self.root.chmod(0o755)  # the mail user (not us, when we are root) works under it
        self.proc: subprocess.Popen[bytes] | None = None
        root = os.getuid() == 0
        me = pwd.getpwuid(os.getuid()).pw_name
        my_group = grp.getgrgid(os.getgid()).gr_name
        mail_user, mail_group = ("dovecot", "dovecot") if root else (me, my_group)
        (self.root / "mail").mkdir()
        shutil.chown(self.root / "mail", mail_user, mail_group)
        # Every user exists from the start: Dovecot re-reads a changed passwd-file at most
        # once a second, so a user added later may not log in at once.
        (self.root / "users").write_text("".join(
            f"{u}:{{PLAIN}}{PASSWORD}::::::nopenalty\n" for u in self._pool))
        (self.root / "dovecot.conf").write_text(CONFIG.format(
            root=self.root, port=self.port, internal_user=me, internal_group=my_group,
            login_user="dovenull" if root else me, mail_user=mail_user, mail_group=mail_group,
            capability=f"imap_capability = {capabilities}" if capabilities else "",
        ) + namespace)

    def start(self) -> None:
        assert self.proc is None
        self.proc = subprocess.Popen(
            [str(DOVECOT), "-F", "-c", str(self.root / "dovecot.conf")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )
        outcome = wait_for_greeting(self.proc, self.port, b"* OK", 10)
        if outcome == "listening":
            return
        if outcome == "exited":
            raise RuntimeError(f"dovecot exited: {self.proc.stderr.read().decode()}"  # type: ignore[union-attr]
                               f"\n{self.log()}")
        self.stop()
        raise RuntimeError(f"dovecot did not start listening on {self.port}\n{self.log()}")

    def stop(self) -> None:
        """SIGTERM to every Dovecot process, as systemd stops a service: IMAP sessions get
        BYE and are closed. (The master alone leaves its imap processes running a while.)"""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        assert self.proc.stderr is not None
        self.proc.stderr.close()
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""


def available() -> bool:
    return DOVECOT.exists()
