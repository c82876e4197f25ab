"""Read a report against its policy: a pure step, values in and values out.

What it finds (hosts, URLs, addresses, product names, CVE ids), where each host stands
(in scope, out of scope, unknown), which out-of-scope classes the text points to, and the
features the duplicate search compares. It decides nothing: staff read it and decide.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from mailbot.config import ScopeConfig
from mailbot.triage.catalogue import CATALOGUE, OutOfScopeClass
from mailbot.triage.duplicates import Duplicate, Features, sketch

# A class is named to staff from this score on (measured on tests/triage/corpus.txt).
CLASS_THRESHOLD = 0.5
# A long report is read from its start: its prose comes first, then scanner output and
# pasted logs that repeat themselves. Hosts, URLs and CVE ids are taken from the first
# READ_LIMIT characters, classes and the text's likeness from the first CLASS_TEXT_LIMIT,
# which keeps a 1 MB report well within 50 ms (bench/assess.py).
READ_LIMIT = 64 * 1024
CLASS_TEXT_LIMIT = 8 * 1024
HOST_LIMIT = 50  # hosts named per bucket; a crawl dump names thousands
URL_LIMIT = 200  # distinct URLs read

_URL = re.compile(r"(?:https?|wss?|ftp)://[^\s<>\"'`)\]}]+")  # over lower-cased text
_HOST = re.compile(
    r"(?<![\w@.-])(?:_[\w-]+\.)*((?:[a-z0-9-]{1,63}\.)+[a-z]{2,24})(?![\w@-])")
_IPV4 = re.compile(r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b")
_NUMBER = re.compile(r"(?<=/)\d+(?=/|$)")
_CVE = re.compile(r"\bcve-\d{4}-\d{4,7}\b")
_PARAM = re.compile(r"[?&]([a-z0-9_\-\[\]]{1,40})=", re.IGNORECASE)
# Names that look like hosts but are files (`index.php`, `jquery.min.js`).
_FILE_SUFFIXES = frozenset(
    ["js", "php", "html", "htm", "py", "sh", "md", "txt", "json", "xml", "css", "png", "jpg",
    "jpeg", "gif", "svg", "pdf", "zip", "exe", "asp", "aspx", "jsp", "cgi", "pl", "rb", "go",
    "java", "log", "ini", "conf", "yml", "yaml", "toml", "csv", "sql", "bak", "env", "map",
    "ts", "lock", "gz", "tar", "doc", "docx", "xls", "xlsx", "ico", "woff", "woff2", "ttf",
    "mp4", "db"])
# A bare name (not in a URL) is a host when its top-level domain is a country's or one of
# these: `document.domain` in a payload is not.
_GENERIC_TLDS = frozenset(
    ["com", "net", "org", "info", "biz", "edu", "gov", "mil", "int", "io", "dev", "app",
    "cloud", "online", "site", "shop", "store", "tech", "xyz", "top", "club", "live", "news",
    "blog", "email", "host", "page", "web", "amsterdam", "frl", "brussels", "vlaanderen",
    "gent", "eus", "cat", "swiss", "berlin"])
# Names no one owns (RFC 2606/6761): an attacker's stand-in, never a finding's host.
_RESERVED_TLDS = frozenset({"test", "example", "invalid", "localhost", "local"})
# What a report means by its vulnerability, for the duplicate search (beside the classes).
_KIND_PHRASES: Mapping[str, tuple[str, ...]] = {
    "xss": (r"\bxss\b", r"cross[- ]site scripting", r"<script", r"onerror=", r"javascript:"),
    "sqli": (r"sql[- ]?inje", r"sqlmap", r"union select", r"' or '1'='1", r"sleep\(\d"),
    "idor": (r"\bidor\b", r"insecure direct object",
             r"other users' (?:data|orders|invoices)"),
    "ssrf": (r"\bssrf\b", r"server[- ]side request forgery", r"169\.254\.169\.254"),
    "rce": (r"\brce\b", r"remote code execution", r"command injection", r"code-uitvoering"),
    "open-redirect": (r"open redirect", r"open-redirect", r"redirect_uri=",
                      r"\?(?:next|url|redirect)=http"),
    "csrf": (r"\bcsrf\b", r"cross[- ]site request forgery"),
    "xxe": (r"\bxxe\b", r"xml external entit"),
    "path-traversal": (r"path traversal", r"directory traversal", r"\.\./\.\./"),
    "account-takeover": (r"account takeover", r"overname van (?:het |een )?account"),
    "exposed-secret": (r"api key", r"access token", r"secret key", r"\.env\b", r"\.git/"),
}


@dataclass(frozen=True, slots=True)
class ClassMatch:
    id: str
    score: float
    clause: str  # the policy's sentence, in the case's language


@dataclass(frozen=True, slots=True)
class Assessment:
    in_scope: tuple[str, ...] = ()
    out_of_scope: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()
    classes: tuple[ClassMatch, ...] = ()
    duplicates: tuple[Duplicate, ...] = ()
    urls: tuple[str, ...] = ()
    cves: tuple[str, ...] = ()
    features: Features = field(default_factory=Features)

    def as_json(self) -> dict[str, Any]:
        """The `assessment` of `mailbot show --json` (SPEC)."""
        return {
            "hosts": {"in_scope": list(self.in_scope), "out_of_scope": list(self.out_of_scope),
                      "unknown": list(self.unknown)},
            "out_of_scope_classes": [{"id": c.id, "score": c.score, "clause": c.clause}
                                     for c in self.classes],
            "duplicates": [{"ref": d.ref, "why": d.why} for d in self.duplicates],
            "urls": list(self.urls),
            "cves": list(self.cves),
        }

    @property
    def suggested_template(self) -> str | None:
        """The canned reply staff are likely to want (they choose)."""
        if self.duplicates:
            return "duplicate-of"
        if self.classes:
            return "out-of-scope"
        if self.out_of_scope and not self.in_scope:
            return "out-of-scope-host"
        if not (self.in_scope or self.out_of_scope or self.unknown):
            return "need-more-information"
        return None


def assess(text: str, scope: ScopeConfig, language: str,
           classes: Mapping[str, OutOfScopeClass] = CATALOGUE) -> Assessment:
    """The assessment of a report's text (subject, body and text attachments, decrypted)
    against a policy's scope; `classes` is the catalogue with the config's own classes."""
    low = text[:READ_LIMIT].lower()
    urls = _unique(m.group(0).rstrip(".,;:!?") for m in _URL.finditer(low))[:URL_LIMIT]
    url_hosts = [h for u in urls if (h := _url_host(u))]
    bare = [m.group(1) for m in _HOST.finditer(low) if _bare_host(m.group(1))]
    ips = [m.group(0) for m in _IPV4.finditer(low) if _public_ip(m.group(0))]
    hosts = [h for h in _unique([*url_hosts, *bare, *ips])
             if h.rpartition(".")[2] not in _RESERVED_TLDS and (not _ip(h) or _public_ip(h))]
    in_scope: list[str] = []
    out: list[str] = []
    unknown: list[str] = []
    for host in hosts:
        {True: in_scope, False: out, None: unknown}[standing(host, scope)].append(host)
    in_scope += [p for p in scope.products if p.lower() in low]
    head = low[:CLASS_TEXT_LIMIT]
    matches = [ClassMatch(c.id, s, c.clause(language))
               for c in (classes[i] for i in scope.out_of_scope if i in classes)
               if (s := score(c, head)) >= CLASS_THRESHOLD]
    matches.sort(key=lambda m: -m.score)
    kinds = tuple(sorted(k for k, phrases in _kinds().items()
                         if any(_found(p, head) for p in phrases)))
    features = Features(
        hosts=tuple(hosts[:HOST_LIMIT]),
        paths=tuple(sorted({p for u in urls[:HOST_LIMIT] if (p := _path(u))})),
        params=tuple(sorted({m.group(1).lower() for u in urls[:HOST_LIMIT]
                             for m in _PARAM.finditer(u)})),
        kinds=(*kinds, *(m.id for m in matches)),
        sketch=sketch(head),
    )
    return Assessment(
        in_scope=tuple(in_scope[:HOST_LIMIT]), out_of_scope=tuple(out[:HOST_LIMIT]),
        unknown=tuple(unknown[:HOST_LIMIT]), classes=tuple(matches),
        urls=tuple(urls[:HOST_LIMIT]),
        cves=tuple(_unique(m.group(0).upper() for m in _CVE.finditer(low))[:HOST_LIMIT])
        if "cve-" in low else (),
        features=features,
    )


def score(cls: OutOfScopeClass, low: str) -> float:
    """0.0-1.0: one phrase of the class 0.6, each further distinct phrase 0.2 more; a
    phrase against it (a proof of concept, other users affected) takes 0.4 off."""
    phrases, unless = _compiled(cls)
    hits = sum(1 for p in phrases if _found(p, low))
    if not hits:
        return 0.0
    value = min(1.0, 0.6 + 0.2 * (hits - 1))
    if any(_found(p, low) for p in unless):
        value -= 0.4
    return round(max(value, 0.0), 2)


Phrase = tuple[str, re.Pattern[str]]  # a literal the text must contain, and the regex


@functools.lru_cache(maxsize=256)
def _compiled(cls: OutOfScopeClass) -> tuple[tuple[Phrase, ...], tuple[Phrase, ...]]:
    return tuple(map(_phrase, cls.phrases)), tuple(map(_phrase, cls.unless))


@functools.cache
def _kinds() -> dict[str, tuple[Phrase, ...]]:
    return {k: tuple(map(_phrase, v)) for k, v in _KIND_PHRASES.items()}


def _phrase(pattern: str) -> Phrase:
    return anchor(pattern), re.compile(pattern)


def _found(phrase: Phrase, low: str) -> bool:
    """A substring test first: most phrases are absent, and `in` is many times cheaper than
    a regex that starts with a group or `\\b` (no literal prefix for re to skip ahead by)."""
    return phrase[0] in low and phrase[1].search(low) is not None


def anchor(pattern: str) -> str:
    """The longest run of plain characters every match of `pattern` contains ('' when it
    has none, or alternatives at its top level): outside groups and classes, not escaped
    (but `\\.` and `\\-`), not made optional by a quantifier."""
    runs, run, depth, i = [], "", 0, 0
    while i < len(pattern):
        ch = pattern[i]
        nxt = pattern[i + 1] if i + 1 < len(pattern) else ""
        if ch == "\\":
            literal = nxt in ".-/ '\"=:,;!@#%&<>"
            quantified = pattern[i + 2:i + 3] in ("?", "*", "{")
            if depth == 0 and literal and not quantified:
                run += nxt
            else:
                runs.append(run)
                run = ""
            i += 2
            continue
        if ch in "([":
            runs.append(run)
            run = ""
            depth += 1 if ch == "(" else 0
            if ch == "[":  # a class: skip to its end (`[]…]`, `[^]…]`, escapes inside)
                j = i + 1 + (nxt == "^")
                j += pattern[j:j + 1] == "]"
                while j < len(pattern) and pattern[j] != "]":
                    j += 2 if pattern[j] == "\\" else 1
                i = j + 1
                if pattern[i:i + 1] in ("?", "*", "{", "+"):
                    i += 1
                continue
        elif ch == ")":
            depth -= 1
            runs.append(run)
            run = ""
        elif ch == "|" and depth == 0:
            return ""  # alternatives: no one literal is required
        elif ch in ".^$+*?{}|" or depth > 0:
            runs.append(run)
            run = ""
        elif nxt in ("?", "*", "{"):
            runs.append(run)  # this character is optional
            run = ""
        else:
            run += ch
        i += 1
    runs.append(run)
    return max(runs, key=len)


def standing(host: str, scope: ScopeConfig) -> bool | None:
    """True in scope, False out of scope, None unknown. The out-of-scope list wins, so
    `*.example.nl` in scope and `legacy.example.nl` out reads as a policy means it."""
    if _matches(host, scope.out_of_scope_hosts):
        return False
    if _matches(host, scope.in_scope):
        return True
    return None


def _matches(host: str, patterns: Sequence[str]) -> bool:
    host = host.lower().rstrip(".")
    ip = _ip(host)
    for pattern in patterns:
        p = pattern.lower().rstrip(".")
        if "/" in p and ip is not None:
            try:
                if ip in ipaddress.ip_network(p, strict=False):
                    return True
            except ValueError:
                continue
        elif p.startswith("*."):
            if host.endswith(p[1:]) and host != p[2:]:
                return True
        elif host == p:
            return True
    return False


def _url_host(url: str) -> str | None:
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return host.lower() if host else None


def _path(url: str) -> str | None:
    """`host/path` of a URL, the part a duplicate shares; numbers in it (the id of an
    object, which each report of an IDOR picks anew) read as `{n}`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if not parts.hostname:
        return None
    path = _NUMBER.sub("{n}", parts.path.rstrip("/")) or "/"
    return f"{parts.hostname.lower()}{path}"


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _public_ip(value: str) -> bool:
    """An address that can be a finding's host: not loopback, link-local, multicast."""
    ip = _ip(value)
    return ip is not None and not (ip.is_loopback or ip.is_link_local or ip.is_multicast
                                   or ip.is_unspecified)


def _bare_host(name: str) -> bool:
    tld = name.rpartition(".")[2].lower()
    if tld in _FILE_SUFFIXES:
        return False
    return (len(tld) == 2 and tld.isalpha()) or tld in _GENERIC_TLDS


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
