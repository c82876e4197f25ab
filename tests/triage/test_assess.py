"""The assessment as a pure step: hosts against the scope, classes, the JSON shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mailbot.config import ScopeConfig, parse_config
from mailbot.errors import ConfigErrors
from mailbot.triage.assess import anchor, assess, standing
from mailbot.triage.catalogue import CATALOGUE
from mailbot.triage.duplicates import Features, likely_duplicates

SCOPE = ScopeConfig(in_scope=("example.nl", "*.example.nl", "app.example.com",
                              "203.0.113.0/24", "2001:db8::/32"),
                    products=("Example App",),
                    out_of_scope_hosts=("legacy.example.nl", "*.cdn.example.nl"),
                    out_of_scope=("spf-dkim-dmarc", "self-xss"))


@pytest.mark.parametrize(("host", "expected"), [
    ("example.nl", True), ("www.example.nl", True), ("a.b.example.nl", True),
    ("EXAMPLE.NL.", True), ("app.example.com", True), ("example.com", None),
    ("www.app.example.com", None), ("badexample.nl", None), ("example.nl.evil.com", None),
    ("legacy.example.nl", False), ("img.cdn.example.nl", False), ("203.0.113.200", True),
    ("203.0.114.1", None), ("2001:db8::1", True),
])
def test_scope_exact_wildcard_cidr(host: str, expected: bool | None) -> None:
    """Exact names, `*.` wildcards (subdomains only), CIDR ranges; the out-of-scope list
    wins; a look-alike (`badexample.nl`, `example.nl.evil.com`) is never in scope."""
    assert standing(host, SCOPE) is expected


def test_assessment_json_shape() -> None:
    """`as_json` has the shape of SPEC: hosts by bucket, classes with score and clause,
    duplicates; the clause is in the case's language."""
    a = assess("No DMARC record on example.nl (p=none), also see https://legacy.example.nl/x "
               "and evil.com; the Example App too.", SCOPE, "nl")
    data: dict[str, Any] = a.as_json()
    assert data["hosts"] == {"in_scope": ["example.nl", "Example App"],
                             "out_of_scope": ["legacy.example.nl"], "unknown": ["evil.com"]}
    [cls] = data["out_of_scope_classes"]
    assert cls["id"] == "spf-dkim-dmarc" and 0.5 <= cls["score"] <= 1.0
    assert cls["clause"] == CATALOGUE["spf-dkim-dmarc"].nl
    assert data["duplicates"] == []
    assert a.suggested_template == "out-of-scope"


def test_only_the_policys_classes_are_named() -> None:
    """A class the policy does not list as out of scope is never named."""
    a = assess("Clickjacking: X-Frame-Options missing on www.example.nl", SCOPE, "en")
    assert a.classes == ()


def test_proof_of_concept_argues_against_self_xss() -> None:
    """Stored XSS that reaches other users is not called self-XSS."""
    weak = assess("self-xss in my profile on app.example.com", SCOPE, "en")
    strong = assess("self-xss? no: stored xss, it runs for other users of app.example.com",
                    SCOPE, "en")
    assert [c.id for c in weak.classes] == ["self-xss"]
    assert strong.classes == ()


def test_hostile_text_is_data() -> None:
    """An attacker's report full of markup, file names, loopback and reserved names and a
    URL with a bad port yields only the real host it names, without an error."""
    text = ("<script>document.domain</script> index.php jquery.min.js 127.0.0.1 "
            "169.254.169.254 evil.test user@example.nl http://[::1]:80/ https://x.example.nl:99999/")
    a = assess(text, SCOPE, "en")
    assert a.in_scope == ("x.example.nl",)
    assert a.unknown == ()
    assert a.out_of_scope == ()


def test_sister_sites_and_near_identical_text() -> None:
    """The same flaw on a sister site, or the same text reworded, is a likely duplicate;
    the same host with another flaw is not."""
    groups = (("shop.example.nl", "shop.example.be"),)
    first = assess("Stored XSS in https://shop.example.nl/review, runs for all visitors",
                   SCOPE, "en").features
    sister = assess("The review page https://shop.example.be/review keeps <script>: stored xss",
                    SCOPE, "en").features
    other = assess("SQL injection in https://shop.example.nl/cart?id=1' sleep(5)", SCOPE,
                   "en").features
    found = likely_duplicates(sister, [("SEC-2026-0001", first), ("SEC-2026-0002", other)],
                              groups)
    assert [(d.ref, d.why) for d in found] == [
        ("SEC-2026-0001", "same xss on sister site shop.example.nl (same codebase as "
                          "shop.example.be)")]
    assert Features.from_json(first.as_json()) == first


def test_config_policy_keys(tmp_path: Path) -> None:
    """The policy keys are read, product names told apart from hosts, own classes added."""
    cfg = parse_config({
        "policy": {"s": {
            "in_scope": ["example.nl", "*.example.nl", "203.0.113.0/24", "Example App"],
            "out_of_scope": ["dos", "own-thing"],
            "classes": {"own-thing": {"en": "Our own.", "nl": "Van ons.",
                                      "phrases": ["own thing"]}},
            "same_codebase": [["a.example.nl", "a.example.be"]],
            "rewards": {"high": "EUR 500", "low": "swag"},
            "policy_url": "https://example.nl/cvd",
        }},
        "inbox": [{"name": "s", "address": "s@example.org", "prefix": "SEC", "policy": "s"}],
    }, tmp_path / "m.toml")
    scope = cfg.policies["s"].scope
    assert scope.in_scope == ("example.nl", "*.example.nl", "203.0.113.0/24")
    assert scope.products == ("Example App",)
    assert scope.rewards["high"] == "EUR 500"
    assert [c.id for c in assess("an own thing", scope, "nl", scope.catalogue).classes] == [
        "own-thing"]


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    """An unknown class, a bad range, a bad reward table: each error names its key."""
    with pytest.raises(ConfigErrors) as e:
        parse_config({
            "policy": {"s": {"in_scope": ["203.0.113.0/99"], "out_of_scope": ["nope"],
                             "rewards": {"huge": "EUR 1"}, "policy_url": "http://x"}},
            "inbox": [{"name": "s", "address": "s@example.org", "prefix": "SEC",
                       "policy": "s"}],
        }, tmp_path / "m.toml")
    text = str(e.value)
    for key in ("policy.s.in_scope", "policy.s.out_of_scope", "policy.s.rewards",
                "policy.s.policy_url"):
        assert key in text


@pytest.mark.parametrize(("pattern", "literal"), [
    (r"\bdmarc\b", "dmarc"), (r"reveals? the (?:server )?version", "version"),
    (r"e-?mails? (?:kunnen|can)", "mail"), (r"a|b", ""), (r"x[\]]yz", "yz"),
    (r"abc\.def", "abc.def"), (r"foo(bar)?baz", "foo"), (r"[^]a]bc", "bc"),
])
def test_anchor_is_a_literal_every_match_contains(pattern: str, literal: str) -> None:
    """The substring tested before a phrase's regex is one no match can lack."""
    assert anchor(pattern) == literal


def test_anchors_never_hide_a_match() -> None:
    """Over both corpora, every phrase of the catalogue that matches a report has its
    anchor in the report: the shortcut changes speed, never a result."""
    import re

    from tests.triage.corpus import HOLDOUT, reports

    texts = [r.text.lower() for r in reports() + reports(HOLDOUT)]
    for cls in CATALOGUE.values():
        for pattern in (*cls.phrases, *cls.unless):
            rx, lit = re.compile(pattern), anchor(pattern)
            assert all(lit in m.group(0) for t in texts if (m := rx.search(t))), pattern
