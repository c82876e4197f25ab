"""A real Postfix (Debian's `postfix` package) for the tests: its own main.cf, master.cf,
queue, data directory and log in a temp dir, SMTP on a free loopback port, in the foreground.

It never touches the system's Postfix service or /etc/postfix (only read: the package's
`postfix-files`). Postfix starts as root (its master drops to the `postfix` user), so these
fixtures need root. Mail for example.org goes to mailbot (over LMTP or SMTP); mail for
example.net, example.com and exämple.org is delivered by Postfix's virtual(8) agent into
Maildirs under `mail/`, where mailbot's acknowledgements and notifications land when it
relays through us.

The set-gid `postdrop` and `postqueue` ignore `MAIL_CONFIG` (and a `-c` directory not
listed in /etc/postfix/main.cf); copies without the set-gid bit, in our own
`command_directory`, honour it when run by root.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

from tests.listening import wait_for_greeting

POSTFIX = Path("/usr/sbin/postfix")
SENDMAIL = Path("/usr/sbin/sendmail")

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
command_directory = {root}/bin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
myhostname = relay.test
mydomain = relay.test
myorigin = relay.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
smtputf8_enable = yes
smtp_dns_support_level = disabled
lmtp_dns_support_level = disabled
message_size_limit = 52428800
relay_domains = example.org
{route}
virtual_mailbox_domains = example.net example.com exämple.org
virtual_mailbox_base = {root}/mail
virtual_mailbox_limit = 0
virtual_mailbox_maps = texthash:{root}/etc/mailboxes
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
alias_maps =
alias_database =
biff = no
# Retry deferred mail soon (a test also flushes with `postqueue -f`).
queue_run_delay = 2s
minimal_backoff_time = 2s
maximal_backoff_time = 4s
"""

MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


# Who has a Maildir here: the usual reporter and the conformance tests' staff.
MAILBOXES = ("researcher@example.net", "alice@example.com", "bob@example.com",
             "réporter@exämple.org")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def available() -> bool:
    return POSTFIX.exists() and os.getuid() == 0


class Postfix:
    """One Postfix instance; `protocol` and `mailbot_port` say how example.org is reached."""

    def __init__(self, mailbot_port: int, protocol: str = "lmtp") -> None:
        self.root = Path(tempfile.mkdtemp(prefix="mailbot-postfix-"))
        self.root.chmod(0o755)  # the postfix user works under it
        self.etc = self.root / "etc"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        for d in ("etc", "queue", "data", "bin", "mail"):
            (self.root / d).mkdir()
        owner = pwd.getpwnam("postfix")
        for d in ("data", "mail"):
            os.chown(self.root / d, owner.pw_uid, owner.pw_gid)
        for tool in Path("/usr/sbin").glob("post*"):
            if tool.name in ("postdrop", "postqueue"):
                shutil.copyfile(tool, self.root / "bin" / tool.name)
                (self.root / "bin" / tool.name).chmod(0o755)
            else:
                (self.root / "bin" / tool.name).symlink_to(tool)
        route = (f"transport_maps = inline:{{example.org=lmtp:inet:127.0.0.1:{mailbot_port}}}"
                 if protocol == "lmtp" else f"relay_transport = smtp:[127.0.0.1]:{mailbot_port}")
        (self.etc / "main.cf").write_text(encoding="utf-8", data=MAIN_CF.format(
            root=self.root, route=route, uid=owner.pw_uid, gid=owner.pw_gid))
        (self.etc / "master.cf").write_text(MASTER_CF.format(port=self.port))
        # address -> mail/domain/user/ (a trailing slash: Maildir). virtual(8) refuses
        # regexp substitutions, so each mailbox is listed.
        (self.etc / "mailboxes").write_text(encoding="utf-8", data="".join(
            f"{a} {a.partition('@')[2]}/{a.partition('@')[0]}/\n" for a in MAILBOXES))

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "MAIL_CONFIG": str(self.etc)}

    def start(self) -> None:
        assert self.proc is None
        self.proc = subprocess.Popen(
            [str(POSTFIX), "-c", str(self.etc), "start-fg"], env=self.env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        outcome = wait_for_greeting(self.proc, self.port, b"220", 20, pause=0.1)
        if outcome == "listening":
            return
        if outcome == "exited":
            raise RuntimeError(f"postfix exited ({self.proc.returncode})\n{self.log()}")
        self.stop()
        raise RuntimeError(f"postfix did not listen on {self.port}\n{self.log()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        subprocess.run([str(POSTFIX), "-c", str(self.etc), "stop"], env=self.env,
                       capture_output=True, check=False)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        path = self.root / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def sendmail(self, raw: bytes, sender: str, *recipients: str) -> None:
        """Submit as a local program does: Postfix's sendmail(1), the mail on its stdin
        (`-i`: a line with a lone dot is mail, not the end of the input, as for mutt)."""
        subprocess.run([str(SENDMAIL), "-C", str(self.etc), "-i", "-f", sender, "--",
                        *recipients],
                       input=raw, env=self.env, check=True, capture_output=True, timeout=60)

    def flush(self) -> None:
        """`postqueue -f`: try every deferred mail now."""
        subprocess.run([str(self.root / "bin" / "postqueue"), "-c", str(self.etc), "-f"],
                       env=self.env, check=True, capture_output=True, timeout=30)

    def queue(self) -> str:
        """`postqueue -p`: what waits in the queue, with the reason."""
        return subprocess.run([str(self.root / "bin" / "postqueue"), "-c", str(self.etc), "-p"],
                              env=self.env, check=True, capture_output=True,
                              timeout=30).stdout.decode(errors="replace")

    def maildir(self, address: str) -> list[bytes]:
        """The mails Postfix delivered to `address` (example.net or example.com)."""
        local, _, domain = address.partition("@")
        new = self.root / "mail" / domain / local / "new"
        return [p.read_bytes() for p in sorted(new.iterdir())] if new.exists() else []
