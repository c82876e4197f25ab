"""STARTTLS for the listener: the server context from `[smtp_in] tls_cert`/`tls_key`, and
which peers must use it (`require_tls`: every peer outside loopback)."""

from __future__ import annotations

import ipaddress
import ssl

from mailbot.config import SmtpInConfig
from mailbot.errors import ConfigError


def server_context(config: SmtpInConfig) -> ssl.SSLContext | None:
    """None when no certificate is configured (then STARTTLS is not offered)."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(config.tls_cert, config.tls_key)
    except FileNotFoundError as e:
        raise ConfigError("config", "smtp_in.tls_cert", f"cannot read {e.filename}") from None
    except (ssl.SSLError, OSError) as e:
        raise ConfigError("config", "smtp_in.tls_cert",
                          f"cannot load {config.tls_cert} / {config.tls_key}: {e}") from None
    return context


def is_loopback(peer: object) -> bool:
    """Whether a peer (`transport.get_extra_info("peername")`) is this host."""
    host = peer[0] if isinstance(peer, tuple) and peer else None
    if not isinstance(host, str):
        return isinstance(peer, str)  # a Unix socket path: local by construction
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback
