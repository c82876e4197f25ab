"""The one encrypt / withhold / clear decision for outgoing mail (issue 12 item 11), over
every combination of required or not, and a key that is missing, usable or unusable."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mailbot.config import InboxConfig
from mailbot.mail.pgp import Gpg
from mailbot.triage.crypto import Sealer
from tests.pgp_support import FPR, KEYS, bot_home, kill_agent

RAW = (b"From: security@example.org\r\nTo: r@example.net\r\nSubject: [SEC-2026-0001] Re: x\r\n"
       b"Content-Type: text/plain; charset=utf-8\r\nMIME-Version: 1.0\r\n\r\nWe got it.\r\n")
INBOX = InboxConfig("security", "security@example.org", "SEC", "security", pgp_key=FPR["inbox"])


@pytest.fixture(scope="module")
def gpg() -> Iterator[Gpg]:
    g, home = bot_home()
    g.import_keys((KEYS / "reporter.pub.asc").read_bytes())
    g.import_keys((KEYS / "old.pub.asc").read_bytes())  # expired
    yield g
    kill_agent(home)


# key -> (required: (sent, withheld?), not required: (sent, clear_reason?))
CASES = {
    "no key": None,
    "usable key": FPR["reporter"],
    "expired key": FPR["old"],
    "key not in the keyring": FPR["mallory"],
}


@pytest.mark.parametrize("required", [True, False])
@pytest.mark.parametrize("key", CASES)
async def test_sealer_decides_encrypt_withhold_or_clear(gpg: Gpg, key: str,
                                                       required: bool) -> None:
    """Encrypted when it can be; else withheld when required, else clear, and says why."""
    seal = Sealer(gpg, INBOX, CASES[key], "SEC-2026-0001", required)
    sent = await seal(RAW)
    if key == "usable key":
        assert sent is not None and b"multipart/encrypted" in sent and b"We got it" not in sent
        assert (seal.encrypted_to, seal.withheld, seal.clear_reason) == (FPR["reporter"], None,
                                                                         None)
    elif required:
        assert sent is None
        fpr = CASES[key]
        assert seal.withheld and (fpr is None or fpr in seal.withheld)
    else:
        assert sent == RAW
        assert seal.withheld is None
        assert (seal.clear_reason is None) == (key == "no key")


async def test_no_gpg_at_all_withholds_what_is_required() -> None:
    """With PGP off (gpg cannot run), a key on file cannot be used: withheld if required."""
    seal = Sealer(None, INBOX, FPR["reporter"], "SEC-2026-0001", True)
    assert await seal(RAW) is None and seal.withheld and "gpg cannot run" in seal.withheld
