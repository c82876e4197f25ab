"""Mail as mailing lists and groups deliver it, header by header.

The shapes follow the servers' documentation and public archives:
- Google Groups: `Mailing-list: list …; contact …+owners@…`, `List-ID: <group.domain>`,
  `List-Post` with the group's mailto, `X-Original-Sender`; when the poster's domain
  publishes a strict DMARC policy, `From: 'Name' via group <group@…>` with the poster in
  `X-Original-From` and `Reply-To`.
- Microsoft 365 groups expand to their members like a distribution group: `From:` is the
  poster, `To:` the group's address, and no list header.
- Mailman 2.1: `Sender`/`Errors-To: list-bounces@`, `X-BeenThere`, `X-Mailman-Version`,
  `Precedence: list`, RFC 2369/2919 headers; `from_is_list = munge` writes
  `From: Name via List <list@…>` and puts the poster in `Reply-To`.
- Mailman 3: `X-MailFrom`, `Message-ID-Hash`, `X-Mailman-Rule-Misses`, `List-Owner`,
  `List-Post`; DMARC mitigation munges From: and puts the poster in `Reply-To` or `Cc`.
- Sympa 6.2: `X-Loop: list@…`, `X-Sequence`, `Errors-To: list-owner@`,
  `Sender: list-request@`, `Precedence: list`, RFC 2369/2919 headers; `dmarc_protection`
  writes `From: "Name via list" <list@…>` and keeps the poster in `X-Original-From`.
"""

from __future__ import annotations

POSTER = "rita@example.net"
BODY = "The q parameter of /search is reflected without escaping.\n"


def _mail(headers: list[tuple[str, str]], body: str = BODY) -> bytes:
    lines = [f"{name}: {value}" for name, value in headers]
    lines += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "", body]
    return "\r\n".join(lines).encode()


