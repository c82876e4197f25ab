"""What may reach the log: no reply token, password, passphrase or case text, at any level.

Two measures. Libraries whose chatter carries mail are held above the levels where they
write it: aiosmtpd's `mail.log` logs every command line (each RCPT TO, with a staff reply
address and its token) at INFO; aiosqlite logs each statement with its parameters (raw mail,
case text) at DEBUG; python-gnupg logs decrypted output, and imaplib (through imapclient)
every line the server sends, at DEBUG. And a filter on every handler masks what still looks
like a reply token (`local+REF.<token>@domain`), in messages and tracebacks alike, for the
log lines of our own that name an address.
"""

from __future__ import annotations

import logging
import re

# Their messages carry mail text or addresses with tokens below these levels.
QUIET = {
    "mail.log": logging.WARNING,
    "aiosqlite": logging.INFO,
    "gnupg": logging.INFO,
    "imapclient": logging.INFO,
    "imapclient.imaplib": logging.WARNING,
}

# The token part of a reply address (triage/auth.py): `+<REF>.<20 hex>@`.
_TOKEN = re.compile(r"(\+[A-Za-z][A-Za-z0-9]{0,9}-\d{4}-\d{4,}\.)[0-9A-Fa-f]{8,}(@)")
MASK = "****"


def mask(text: str) -> str:
    return _TOKEN.sub(rf"\g<1>{MASK}\g<2>", text)


class MaskTokens(logging.Filter):
    """Rewrites each record that passes with its tokens masked (message and traceback)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: let logging report it as it would
            return True
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        if record.stack_info:
            record.stack_info = mask(record.stack_info)
        return True


def install() -> None:
    """Quiet the chatty libraries and mask tokens on every handler of the root logger
    (idempotent: the daemon calls it at start)."""
    for name, level in QUIET.items():
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < level:
            logger.setLevel(level)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, MaskTokens) for f in handler.filters):
            handler.addFilter(MaskTokens())
