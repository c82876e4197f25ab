"""A config with the triage keys, and a staff reply as a mail client writes one."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from tests.support import CONFIG

SCOPE_KEYS = """in_scope = ["example.nl", "*.example.nl", "app.example.com", "203.0.113.0/24"]
out_of_scope_hosts = ["legacy.example.nl"]
out_of_scope = ["spf-dkim-dmarc", "clickjacking-no-sensitive-action", "missing-security-headers",
                "version-disclosure", "self-xss", "dos"]
same_codebase = [["shop.example.nl", "shop.example.be"]]
rewards = { critical = "EUR 1000", high = "EUR 500", medium = "EUR 150", low = "a t-shirt" }
policy_url = "https://example.nl/cvd"
"""


def triage_config(tmp_path: Path, sink_port: int, port: int = 0) -> Path:
    """tests/support.py's config with the triage keys in both policies."""
    text = CONFIG.format(db=tmp_path / "mailbot.db", sink_port=sink_port, protocol="smtp",
                         max_size="1MB").replace("port = 0", f"port = {port}", 1)
    for policy in ("security", "support"):
        text = text.replace(f"[policy.{policy}]\n", f"[policy.{policy}]\n{SCOPE_KEYS}", 1)
    path = tmp_path / "mailbot.toml"
    path.write_text(text)
    return path


def staff_reply(note: EmailMessage, body: str, *, sender: str = "alice@example.org",
                message_id: str = "<alice-cmd-1@example.org>",
                date: datetime | None = None) -> EmailMessage:
    """A reply to a notification: commands on top, the notification quoted below."""
    msg = EmailMessage()
    msg["From"] = f"Alice <{sender}>"
    msg["To"] = str(note["Reply-To"])
    msg["Subject"] = f"Re: {note['Subject']}"
    msg["Message-ID"] = message_id
    msg["In-Reply-To"] = str(note["Message-ID"])
    msg["Date"] = format_datetime(date or datetime.now(UTC))
    quoted = "\n".join(f"> {line}" for line in note.get_content().splitlines()[:5])
    msg.set_content(f"{body}\n\nmailbot wrote:\n{quoted}\n")
    return msg
