"""gpg's run times reach the daemon's metrics: each decryption, verification and
encryption is timed by operation (issue 15: gpg call durations in /metrics)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mailbot.mail.pgp import Gpg
from mailbot.metrics import Live
from tests.pgp_support import (
    FPR,
    Client,
    as_mail,
    bot_home,
    encrypted_part,
    kill_agent,
    multipart,
    report_part,
    signed_part,
    text_part,
)


@pytest.fixture
def gpg() -> Iterator[Gpg]:
    g, home = bot_home()
    yield g
    kill_agent(home)


def test_each_gpg_run_is_timed_by_operation(pgp_client: Client, gpg: Gpg) -> None:
    """Opening an encrypted mail, verifying a signed one and sealing a reply each report
    their operation and a duration to the observer."""
    seen: list[tuple[str, float]] = []
    gpg.observe = lambda op, seconds: seen.append((op, seconds))
    gpg.open_mail(as_mail(encrypted_part(pgp_client.encrypt(report_part("RCE", subject="x")))))
    gpg.open_mail(as_mail(multipart(signed_part(pgp_client, text_part("Thanks.\n")))))
    gpg.seal(as_mail(text_part("Your report is in.\n")), [FPR["alice"]], FPR["inbox"],
             "[SEC-2026-0001] ...")
    assert [op for op, _ in seen] == ["decrypt", "verify", "encrypt"]
    assert all(seconds > 0 for _, seconds in seen)


def test_gpg_runs_are_exposed_as_a_histogram(pgp_client: Client, gpg: Gpg) -> None:
    """With the daemon's wiring (`Gpg.observe = Live.gpg_run`), /metrics carries
    mailbot_gpg_seconds counted per operation."""
    live = Live()
    gpg.observe = live.gpg_run
    for _ in range(2):
        gpg.open_mail(as_mail(encrypted_part(pgp_client.encrypt(report_part("x")))))
    families = {f.name: f for f in text_string_to_metric_families(
        generate_latest(live.registry).decode())}
    counts = {s.labels["operation"]: s.value for s in families["mailbot_gpg_seconds"].samples
              if s.name == "mailbot_gpg_seconds_count"}
    assert counts == {"decrypt": 2.0}
