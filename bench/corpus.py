"""A deterministic mbox of vulnerability reports and their follow-ups, with a truth file.

    python bench/corpus.py --count 5000 --seed 1 --out corpus.mbox

The same --count and --seed always give the same bytes: no wall clock, no random MIME
boundary, one `random.Random(seed)` drawn in a fixed order. So two runs of a bench (or two
tools) are measured on the same mail, and a figure can be reproduced from its seed.

About 70% of the mails are new reports, each from a researcher of their own: 1-6 KB of
plain text, some with an HTML alternative (25%), a small attachment (20%: a PoC script, a
log, a HAR capture or a PNG) or a non-ASCII RFC 2047 subject (15%); a few share the generic
subjects real inboxes get. The rest are follow-ups from the reporter of an earlier report:
`Re: ` + its subject, `In-Reply-To` the thread's last mail, `References` the whole thread,
the report quoted below. Dates grow over six weeks, in assorted time zones.

`OUT.truth.json` lists, per mail in order, its Message-ID, whether it is a follow-up, the
Message-ID of the report that opened its thread, its subject and its sender: what a bench
checks threading against without trusting the tool it measures.

`generate()` is the same corpus in memory, for the benches that import it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import struct
import unicodedata
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from email.generator import BytesGenerator
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from io import BytesIO
from pathlib import Path
from typing import Any

# The inbox every mail goes to, and the six weeks the dates span.
TO = "security@example.org"
START = datetime(2026, 1, 5, 8, 0, 0, tzinfo=UTC)
SPAN = timedelta(weeks=6)
FOLLOW_UP_SHARE = 0.30

# The word lists are drawn from by index: their order is part of the corpus (a reordered
# list gives other mail for the same seed).
FIRST_NAMES = (
    "Alice", "Bob", "Carol", "Dmitri", "Emma", "Farid", "Grace", "Hiro", "Ines",
    "Jonas", "Kemal", "Lena", "Mateo", "Nadia", "Oskar", "Priya", "Quentin",
    "Rosa", "Sven", "Tariq", "Uma", "Viktor", "Wen", "Xavier", "Yara", "Zoltan",
    # non-ASCII display names: the From: header carries them RFC 2047 encoded
    "José", "Zoë", "Łukasz", "Jürgen", "Søren", "Çağla", "François", "Ἀθηνᾶ",
    "Дмитрий", "美咲", "Nguyễn", "Åsa",
)
LAST_NAMES = (
    "Anders", "Brown", "Chen", "Dubois", "Eriksen", "Fischer", "Garcia", "Haas",
    "Ivanova", "Jansen", "Kowalski", "Lopez", "Müller", "Nakamura", "Okafor",
    "Petrov", "Quispe", "Rossi", "Schmidt", "Tanaka", "Uysal", "Vogel", "Weber",
    "Yilmaz", "Zhang", "Øvergaard", "Ó Briain", "Szabó", "Dvořák", "Gonçalves",
)
MAIL_DOMAINS = (
    "gmail.example", "proton.example", "researcher.example", "bugbounty.example",
    "uni-example.edu", "seclab.example", "hackerone.example", "posteo.example",
)
UTC_OFFSETS = (0, 60, 120, -300, -420, 330, 540, 480, -180, 600)  # minutes

FINDINGS = (  # (kind, how, weakness)
    ("Stored XSS", "in the comment field of", "CWE-79"),
    ("Reflected XSS", "via the q parameter of", "CWE-79"),
    ("SQL injection", "in the sort parameter of", "CWE-89"),
    ("IDOR", "allowing access to other users' invoices in", "CWE-639"),
    ("SSRF", "through the webhook URL of", "CWE-918"),
    ("Open redirect", "in the login flow of", "CWE-601"),
    ("CSRF", "on the password change form of", "CWE-352"),
    ("Path traversal", "in the file download endpoint of", "CWE-22"),
    ("Remote code execution", "via unsafe deserialization in", "CWE-502"),
    ("Account takeover", "through password reset token reuse in", "CWE-640"),
    ("Information disclosure", "of stack traces in", "CWE-209"),
    ("Subdomain takeover", "of a dangling CNAME for", "CWE-350"),
    ("JWT signature bypass", "(alg=none accepted) in", "CWE-347"),
    ("Rate limit bypass", "on the OTP verification of", "CWE-307"),
    ("XXE", "in the SAML metadata upload of", "CWE-611"),
    ("Clickjacking", "on the payment confirmation page of", "CWE-1021"),
)
COMPONENTS = (
    "app.example.org", "api.example.org/v2/orders", "the customer portal",
    "the mobile API", "status.example.org", "the admin dashboard",
    "shop.example.org/checkout", "the GraphQL endpoint", "the SSO gateway",
    "docs.example.org", "the file upload service", "the partner API",
)
HOSTS = (
    "app.example.org", "api.example.org", "shop.example.org", "sso.example.org",
    "admin.example.org", "cdn.example.org", "mail.example.org", "m.example.org",
    "partners.example.org", "status.example.org", "docs.example.org",
    "staging.example.org",
)
PATHS = (
    "/login", "/logout", "/signup", "/account/settings", "/account/avatar",
    "/api/v1/users", "/api/v2/orders", "/api/v2/invoices/export", "/graphql",
    "/search", "/oauth/authorize", "/oauth/callback", "/password/reset",
    "/cart/checkout", "/upload", "/download", "/admin/users", "/admin/audit",
    "/webhooks", "/reports/pdf", "/support/tickets", "/share", "/embed",
    "/redirect", "/files/preview", "/team/invite", "/billing", "/export.csv",
    "/saml/acs", "/.well-known/openid-configuration",
)
PARAMETERS = (
    "next", "url", "q", "id", "sort", "callback", "file", "redirect_uri",
    "token", "email", "lang", "template", "format", "page", "user_id", "path",
)
GENERIC_SUBJECTS = (
    "Security vulnerability report", "Vulnerability report", "Security issue",
    "Bug bounty submission", "Responsible disclosure",
)
FOREIGN_SUBJECTS = (
    "Sicherheitslücke: {v} in {c}",
    "Vulnérabilité de sécurité : {v} dans {c}",
    "Beveiligingslek gevonden – {v} in {c}",
    "Уязвимость {v} в {c}",
    "脆弱性の報告: {v} ({c})",
    "Vulnerabilidad crítica — {v} en {c}",
    "Güvenlik açığı: {v} – {c}",
    "Zgłoszenie podatności: {v} w {c} ✓",
)
FILLER = tuple((  # noqa: SIM905 - a word list reads better as prose
    "the request response server header token session cookie parameter value "
    "attacker victim payload browser endpoint user account admin password reset "
    "redirect origin script injection database query filter validation input "
    "output encoding escaping impact severity exploit proof concept steps "
    "reproduce observed expected behaviour version build release deployment "
    "configuration default permission access control authorization bypass "
    "sensitive data exposure leak log error trace internal network service"
).split())
SEVERITIES = ("Low", "Medium", "High", "Critical")
VECTORS = (
    "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N",
    "CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:N",
    "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
    "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:N/A:N",
)
FOLLOW_UP_OPENINGS = (
    "Hi again,\n\nAny update on this report? It has been a while since I sent it.",
    "Hello,\n\nI found an additional variant of the issue below.",
    "Hi,\n\nQuick follow-up: the issue is still reproducible on the latest build.",
    "Dear security team,\n\nI would like to know whether you have been able to "
    "reproduce this, and when you expect a fix.",
    "Hi,\n\nPlease find a clarification on the reproduction steps below.",
    "Hello,\n\nI plan to publish a write-up in 90 days; could you confirm the "
    "timeline for a fix?",
    "Hi team,\n\nCould you credit me as \"{name}\" in the advisory?",
)
USER_AGENTS = ("Thunderbird/128.5.0", "Mutt/2.2.12", "Apple Mail (2.3774)", "Roundcube 1.6.9")
ATTACHMENT_KINDS = ("py", "txt", "png", "har")


@dataclass
class Thread:
    """A report and the follow-ups sent on it so far."""

    subject: str
    name: str
    address: str
    body: str
    message_ids: list[str] = field(default_factory=list)

    @property
    def root(self) -> str:
        return self.message_ids[0]


@dataclass(frozen=True, slots=True)
class Mail:
    envelope_from: str
    sent: datetime
    raw: bytes  # LF line ends, "From " lines in the body escaped (mboxo)
    truth: dict[str, Any]

    def mbox_entry(self) -> bytes:
        """The mail as it stands in an mbox: its From_ line, the mail, a blank line."""
        head = f"From {self.envelope_from} {self.sent.astimezone(UTC):%a %b %d %H:%M:%S %Y}\n"
        tail = b"\n" if self.raw.endswith(b"\n") else b"\n\n"
        return head.encode() + self.raw + tail


def generate(count: int, seed: int) -> list[Mail]:
    """The corpus: `count` mails drawn from `seed`, in the order they were sent."""
    rng = random.Random(seed)
    mean_gap = SPAN.total_seconds() / max(count, 1)
    sent = START
    threads: list[Thread] = []
    mails = []
    for i in range(count):
        sent += timedelta(seconds=max(30.0, rng.expovariate(1.0 / mean_gap)))
        zone = timezone(timedelta(minutes=rng.choice(UTC_OFFSETS)))
        follow_up = bool(threads) and rng.random() < FOLLOW_UP_SHARE
        if follow_up:
            thread = rng.choice(threads)
            subject, body = "Re: " + thread.subject, _follow_up_body(rng, thread, sent)
        else:
            thread = _new_thread(rng, researcher=len(threads) + 1)
            subject, body = thread.subject, thread.body
        message_id = f"<{rng.getrandbits(64):016x}.{i}@{thread.address.split('@')[1]}>"
        msg = EmailMessage()
        msg["From"] = formataddr((thread.name, thread.address))
        msg["To"] = TO
        msg["Subject"] = subject
        msg["Date"] = format_datetime(sent.astimezone(zone))
        msg["Message-ID"] = message_id
        if follow_up:
            msg["In-Reply-To"] = thread.message_ids[-1]
            msg["References"] = " ".join(thread.message_ids)
        msg["MIME-Version"] = "1.0"
        msg["User-Agent"] = rng.choice(USER_AGENTS)
        msg.set_content(body)
        if rng.random() < 0.25:
            msg.add_alternative(_as_html(body), subtype="html")
        if not follow_up and rng.random() < 0.20:
            _attach(rng, msg)
        _fixed_boundaries(msg, f"{seed}/{i}")
        thread.message_ids.append(message_id)
        if not follow_up:
            threads.append(thread)
        mails.append(Mail(thread.address, sent, _mboxo_bytes(msg), {
            "message_id": message_id, "followup": follow_up, "root": thread.root,
            "subject": subject, "from": thread.address,
        }))
    return mails


def write(mails: list[Mail], out: Path) -> Path:
    """The mbox at `out` and its truth file beside it (`out` + .truth.json); the latter."""
    with open(out, "wb") as f:
        for mail in mails:
            f.write(mail.mbox_entry())
    truth = Path(f"{out}.truth.json")
    truth.write_text(json.dumps([m.truth for m in mails], indent=0, ensure_ascii=False),
                     encoding="utf-8")
    return truth


def _new_thread(rng: random.Random, researcher: int) -> Thread:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    local = ".".join(p for p in (_ascii_fold(first), _ascii_fold(last)) if p)
    address = f"{local}.{researcher}@{rng.choice(MAIL_DOMAINS)}"
    finding, component = rng.choice(FINDINGS), rng.choice(COMPONENTS)
    kind, how, weakness = finding
    draw = rng.random()
    where = rng.choice(HOSTS) + rng.choice(PATHS)
    if draw < 0.15:
        subject = rng.choice(FOREIGN_SUBJECTS).format(v=kind, c=where)
    elif draw < 0.22:  # generic subjects, shared by many reports: threading must not use them
        subject = rng.choice(GENERIC_SUBJECTS)
    elif draw < 0.45:
        subject = f"{kind} {how} {component}"
    elif draw < 0.75:
        subject = f"{kind} in {where}"
    else:
        subject = f"{kind} ({weakness}) via the '{rng.choice(PARAMETERS)}' parameter on {where}"
    name = f"{first} {last}"
    size = rng.randint(1024, 6144)
    return Thread(subject, name, address, _report_body(rng, name, finding, component, size))


def _report_body(rng: random.Random, name: str, finding: tuple[str, str, str],
                 component: str, size: int) -> str:
    kind, how, weakness = finding
    severity = rng.choice(SEVERITIES)
    vector = rng.choice(VECTORS)
    steps = "\n".join(f"  {n}. {_prose(rng, rng.randint(6, 14))}"
                      for n in range(1, rng.randint(3, 6)))
    host = component.split("/")[0].replace(" ", "-")
    cookie = f"{rng.getrandbits(128):032x}"
    blocks = [
        "Hello security team,",
        f"I would like to report a {kind} vulnerability {how} {component}.",
        f"Weakness: {weakness}\nSeverity (my estimate): {severity}\nVector: {vector}",
        "Steps to reproduce:\n" + steps,
        "Proof of concept:\n\n    GET /search?q=%22%3E%3Cscript%3Ealert(document.domain)"
        f"%3C/script%3E HTTP/1.1\n    Host: {host}\n    Cookie: session={cookie}",
    ]
    while sum(len(b) + 2 for b in blocks) < size - 200:
        blocks.append(_prose(rng, rng.randint(30, 90)))
    blocks.append("Impact:\n" + _prose(rng, rng.randint(15, 30)))
    blocks.append("I follow your disclosure policy and will not share details before a fix"
                  f" is released.\n\nBest regards,\n{name}\n-- \n"
                  f"PGP: {rng.getrandbits(160):040X}")
    return "\n\n".join(blocks) + "\n"


def _follow_up_body(rng: random.Random, thread: Thread, sent: datetime) -> str:
    opening = rng.choice(FOLLOW_UP_OPENINGS).format(name=thread.name)
    extra = "\n\n".join(_prose(rng, rng.randint(20, 70)) for _ in range(rng.randint(0, 3)))
    quoted = "\n".join(f"> {line}" if line else ">"
                       for line in thread.body.splitlines()[:40])
    return (f"{opening}\n\n{extra}\n\nRegards,\n{thread.name}\n\n"
            f"On {format_datetime(sent - timedelta(days=1))}, {thread.name} wrote:\n{quoted}\n")


def _prose(rng: random.Random, words: int) -> str:
    """`words` filler words in sentences of 6-14, wrapped at 70 columns."""
    sentences = []
    while words > 0:
        n = min(words, rng.randint(6, 14))
        sentences.append(" ".join(rng.choice(FILLER) for _ in range(n)).capitalize() + ".")
        words -= n
    lines, line = [], ""
    for word in " ".join(sentences).split(" "):
        if line and len(line) + len(word) + 1 > 70:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return "\n".join(lines)


def _as_html(text: str) -> str:
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    paragraphs = "".join(f"<p>{p.replace(chr(10), '<br>')}</p>\n"
                         for p in escaped.split("\n\n"))
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head>"
            f"<body style=\"font-family:sans-serif\">\n{paragraphs}</body></html>\n")


def _attach(rng: random.Random, msg: EmailMessage) -> None:
    kind = rng.choice(ATTACHMENT_KINDS)
    if kind == "png":
        msg.add_attachment(_noise_png(rng), maintype="image", subtype="png",
                           filename="screenshot.png")
    elif kind == "py":
        probes = "".join(
            f"r = requests.get(TARGET + '/api/v2/item/{rng.randint(1, 99999)}',"
            f" headers={{'X-Probe': '{rng.getrandbits(32):08x}'}})\n"
            "print(r.status_code, len(r.content))\n"
            for _ in range(rng.randint(5, 25)))
        msg.add_attachment("#!/usr/bin/env python3\n# PoC - run against a test account only\n"
                           "import requests\n\nTARGET = 'https://app.example.org'\n" + probes,
                           subtype="x-python", filename="poc.py")
    elif kind == "txt":
        log = "".join(f"2026-01-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:"
                      f"{rng.randint(0, 59):02d}:00Z GET /api/v2/orders/"
                      f"{rng.randint(1, 10**6)} 200 {rng.randint(100, 9000)}\n"
                      for _ in range(rng.randint(20, 60)))
        msg.add_attachment(log, filename="requests.log")
    else:
        entries = [{"request": {"method": "POST", "url": f"https://api.example.org/v2/x/{n}"},
                    "response": {"status": rng.choice([200, 403, 500])}}
                   for n in range(rng.randint(5, 30))]
        har = json.dumps({"log": {"version": "1.2", "entries": entries}}, indent=1)
        msg.add_attachment(har.encode(), maintype="application", subtype="json",
                           filename="capture.har")


def _noise_png(rng: random.Random) -> bytes:
    """A small valid PNG of random pixels (1-3 KB)."""
    side = rng.choice([16, 24, 32])
    pixels = b"".join(b"\x00" + bytes(rng.randrange(256) for _ in range(side * 3))
                      for _ in range(side))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(pixels, 9)) + chunk(b"IEND", b""))


def _ascii_fold(word: str) -> str:
    """A name as a local part: "Łukasz" -> "ukasz", "Ó Briain" -> "obriain"."""
    folded = unicodedata.normalize("NFKD", word).encode("ascii", "ignore").decode()
    return "".join(c for c in folded.lower() if c.isalnum())


def _fixed_boundaries(msg: EmailMessage, salt: str) -> None:
    """MIME boundaries from the seed: the email package would draw random ones."""
    for n, part in enumerate(msg.walk()):
        if part.is_multipart():
            digest = hashlib.sha1(f"{salt}/{n}".encode()).hexdigest()[:24]
            part.set_boundary(f"=_b{n}_{digest}")


def _mboxo_bytes(msg: EmailMessage) -> bytes:
    buf = BytesIO()
    # mangle_from_: a body line starting with "From " would start a new mail in the mbox.
    BytesGenerator(buf, mangle_from_=True, policy=policy.default.clone(linesep="\n")).flatten(msg)
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, required=True, help="mails in the corpus")
    ap.add_argument("--seed", type=int, default=1, help="the same seed gives the same bytes")
    ap.add_argument("--out", type=Path,
                    help="the mbox to write (default: corpus-COUNT-SEED.mbox here)")
    args = ap.parse_args()
    args.out = args.out or Path(f"corpus-{args.count}-{args.seed}.mbox")
    mails = generate(args.count, args.seed)
    write(mails, args.out)
    follow_ups = sum(m.truth["followup"] for m in mails)
    print(f"wrote {args.out}: {len(mails)} messages ({len(mails) - follow_ups} reports, "
          f"{follow_ups} follow-ups), {sum(len(m.raw) for m in mails)} bytes")


if __name__ == "__main__":
    main()
