"""DKIM verification (dkimpy) and the resolver it asks; blocking: call it in a thread.

What a valid signature proves is more than its domain: which headers it covers (h=),
whether it covers the whole body (l=), and which header fields dkimpy read. triage/auth.py
decides from these whether a staff mail is proven; this module only reports them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dkim
import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver
from dkim.canonicalization import CanonicalizationPolicy

from mailbot.models import USED_HEADERS

DnsFunc = Callable[..., bytes | None]
MAX_SIGNATURES = 5  # each costs a DNS lookup and an RSA verification


@dataclass(frozen=True, slots=True)
class DkimSignature:
    """One signature that verified."""

    domain: str  # d=, lower-cased
    signed: frozenset[str]  # h=: the header names it covers, lower-cased
    partial_body: bool  # l= is shorter than the body: what follows is anyone's


@dataclass(frozen=True, slots=True)
class DkimResult:
    signatures: tuple[DkimSignature, ...] = ()  # the valid ones only
    # Every occurrence of the USED_HEADERS as dkimpy read the header block: a proof holds
    # only if the parser the bot reads with saw the same fields.
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def domains(self) -> tuple[str, ...]:
        return tuple(s.domain for s in self.signatures)


def verify(raw: bytes, dnsfunc: DnsFunc | None = None) -> DkimResult:
    """The valid DKIM signatures of a mail, with what each covers. `dnsfunc` answers TXT
    lookups (None: the system's resolver)."""
    try:
        checker = dkim.DKIM(raw, timeout=5)
        count = sum(1 for name, _ in checker.headers if name.lower() == b"dkim-signature")
    except Exception:  # a header block dkimpy cannot read carries no valid signature
        return DkimResult()
    used = frozenset(USED_HEADERS)
    headers = tuple((n, v) for n, v in (
        (name.decode("ascii", "replace").lower(), _text(value))
        for name, value in checker.headers) if n in used)
    found = [s for idx in range(min(count, MAX_SIGNATURES))
             if (s := _one(raw, idx, dnsfunc)) is not None]
    return DkimResult(tuple(found), headers)


def _one(raw: bytes, idx: int, dnsfunc: DnsFunc | None) -> DkimSignature | None:
    try:
        checker = dkim.DKIM(raw, timeout=5)
        ok = checker.verify(idx, dnsfunc=dnsfunc) if dnsfunc else checker.verify(idx)
        if not ok or not checker.domain:
            return None
        tags = checker.signature_fields
        length = tags.get(b"l")
        partial = False
        if length is not None:
            policy = CanonicalizationPolicy.from_c_value(tags.get(b"c", b"simple/simple"))
            partial = int(length) < len(policy.canonicalize_body(checker.body))
        return DkimSignature(
            domain=checker.domain.decode("ascii", "replace").lower(),
            signed=frozenset(h.decode("ascii", "replace").lower()
                             for h in checker.include_headers),
            partial_body=partial,
        )
    except Exception:  # dkimpy raises on a bad signature as well as returning False
        return None


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


def resolver(servers: Sequence[tuple[str, int]]) -> DnsFunc:
    """A TXT lookup that asks only `servers`, each (IP, port): `[auth] dns_servers`."""
    res = dns.resolver.Resolver(configure=False)
    res.nameservers = [dns.nameserver.Do53Nameserver(host, port) for host, port in servers]
    res.cache = None  # a key rotated at the signer is seen at once

    def txt(name: bytes | str, timeout: int = 5) -> bytes | None:
        qname = name.decode("ascii") if isinstance(name, bytes) else name
        try:
            answer = res.resolve(qname, dns.rdatatype.TXT, lifetime=timeout,
                                 raise_on_no_answer=False)
        except (dns.exception.DNSException, UnicodeError):
            return None
        for rrset in answer.response.answer:
            if rrset.rdtype == dns.rdatatype.TXT:
                for rdata in rrset:
                    return b"".join(rdata.strings)
        return None

    return txt
