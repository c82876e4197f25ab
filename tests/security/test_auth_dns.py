"""[auth] dns_servers: DKIM keys are asked of the resolver the operator names, only."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mailbot.config import load_config
from mailbot.errors import ConfigErrors
from tests.security.conftest import World, command_mail, sign


async def test_keys_come_from_the_named_resolver_only(world: World) -> None:
    """The attacker's signature can only be checked against what the operator's resolver
    says: when it knows no key for the selector, a signed command proves nothing (no
    other resolver is asked behind its back)."""
    ref = await world.open_case()
    world.dns.records.clear()
    raw = sign(command_mail(ref))
    await world.send(raw)
    await world.settled()
    assert world.verdict(raw)[2:] == ("untrusted-staff", 0)
    assert world.dns.asked.count("mail._domainkey.example.org.") >= 1
    assert world.state(ref) == "new"


def with_servers(path: Path, servers: str) -> Path:
    path.write_text(path.read_text().replace("[auth]\n", f"[auth]\ndns_servers = {servers}\n"))
    return path


@pytest.mark.parametrize(("servers", "read"), [
    ('["127.0.0.1:5353"]', (("127.0.0.1", 5353),)),
    ('["127.0.0.1", "[::1]:53", "::1"]', (("127.0.0.1", 53), ("::1", 53), ("::1", 53))),
    ("[]", ()),
])
def test_dns_servers_are_read(write_config: Callable[..., Path], servers: str,
                              read: tuple[object, ...]) -> None:
    """IP, IP:port and [IPv6]:port name a resolver; none: the system's."""
    path = with_servers(write_config(), servers)
    assert load_config(path).auth.dns_servers == read


@pytest.mark.parametrize("bad", ['["ns.example.org"]', '["127.0.0.1:99999"]', '[53]',
                                 '"127.0.0.1"', '["127.0.0.1:x"]'])
def test_a_bad_dns_server_names_the_key(write_config: Callable[..., Path], bad: str) -> None:
    """A resolver that is not an IP address (with a port) is a configuration error that
    names the key, never a silent fallback to another resolver."""
    path = with_servers(write_config(), bad)
    with pytest.raises(ConfigErrors) as e:
        load_config(path)
    assert "auth.dns_servers" in str(e.value)
