"""The one exception tree of mailbot.

::

    MailbotError
    ├─ ConfigError            names file, key and reason; raised at start or by `check`
    ├─ SchemaTooNew           the database was migrated by a newer mailbot
    ├─ MessageError           permanent for this mail -> quarantine (or 5xx at intake)
    │  ├─ ParseError
    │  ├─ DecryptError(status)
    │  └─ CommandError(line, reason)
    ├─ TransientError         retry with backoff (or 4xx at intake)
    │  ├─ StoreBusy
    │  ├─ DeliveryDeferred(code)
    │  └─ ImapError           IMAP: no connection, TLS failed, dropped, timed out, BYE
    │     ├─ ImapLoginRefused
    │     └─ ImapNoFolder
    └─ DeliveryFailed(code)   the relay said 5xx

Each also inherits a builtin where one fits, so generic handlers still work.
"""

from __future__ import annotations

from pathlib import Path


class MailbotError(Exception):
    """Base of every error mailbot raises on purpose."""


class ConfigError(MailbotError, ValueError):
    """A configuration problem: which file, which key, and why."""

    def __init__(self, file: Path | str | None, key: str, reason: str) -> None:
        self.file = str(file) if file is not None else "<defaults>"
        self.key = key
        self.reason = reason
        super().__init__(f"{self.file}: {key}: {reason}")


class ConfigErrors(MailbotError, ValueError):
    """Every problem found in one configuration file, reported together."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


class SchemaTooNew(MailbotError, RuntimeError):
    """The database holds migrations this mailbot does not know: running would misread it."""

    def __init__(self, found: int, known: int) -> None:
        super().__init__(f"the database's schema is version {found}, newer than this mailbot's"
                         f" {known}: run a mailbot at least as new as the one that migrated it")


class MessageError(MailbotError, ValueError):
    """A mail that can never be handled as it is: it goes to quarantine."""


class ParseError(MessageError):
    """The mail cannot be parsed into anything usable."""


class DecryptError(MessageError):
    """PGP decryption failed; `status` is gpg's own word for why."""

    def __init__(self, status: str) -> None:
        self.status = status
        super().__init__(f"cannot decrypt: {status}")


class CommandError(MessageError):
    """A staff command line that is unknown or malformed."""

    def __init__(self, line: int, reason: str) -> None:
        self.line = line
        self.reason = reason
        super().__init__(f"line {line}: {reason}")


class TransientError(MailbotError):
    """Worth trying again later."""


class StoreBusy(TransientError, TimeoutError):
    """The database was locked or could not be written (disk full, read-only)."""


class DeliveryDeferred(TransientError, ConnectionError):
    """The relay is unreachable or answered 4xx."""

    def __init__(self, code: int | None, message: str) -> None:
        self.code = code
        super().__init__(f"{code or 'no answer'}: {message}")


class ImapError(TransientError, ConnectionError):
    """An IMAP server could not be reached or used; the watcher reconnects later."""


class ImapLoginRefused(ImapError):
    """The server refused the username or password (retried: a secret can be fixed)."""


class ImapNoFolder(ImapError):
    """The folder to watch does not exist (or cannot be selected) on the server."""


class DeliveryFailed(MailbotError, ConnectionError):
    """The relay refused the mail for good (5xx)."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        super().__init__(f"{code}: {message}")
