"""Hostile mail for the abuse suite: `python tests/corpus/make_hostile.py` writes the ones
under 64 KB into tests/corpus/hostile/; the suite makes all of them (and a big attachment)
at test time from the same functions, so the committed files are for reading.

Each mail comes from its own reporter (hostile-<name>@example.net) with its own Message-ID,
so the suite can follow each one to its case or quarantine entry.
"""

from __future__ import annotations

import base64
import io
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

OUT = Path(__file__).parent / "hostile"
CRLF = b"\r\n"


def head(name: str, subject: bytes = b"", extra: bytes = b"") -> bytes:
    return (b"From: Hostile <hostile-" + name.encode() + b"@example.net>\r\n"
            b"To: security@example.org\r\n"
            b"Subject: " + (subject or b"Hostile " + name.encode()) + b"\r\n"
            b"Date: Fri, 18 Dec 2026 17:55:00 +0100\r\n"
            b"Message-ID: <hostile-" + name.encode() + b"@example.net>\r\n" + extra)


def plain(name: str, subject: bytes = b"", body: bytes = b"A report.\r\n",
          extra: bytes = b"") -> bytes:
    return head(name, subject, extra) + b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + body


def multipart(name: str, parts: list[bytes], boundary: bytes = b"b0",
              subtype: bytes = b"mixed") -> bytes:
    body = b"".join(b"--" + boundary + CRLF + p + CRLF for p in parts)
    return (head(name) + b"MIME-Version: 1.0\r\nContent-Type: multipart/" + subtype
            + b"; boundary=\"" + boundary + b"\"\r\n\r\n" + body + b"--" + boundary + b"--\r\n")


def text_part(text: bytes) -> bytes:
    return b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + text


def nested(name: str, depth: int) -> bytes:
    opening = [b"Content-Type: multipart/mixed; boundary=\"n%d\"\r\n\r\n--n%d\r\n" % (i, i)
               for i in range(1, depth + 1)]
    closing = [b"\r\n--n%d--" % i for i in range(depth, 0, -1)]
    return (head(name) + b"MIME-Version: 1.0\r\n" + b"".join(opening)
            + text_part(b"the bottom\r\n") + b"".join(closing) + CRLF)


def attachment(size: int, name: str = "big.bin") -> bytes:
    data = base64.encodebytes(b"\0" * size).replace(b"\n", CRLF)
    return (b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; filename=\"" + name.encode() + b"\"\r\n\r\n" + data)


SMALL: dict[str, Callable[[], bytes]] = {
    "crlf-subject": lambda: plain("crlf-subject", b"Bug\r\nBcc: victim@example.com"),
    "encoded-newline": lambda: plain(
        "encoded-newline", b"=?utf-8?b?" + base64.b64encode(b"Bug\r\nBcc: victim@example.com")
        + b"?="),
    "encoded-newline-from": lambda: head("encoded-newline-from").replace(
        b"From: Hostile", b"From: =?utf-8?q?Evil=0D=0ABcc:_victim@example.com?=")
        + b"\r\nA report.\r\n",
    "jinja-subject": lambda: plain("jinja-subject", b"{{ config }} {% for x in range(9) %}x"
                                   b"{% endfor %} {{ self.__init__.__globals__ }}",
                                   b"{{ config.smtp_out }} {{ 7 * 7 }}\r\n"),
    "html-script": lambda: head("html-script") + b"Content-Type: text/html\r\n\r\n<html><body>"
        b"<script>alert(document.cookie)</script><p>XSS report</p><img src=x onerror=alert(1)>"
        b"<style>p{}</style></body></html>\r\n",
    "null-bytes": lambda: plain("null-bytes", b"Null\0in\0subject",
                                b"body\0with\0nulls\r\n\0\0\0\r\n", b"X-Null: a\0b\r\n"),
    "invalid-utf8": lambda: plain("invalid-utf8", b"Bad \xff\xfe\xc3\x28 subject",
                                  b"\xff\xfe\xfd body \xc3\x28 \xed\xa0\x80\r\n",
                                  b"X-Bad: \x80\x81\r\n").replace(
        b"From: Hostile", b"From: \xff\xfe Hostile"),
    "forged-received": lambda: plain("forged-received", extra=b"".join(
        b"Received: from mail.example.org (127.0.0.1) by mx.example.org; "
        b"Fri, 18 Dec 2026 17:55:00 +0100\r\n" for _ in range(300))
        + b"Authentication-Results: mx.example.org; dkim=pass header.d=example.org\r\n"),
    "no-from": lambda: plain("no-from").replace(b"From: Hostile <hostile-no-from@example.net>\r\n",
                                                b""),
    "bad-boundary": lambda: head("bad-boundary") + b"Content-Type: multipart/mixed; boundary="
        b"\"\"\r\n\r\n--\r\nno end\r\n",
    "bad-base64": lambda: head("bad-base64") + b"Content-Type: text/plain\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n!!!!not base64 at all====\r\n",
    "unknown-charset": lambda: plain("unknown-charset").replace(b"charset=utf-8",
                                                                b"charset=\"x-\0evil\""),
    "rfc2047-bomb": lambda: plain("rfc2047-bomb", b"\r\n ".join(
        b"=?utf-8?b?" + base64.b64encode(b"A" * 45) + b"?=" for _ in range(20000))),
    # 1 MB of one Subject: folded, and on one line (RFC 5321 allows 1,000; intake takes it).
    "long-header": lambda: plain("long-header", b"\r\n ".join([b"x" * 900] * 1100)),
    "long-line": lambda: plain("long-line", b"x" * 1_000_000),
    "many-recipients": lambda: plain("many-recipients", extra=b"Cc: " + b",\r\n ".join(
        b"c%d@example.net" % i for i in range(20000)) + CRLF),
    "deep-nesting": lambda: nested("deep-nesting", 200),
    "many-parts": lambda: multipart("many-parts",
                                    [text_part(b"part %d\r\n" % i) for i in range(10000)]),
    "zip-bomb": lambda: multipart("zip-bomb", [text_part(b"see attached\r\n"),
                                              attachment_bytes(zip_bomb(), "poc.zip")]),
}
COMMITTED = 64 * 1024  # larger ones are made at test time


def attachment_bytes(data: bytes, name: str) -> bytes:
    encoded = base64.encodebytes(data).replace(b"\n", CRLF)
    return (b"Content-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; filename=\"" + name.encode() + b"\"\r\n\r\n"
            + encoded)


def zip_bomb() -> bytes:
    """A zip of 10 files of 100 MB of zeros each (~1 GB unpacked, ~1 MB packed)."""
    out = io.BytesIO()
    chunk = b"\0" * (1 << 20)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for i in range(10):
            with z.open(f"zero{i}.bin", "w") as f:
                for _ in range(100):
                    f.write(chunk)
    return out.getvalue()


def big_attachment(size: int) -> bytes:
    """`size` bytes of attachment (50 MB in the --long run), made at test time."""
    return multipart("big-attachment", [text_part(b"Proof attached.\r\n"), attachment(size)])


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, make in SMALL.items():
        raw = make()
        if len(raw) <= COMMITTED:
            (OUT / f"{name}.eml").write_bytes(raw)
    total = sum(p.stat().st_size for p in OUT.glob("*.eml"))
    print(f"{len(SMALL)} mails, {total / 1e6:.1f} MB in {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