def _common(subject: str, message_id: str, extra: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [("Subject", subject), ("Date", "Fri, 18 Dec 2026 17:55:00 +0100"),
            ("Message-ID", message_id), *extra]


def google_group(*, group: str = "security@example.org", rewrite: bool = True,
                 poster: str = POSTER, original_from: str | None = None,
                 subject: str = "XSS in /search", message_id: str = "<gg-1@example.net>",
                 in_reply_to: str | None = None, body: str = BODY) -> bytes:
    """A post to a Google Group, as one of its members receives it."""
    local, _, domain = group.partition("@")
    claimed = original_from or poster
    head = ([("From", f"'Rita Researcher' via {local} <{group}>"),
             ("Reply-To", f"Rita Researcher <{claimed}>")] if rewrite
            else [("From", f"Rita Researcher <{poster}>")])
    head += [("To", group)]
    if in_reply_to:
        head += [("In-Reply-To", in_reply_to), ("References", in_reply_to)]
    head += [("X-Original-Sender", claimed)]
    if rewrite:
        head += [("X-Original-Authentication-Results",
                  "mx.google.com; dkim=pass header.i=@example.net; dmarc=pass "
                  "(p=REJECT sp=REJECT dis=NONE) header.from=example.net"),
                 ("X-Original-From", f"Rita Researcher <{claimed}>")]
    head += [
        ("Precedence", "list"),
        ("Mailing-list", f"list {group}; contact {local}+owners@{domain}"),
        ("List-ID", f"<{local}.{domain}>"),
        ("X-Spam-Checked-In-Group", claimed),
        ("X-Google-Group-Id", "448215731093"),
        ("List-Post", f"<https://groups.google.com/a/{domain}/group/{local}/post>, "
                      f"<mailto:{group}>"),
        ("List-Help", f"<https://support.google.com/a/{domain}/bin/topic.py?topic=25838>, "
                      f"<mailto:{local}+help@{domain}>"),
        ("List-Archive", f"<https://groups.google.com/a/{domain}/group/{local}/>"),
        ("List-Unsubscribe", "<mailto:googlegroups-manage+448215731093+unsubscribe@"
                             f"googlegroups.com>, <https://groups.google.com/a/{domain}/group/"
                             f"{local}/subscribe>"),
    ]
    return _mail(_common(subject, message_id, head), body)


def m365_group(*, group: str = "security-team@example.org", poster: str = POSTER,
               subject: str = "XSS in /search", message_id: str = "<m365-1@example.net>"
               ) -> bytes:
    """A post to a Microsoft 365 group, as a member receives it: no list header at all."""
    head = [("From", f"Rita Researcher <{poster}>"), ("To", f"Security <{group}>"),
            ("Thread-Topic", subject), ("Thread-Index", "AQHa1Xk4Yk3n0k2PSUy2Qm3p0c6e9w=="),
            ("X-MS-Has-Attach", ""), ("Content-Language", "en-US")]
    return _mail(_common(subject, message_id, head))


def mailman2(*, list_address: str = "security@lists.example.org", rewrite: bool = True,
             poster: str = POSTER, to: str | None = None, cc: str | None = None,
             subject: str = "[Security] XSS in /search",
             message_id: str = "<mm2-1@example.net>", digest: bool = False) -> bytes:
    """A Mailman 2.1 post (or a digest of posts)."""
    local, _, domain = list_address.partition("@")
    if digest:
        head = [("From", f"{local}-request@{domain}"), ("To", list_address),
                ("Reply-To", list_address)]
        subject = f"{local.capitalize()} Digest, Vol 12, Issue 3"
    elif rewrite:
        head = [("From", f"Rita Researcher via {local.capitalize()} <{list_address}>"),
                ("Reply-To", f"Rita Researcher <{poster}>"), ("To", to or list_address)]
    else:
        head = [("From", f"Rita Researcher <{poster}>"), ("To", to or list_address)]
    if cc:
        head += [("Cc", cc)]
    head += [
        ("X-BeenThere", list_address), ("X-Mailman-Version", "2.1.29"),
        ("Precedence", "list"),
        ("List-Id", f"{local.capitalize()} reports <{local}.{domain}>"),
        ("List-Unsubscribe", f"<https://{domain}/mailman/options/{local}>, "
                             f"<mailto:{local}-request@{domain}?subject=unsubscribe>"),
        ("List-Archive", f"<https://{domain}/pipermail/{local}/>"),
        ("List-Post", f"<mailto:{list_address}>"),
        ("List-Help", f"<mailto:{local}-request@{domain}?subject=help>"),
        ("List-Subscribe", f"<https://{domain}/mailman/listinfo/{local}>, "
                           f"<mailto:{local}-request@{domain}?subject=subscribe>"),
        ("Errors-To", f"{local}-bounces@{domain}"),
        ("Sender", f"\"{local.capitalize()}\" <{local}-bounces@{domain}>"),
    ]
    return _mail(_common(subject, message_id, head))


def mailman3(*, list_address: str = "security@lists.example.org", rewrite: bool = True,
             poster: str = POSTER, to: str | None = None, cc: str | None = None,
             subject: str = "[Security] XSS in /search",
             message_id: str = "<mm3-1@example.net>", in_reply_to: str | None = None) -> bytes:
    """A Mailman 3 post; DMARC mitigation puts the poster in Reply-To."""
    local, _, domain = list_address.partition("@")
    head = ([("From", f"Rita Researcher via {local.capitalize()} <{list_address}>"),
             ("Reply-To", f"Rita Researcher <{poster}>")] if rewrite
            else [("From", f"Rita Researcher <{poster}>")])
    head += [("To", to or list_address)]
    if cc:
        head += [("Cc", cc)]
    if in_reply_to:
        head += [("In-Reply-To", in_reply_to), ("References", in_reply_to)]
    head += [
        ("Message-ID-Hash", "OZ5QXKFRL2Z7H4ZCWDL3VGLRAQ4DMC4B"),
        ("X-Message-ID-Hash", "OZ5QXKFRL2Z7H4ZCWDL3VGLRAQ4DMC4B"),
        ("X-MailFrom", poster),
        ("X-Mailman-Rule-Misses", "dmarc-mitigation; no-senders; approved; emergency; "
                                  "loop; banned-address; member-moderation; "
                                  "nonmember-moderation; administrivia; implicit-dest; "
                                  "max-recipients; max-size; news-moderation; no-subject; "
                                  "digests; suspicious-header"),
        ("X-Mailman-Version", "3.3.8"), ("Precedence", "list"),
        ("List-Id", f"Security reports <{local}.{domain}>"),
        ("Archived-At", f"<https://{domain}/archives/list/{list_address}/message/"
                        "OZ5QXKFRL2Z7H4ZCWDL3VGLRAQ4DMC4B/>"),
        ("List-Archive", f"<https://{domain}/archives/list/{list_address}/>"),
        ("List-Help", f"<mailto:{local}-request@{domain}?subject=help>"),
        ("List-Owner", f"<mailto:{local}-owner@{domain}>"),
        ("List-Post", f"<mailto:{list_address}>"),
        ("List-Subscribe", f"<mailto:{local}-join@{domain}>"),
        ("List-Unsubscribe", f"<mailto:{local}-leave@{domain}>"),
    ]
    return _mail(_common(subject, message_id, head))


def sympa(*, list_address: str = "security@lists.vendor.example", rewrite: bool = True,
          poster: str = POSTER, original_from: str | None = None, to: str | None = None,
          cc: str | None = None, subject: str = "[security] XSS in /search",
          message_id: str = "<sympa-1@example.net>") -> bytes:
    """A Sympa 6.2 post; dmarc_protection keeps the poster in X-Original-From."""
    local, _, domain = list_address.partition("@")
    claimed = original_from or poster
    head = ([("From", f"\"Rita Researcher via {local}\" <{list_address}>"),
             ("X-Original-From", f"Rita Researcher <{claimed}>")] if rewrite
            else [("From", f"Rita Researcher <{poster}>")])
    head += [("To", to or list_address)]
    if cc:
        head += [("Cc", cc)]
    head += [
        ("X-Loop", list_address), ("X-Sequence", "42"),
        ("Errors-To", f"{local}-owner@{domain}"), ("Precedence", "list"),
        ("Sender", f"{local}-request@{domain}"), ("X-no-archive", "yes"),
        ("List-Id", f"<{local}.{domain}>"),
        ("List-Help", f"<mailto:sympa@{domain}?subject=help>"),
        ("List-Subscribe", f"<mailto:sympa@{domain}?subject=subscribe%20{local}>"),
        ("List-Unsubscribe", f"<mailto:sympa@{domain}?subject=unsubscribe%20{local}>"),
        ("List-Post", f"<mailto:{list_address}>"),
        ("List-Owner", f"<mailto:{local}-request@{domain}>"),
        ("Archived-At", f"<https://{domain}/sympa/arcsearch_id/{local}/sympa-1>"),
    ]
    return _mail(_common(subject, message_id, head))


def with_headers(raw: bytes, **headers: str) -> bytes:
    """The mail with more headers on top (an autoresponder's, an attacker's)."""
    extra = "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in headers.items())
    return extra.encode() + raw
