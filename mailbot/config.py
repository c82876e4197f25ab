"""Load the TOML configuration into frozen dataclasses.

Every problem is reported with the file, the key and the reason, and all of a file's
problems are reported at once (`ConfigErrors`), so `mailbot check` shows them together.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from mailbot.errors import ConfigError, ConfigErrors
from mailbot.sla import Duration, Unit, parse_duration
from mailbot.triage.catalogue import CATALOGUE, OutOfScopeClass

DEFAULT_PATH = Path("config/mailbot.toml")
ENV_VAR = "MAILBOT_CONFIG"
LANGUAGES = ("en", "nl")
ROLES = ("member", "lead", "manager")
STAFF_PROOFS = ("reply-token", "dkim", "pgp")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

T = TypeVar("T")


POSTGRES = ("postgresql://", "postgres://")


@dataclass(frozen=True, slots=True)
class StorageConfig:
    database: Path = Path("var/mailbot.db")  # the SQLite file, unless `url` is set
    url: str | None = None  # postgresql://…: PostgreSQL instead of the file
    password_file: Path | None = None  # PostgreSQL's password (else $PGPASSWORD or the URL)

    @property
    def target(self) -> str | Path:
        return self.url or self.database


@dataclass(frozen=True, slots=True)
class SmtpInConfig:
    host: str = "127.0.0.1"
    port: int = 8025
    protocol: str = "smtp"  # or "lmtp"
    max_message_size: int = 25 * 1024 * 1024
    max_connections: int = 100  # sessions at once; one more is answered 421 and closed
    max_connections_per_ip: int = 20
    data_timeout: float = 180.0  # seconds without a byte during DATA
    data_max_seconds: float = 600.0  # seconds for one whole DATA block
    # Mails read to a spool file (larger ones) are loaded to be stored this many bytes at
    # once at most; the rest wait their turn.
    memory_budget: int = 32 * 1024 * 1024
    tls_cert: Path | None = None  # PEM; with tls_key, STARTTLS is offered
    tls_key: Path | None = None
    require_tls: bool = False  # peers outside loopback must STARTTLS before MAIL


@dataclass(frozen=True, slots=True)
class SmtpOutConfig:
    """Where outgoing mail goes: a relay, or (when `maildir` is set) a local maildir."""

    host: str = "127.0.0.1"
    port: int = 25
    tls: str = "none"  # none | starttls | implicit
    username: str | None = None
    password_file: Path | None = None
    timeout: float = 30.0
    maildir: Path | None = None


@dataclass(frozen=True, slots=True)
class GpgConfig:
    home: Path = Path("var/gnupg")
    passphrase_file: Path | None = None
    max_processes: int = 4  # gpg processes at once, at most


# Mail kinds that `require_encryption` may name: never sent in clear to a reporter.
ENCRYPTABLE_KINDS = ("ack", "update")


@dataclass(frozen=True, slots=True)
class ScopeConfig:
    """What a policy says is in and out of scope, its rewards and credit (issue 17)."""

    in_scope: tuple[str, ...] = ()  # hosts, `*.domain` wildcards, CIDR ranges
    products: tuple[str, ...] = ()  # the in_scope entries that are product names
    out_of_scope_hosts: tuple[str, ...] = ()  # win over in_scope
    out_of_scope: tuple[str, ...] = ()  # class ids (the catalogue and `classes`)
    classes: Mapping[str, OutOfScopeClass] = field(default_factory=dict)  # the config's own
    same_codebase: tuple[tuple[str, ...], ...] = ()  # sister sites: one flaw, one report
    rewards: Mapping[str, str] = field(default_factory=dict)  # severity -> reward
    policy_url: str | None = None

    @property
    def catalogue(self) -> Mapping[str, OutOfScopeClass]:
        return {**CATALOGUE, **self.classes}

    @property
    def named(self) -> bool:
        """The policy names a scope: only then is a report assessed (it costs intake about
        3 ms a mail, which a policy without one should not pay for an empty answer)."""
        return bool(self.in_scope or self.out_of_scope_hosts or self.out_of_scope
                    or self.same_codebase)


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    name: str
    timezone: str = "Europe/Amsterdam"
    holidays: str | None = "NL"
    workdays: tuple[int, ...] = (0, 1, 2, 3, 4)  # Monday = 0
    business_hours: tuple[int, int] = (9 * 60, 17 * 60)  # minutes after midnight
    first_response: Duration = field(default_factory=lambda: parse_duration("3 business days"))
    resolution: Duration = field(default_factory=lambda: parse_duration("30 days"))
    warn_before: Duration = field(default_factory=lambda: parse_duration("1 business day"))
    breach_after: Duration = field(default_factory=lambda: parse_duration("1 business day"))
    update_every: Duration | None = None  # the reporter hears from us at least this often
    # Reporter mail of these kinds goes encrypted or not at all (staff are told instead).
    require_encryption: tuple[str, ...] = ()
    scope: ScopeConfig = ScopeConfig()


@dataclass(frozen=True, slots=True)
class ImapConfig:
    """An IMAP folder watched for an inbox (see `intake/watcher.py`)."""

    host: str
    username: str
    port: int = 993
    tls: str = "implicit"  # implicit | starttls | none
    ca_file: Path | None = None  # trust this CA instead of the system's (a private CA)
    password_file: Path | None = None
    password_env: str | None = None
    folder: str = "INBOX"
    processed_folder: str | None = None  # move taken mail here instead of marking it
    mark: str = "seen"  # seen (\Seen) | keyword ($MailbotTaken): how taken mail is marked
    poll_interval: float = 60.0  # seconds between looks without IDLE; also renews an IDLE
    idle_check: float = 10.0  # seconds: while idling, look for mail anyway (0: trust IDLE)
    backoff_max: float = 300.0  # seconds: the longest wait between reconnection attempts
    timeout: float = 30.0  # seconds for connecting and for each command

    @property
    def mailbox(self) -> str:
        """The folder's identity in the database (and in `source_ref`s)."""
        return f"{self.username}@{self.host}/{self.folder}"

    def password(self) -> str:
        """Read the secret now (a rotated password file is picked up on reconnection)."""
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ConfigError("environment", "imap.password_env",
                                  f"${self.password_env} is not set")
            return value
        assert self.password_file is not None  # the reader requires one of the two
        try:
            return self.password_file.read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ConfigError(self.password_file, "imap.password_file",
                              f"cannot read: {e.strerror}") from None


@dataclass(frozen=True, slots=True)
class InboxConfig:
    name: str
    address: str
    prefix: str
    policy: str
    language: str = "en"
    pgp_key: str | None = None
    imap: ImapConfig | None = None
    notify: tuple[str, ...] = ()  # who hears of new cases and follow-ups; () = all staff
    staff_auth: tuple[str, ...] = ("reply-token",)  # proofs that a mail is from staff
    # Our own mailing lists or groups that deliver to this inbox (their List-Id): their
    # posts are mail to the inbox (triage/lists.py). Aliases: other addresses of the inbox,
    # such as the group's own when the bot is one of its members.
    list_ids: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    retention: timedelta | None = None  # after closing: its mail and texts are deleted

    @property
    def addresses(self) -> tuple[str, ...]:
        """The inbox address and its aliases, lower-cased."""
        return (self.address.lower(), *(a.lower() for a in self.aliases))

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]


@dataclass(frozen=True, slots=True)
class StaffConfig:
    address: str
    role: str = "member"
    name: str | None = None
    pgp_fingerprint: str | None = None


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """Secrets for staff authentication. The HMAC secret is created on first start."""

    secret_file: Path = Path("var/mailbot.secret")
    # A command mail dated further from now than this is refused as a replay.
    replay_window: timedelta = timedelta(days=7)
    # The resolvers DKIM keys are looked up at, as (IP, port); empty: the system's.
    dns_servers: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    # Beyond this many new cases from one sender within an hour, their cases are still
    # opened, but neither acknowledged nor announced to staff one by one (a flood, a loop).
    acks_per_sender_per_hour: int = 10
    # Beyond this many acknowledgements to anyone within an hour (many forged senders), the
    # same: stored and threaded, not acknowledged.
    acks_per_hour: int = 200
    # Notifications to one staff member within an hour (default: acks_per_hour); past it,
    # as for cases past either limit above, mails are listed in the summary instead.
    notifications_per_hour: int = 200
    # What a limit holds back still reaches staff: listed in one summary mail per staff
    # member per interval (never hidden, never one mail each).
    summary_interval: timedelta = timedelta(minutes=1)
    # Attachment bytes one staff notification carries, and one staff member's notifications
    # in an hour; what is left out is named with its size and the command that writes it.
    notify_attachments_per_mail: int = 5 * 1024 * 1024
    notify_attachments_per_hour: int = 20 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class EscalationConfig:
    interval: timedelta = timedelta(minutes=1)  # how often the deadline sweep runs


@dataclass(frozen=True, slots=True)
class SecurityTxtConfig:
    """The values of `mailbot security-txt` (RFC 9116) beyond the inboxes themselves."""

    encryption: str | None = None  # where the inbox key is published (https://…/key.asc)
    policy: str | None = None
    canonical: str | None = None
    acknowledgments: str | None = None
    hiring: str | None = None
    expires: timedelta = timedelta(days=180)  # from the moment the file is made
    languages: tuple[str, ...] = ()  # default: the inboxes' languages
    inboxes: tuple[str, ...] = ()  # the inboxes named as Contact; default: all


@dataclass(frozen=True, slots=True)
class DigestConfig:
    schedule: str = "mon 09:00"  # in the time zone of the first inbox's policy
    to: tuple[str, ...] = ()
    language: str = "en"  # of the digest and of `mailbot report`
    target: int = 90  # percent of first responses on time the charts hold up as the goal


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """/healthz, /readyz and /metrics; off unless `listen` is set."""

    listen: str | None = None  # "127.0.0.1:8026", "[::1]:8026"

    def address(self) -> tuple[str, int] | None:
        """(host, port) of `listen`, checked at load; None when off."""
        if self.listen is None:
            return None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


@dataclass(frozen=True, slots=True)
class Config:
    source: Path | None  # None: the embedded defaults
    storage: StorageConfig
    smtp_in: SmtpInConfig
    smtp_out: SmtpOutConfig
    gpg: GpgConfig
    policies: Mapping[str, PolicyConfig]
    inboxes: tuple[InboxConfig, ...]
    staff: tuple[StaffConfig, ...]
    digest: DigestConfig
    auth: AuthConfig = AuthConfig()
    escalation: EscalationConfig = EscalationConfig()
    limits: LimitsConfig = LimitsConfig()
    security_txt: SecurityTxtConfig = SecurityTxtConfig()
    http: HttpConfig = HttpConfig()

    def inbox_for(self, address: str) -> InboxConfig | None:
        """The inbox a recipient address reaches, also as `local+anything@domain`."""
        local, _, domain = address.lower().partition("@")
        local = local.split("+", 1)[0]
        for inbox in self.inboxes:
            if f"{local}@{domain}" in inbox.addresses:
                return inbox
        return None

    def own_addresses(self) -> frozenset[str]:
        """Every address of every inbox, aliases too: never a reporter's."""
        return frozenset(a for inbox in self.inboxes for a in inbox.addresses)

    def inbox(self, name: str) -> InboxConfig:
        for inbox in self.inboxes:
            if inbox.name == name:
                return inbox
        raise KeyError(name)

    def is_staff(self, address: str) -> bool:
        address = address.lower()
        return any(s.address.lower() == address for s in self.staff)

    def notified(self, inbox: InboxConfig) -> tuple[str, ...]:
        """The addresses that hear of an inbox's new cases and follow-ups."""
        return inbox.notify or tuple(s.address for s in self.staff)


def default_config() -> Config:
    """What `mailbot run` uses with no config file: a newcomer's sandbox."""
    return Config(
        source=None,
        storage=StorageConfig(),
        smtp_in=SmtpInConfig(),
        smtp_out=SmtpOutConfig(maildir=Path("var/outbox")),
        gpg=GpgConfig(),
        policies={
            "security": PolicyConfig(name="security"),
            "support": PolicyConfig(
                name="support", first_response=parse_duration("5 business days")
            ),
        },
        inboxes=(
            InboxConfig("security", "security@example.org", "SEC", "security"),
            InboxConfig("support", "support@example.org", "SUP", "support"),
        ),
        staff=(StaffConfig("security-team@example.org", role="lead"),),
        digest=DigestConfig(to=("security-team@example.org",)),
    )


def find_config_path(explicit: str | Path | None) -> Path | None:
    """`--config`, else $MAILBOT_CONFIG, else config/mailbot.toml if it exists."""
    if explicit:
        return Path(explicit)
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    return DEFAULT_PATH if DEFAULT_PATH.exists() else None


def load_config(explicit: str | Path | None = None) -> Config:
    path = find_config_path(explicit)
    if path is None:  # the defaults, and the database the environment may name
        d = default_config()
        return replace(d, storage=_Reader(None).storage({}, d.storage))
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigErrors([ConfigError(path, "-", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigErrors([ConfigError(path, "-", f"cannot read: {e}")]) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigErrors([ConfigError(path, "-", f"not valid TOML: {e}")]) from None
    return parse_config(data, path)


def parse_config(data: Mapping[str, Any], path: Path | None) -> Config:
    r = _Reader(path)
    top = r.table(data, "", {"storage", "smtp_in", "smtp_out", "gpg", "policy", "inbox",
                             "staff", "digest", "auth", "escalation", "limits",
                             "security_txt", "http"})
    d = default_config()

    storage = r.storage(top.get("storage", {}), d.storage)

    smtp_in = r.smtp_in(top.get("smtp_in", {}), d.smtp_in)

    t = r.table(top.get("smtp_out", {}), "smtp_out",
                {"host", "port", "tls", "username", "password_file", "timeout", "maildir"})
    smtp_out = SmtpOutConfig(
        host=r.get(t, "smtp_out.host", str, "127.0.0.1"),
        port=r.port(t, "smtp_out.port", 25),
        tls=r.choice(t, "smtp_out.tls", ("none", "starttls", "implicit"), "none"),
        username=r.get(t, "smtp_out.username", str, None),
        password_file=r.path(t, "smtp_out.password_file", None),
        timeout=float(r.get(t, "smtp_out.timeout", (int, float), 30.0)),
        maildir=r.path(t, "smtp_out.maildir", None),
    )

    t = r.table(top.get("gpg", {}), "gpg", {"home", "passphrase_file", "max_processes"})
    gpg = GpgConfig(
        home=r.path(t, "gpg.home", d.gpg.home),
        passphrase_file=r.path(t, "gpg.passphrase_file", None),
        max_processes=r.get(t, "gpg.max_processes", int, d.gpg.max_processes),
    )
    if gpg.max_processes < 1:
        r.error("gpg.max_processes", "must be at least 1")

    policies: dict[str, PolicyConfig] = {}
    for name, raw in r.table(top.get("policy", {}), "policy", None).items():
        policies[name] = r.policy(name, raw)

    inboxes: list[InboxConfig] = []
    raw_inboxes: list[Any] = r.get(top, "inbox", list, [])
    for i, raw in enumerate(raw_inboxes):
        inbox = r.inbox(i, raw, policies)
        if inbox is not None:
            inboxes.append(inbox)
    if "inbox" not in top:
        r.error("inbox", "at least one [[inbox]] is required")
    r.unique([b.name for b in inboxes], "inbox.name")
    r.unique([a for b in inboxes for a in b.addresses], "inbox.address")
    r.unique([x for b in inboxes for x in b.list_ids], "inbox.list_ids")
    r.unique([b.prefix for b in inboxes], "inbox.prefix")
    r.unique([b.imap.mailbox for b in inboxes if b.imap], "inbox.imap")

    raw_staff: list[Any] = r.get(top, "staff", list, [])
    staff = tuple(s for i, raw in enumerate(raw_staff) if (s := r.staff(i, raw)))

    t = r.table(top.get("digest", {}), "digest", {"schedule", "to", "language", "target"})
    schedule = r.get(t, "digest.schedule", str, "mon 09:00")
    if not re.fullmatch(r"(mon|tue|wed|thu|fri|sat|sun) ([01]\d|2[0-3]):[0-5]\d", schedule):
        r.error("digest.schedule", f"{schedule!r} is not like 'mon 09:00'")
    to = r.get(t, "digest.to", list, [s.address for s in staff])
    target = r.get(t, "digest.target", int, 90)
    if not 0 <= target <= 100:
        r.error("digest.target", f"{target} is not a percentage from 0 to 100")
    digest = DigestConfig(schedule=schedule, to=tuple(str(a) for a in to),
                          language=r.choice(t, "digest.language", LANGUAGES, "en"),
                          target=target)

    t = r.table(top.get("auth", {}), "auth", {"secret_file", "replay_window", "dns_servers"})
    window = r.duration(t, "auth.replay_window", parse_duration("7 days"))
    if window.unit is Unit.BUSINESS_DAYS:
        r.error("auth.replay_window", "use days, hours or minutes, not business days")
    servers = []
    listed: list[object] = r.get(t, "auth.dns_servers", list, [])
    for n, server in enumerate(listed):
        try:
            servers.append(dns_server(server))
        except ValueError as e:
            r.error(f"auth.dns_servers[{n}]", str(e))
    auth = AuthConfig(secret_file=r.path(t, "auth.secret_file", Path("var/mailbot.secret")),
                      replay_window=_timedelta(window), dns_servers=tuple(servers))

    t = r.table(top.get("escalation", {}), "escalation", {"interval"})
    interval = r.duration(t, "escalation.interval", parse_duration("1 minute"))
    if interval.unit not in (Unit.MINUTES, Unit.HOURS):
        r.error("escalation.interval", "use minutes or hours")
    escalation = EscalationConfig(interval=_timedelta(interval))

    limits = r.limits(top.get("limits", {}), d.limits)

    security_txt = r.security_txt(top.get("security_txt", {}))
    unknown = [n for n in security_txt.inboxes if n not in {b.name for b in inboxes}]
    if unknown:
        r.error("security_txt.inboxes", f"no inbox named {', '.join(unknown)}")

    http = r.http(top.get("http", {}))
    r.raise_if_any()
    return Config(path, storage, smtp_in, smtp_out, gpg, policies, tuple(inboxes), staff, digest,
                  auth, escalation, limits, security_txt, http)


class _Reader:
    """Reads values out of the TOML tree, collecting every error with its key."""

    def __init__(self, path: Path | None) -> None:
        self.path_ = path
        self.errors: list[ConfigError] = []

    def error(self, key: str, reason: str) -> None:
        self.errors.append(ConfigError(self.path_, key, reason))

    def raise_if_any(self) -> None:
        if self.errors:
            raise ConfigErrors(self.errors)

    def table(self, value: Any, key: str, allowed: set[str] | None) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.error(key or "-", "must be a table")
            return {}
        if allowed is not None:
            for k in value:
                if k not in allowed:
                    name = f"{key}.{k}" if key else k
                    self.error(name, f"unknown key; expected one of: {', '.join(sorted(allowed))}")
        return value

    def get(self, t: Mapping[str, Any], key: str, typ: Any, default: T) -> T:
        leaf = key.rsplit(".", 1)[-1]
        if leaf not in t:
            return default
        value = t[leaf]
        if (isinstance(value, bool) and typ is not bool) or not isinstance(value, typ):
            names = typ.__name__ if isinstance(typ, type) else "/".join(x.__name__ for x in typ)
            self.error(key, f"must be {names}, not {type(value).__name__}")
            return default
        return value  # type: ignore[no-any-return]

    def path(self, t: Mapping[str, Any], key: str, default: Path | None) -> Any:
        value = self.get(t, key, str, None)
        return Path(value) if value is not None else default

    def storage(self, raw: Any, default: StorageConfig) -> StorageConfig:
        """A path is SQLite; a postgresql:// URL is PostgreSQL. $MAILBOT_DATABASE, when
        set, stands in for `database` (a container's or a test run's database)."""
        t = self.table(raw, "storage", {"database", "password_file"})
        in_file = self.get(t, "storage.database", str, None)
        value = os.environ.get("MAILBOT_DATABASE") or in_file
        password_file = self.path(t, "storage.password_file", None)
        # The file's path stays known beside a URL: the spool and its neighbours live there.
        path = Path(in_file) if in_file and not in_file.startswith(POSTGRES) \
            else default.database
        if value is None:
            return StorageConfig(path, None, password_file)
        if not value.startswith(POSTGRES):
            return StorageConfig(Path(value), None, password_file)
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - parsing the port is the check
        except ValueError as e:
            self.error("storage.database", f"not a valid PostgreSQL URL: {e}")
        else:
            if not parts.hostname and "host=" not in parts.query:
                self.error("storage.database", "a PostgreSQL URL names its host"
                           " (postgresql://user@host/dbname)")
        return StorageConfig(path, value, password_file)

    def http(self, raw: Any) -> HttpConfig:
        t = self.table(raw, "http", {f.name for f in fields(HttpConfig)})
        listen = self.get(t, "http.listen", str, None)
        if listen is not None:
            host, _, port = listen.rpartition(":")
            if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
                self.error("http.listen", f"{listen!r} is not HOST:PORT (e.g. 127.0.0.1:8026)")
                return HttpConfig()
        return HttpConfig(listen)

    def port(self, t: Mapping[str, Any], key: str, default: int) -> int:
        value = self.get(t, key, int, default)
        if not 0 <= value <= 65535:
            self.error(key, f"{value} is not a port number (0-65535)")
        return value

    def choice(self, t: Mapping[str, Any], key: str, options: tuple[str, ...], default: str) -> str:
        value = self.get(t, key, str, default)
        if value not in options:
            self.error(key, f"{value!r} is not one of: {', '.join(options)}")
        return value

    def size(self, t: Mapping[str, Any], key: str, default: int) -> int:
        value = self.get(t, key, (int, str), default)
        if isinstance(value, int):
            return value
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmg]?i?b?)\s*", value.lower())
        if not m:
            self.error(key, f"{value!r} is not a size like '25MB'")
            return default
        factor = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[m.group(2)[:1]]
        return int(float(m.group(1)) * factor)

    def seconds(self, t: Mapping[str, Any], key: str, default: float) -> float:
        value = float(self.get(t, key, (int, float), default))
        if value <= 0:
            self.error(key, "must be a positive number of seconds")
        return value

    def duration(self, t: Mapping[str, Any], key: str, default: Duration) -> Duration:
        value = self.get(t, key, str, None)
        if value is None:
            return default
        try:
            return parse_duration(value)
        except ValueError as e:
            self.error(key, str(e))
            return default

    def limits(self, raw: Any, d: LimitsConfig) -> LimitsConfig:
        t = self.table(raw, "limits", {"acks_per_sender_per_hour", "acks_per_hour",
                                       "notifications_per_hour", "summary_interval",
                                       "notify_attachments_per_mail",
                                       "notify_attachments_per_hour"})
        per_hour = self.get(t, "limits.acks_per_sender_per_hour", int,
                            d.acks_per_sender_per_hour)
        if per_hour < 1:
            self.error("limits.acks_per_sender_per_hour", "must be at least 1")
        global_per_hour = self.get(t, "limits.acks_per_hour", int, d.acks_per_hour)
        if global_per_hour < per_hour:
            self.error("limits.acks_per_hour", "must be at least acks_per_sender_per_hour")
        notices = self.get(t, "limits.notifications_per_hour", int, global_per_hour)
        if notices < 1:
            self.error("limits.notifications_per_hour", "must be at least 1")
        interval = self.duration(t, "limits.summary_interval", parse_duration("1 minute"))
        if interval.unit not in (Unit.MINUTES, Unit.HOURS):
            self.error("limits.summary_interval", "use minutes or hours")
        per_mail = self.size(t, "limits.notify_attachments_per_mail",
                             d.notify_attachments_per_mail)
        per_staff = self.size(t, "limits.notify_attachments_per_hour",
                              d.notify_attachments_per_hour)
        if per_staff < per_mail:
            self.error("limits.notify_attachments_per_hour",
                       "must be at least notify_attachments_per_mail")
        return LimitsConfig(acks_per_sender_per_hour=per_hour, acks_per_hour=global_per_hour,
                            notifications_per_hour=notices,
                            summary_interval=_timedelta(interval),
                            notify_attachments_per_mail=per_mail,
                            notify_attachments_per_hour=per_staff)

    def convert(self, key: str, value: Any, fn: Callable[[Any], T], default: T) -> T:
        try:
            return fn(value)
        except (ValueError, TypeError) as e:
            self.error(key, str(e))
            return default

    def unique(self, values: list[str], key: str) -> None:
        seen: set[str] = set()
        for v in values:
            if v in seen:
                self.error(key, f"{v!r} appears more than once")
            seen.add(v)

    def smtp_in(self, raw: Any, d: SmtpInConfig) -> SmtpInConfig:
        t = self.table(raw, "smtp_in", {
            "host", "port", "protocol", "max_message_size", "max_connections",
            "max_connections_per_ip", "data_timeout", "data_max_seconds", "memory_budget",
            "tls_cert", "tls_key", "require_tls"})
        c = SmtpInConfig(
            host=self.get(t, "smtp_in.host", str, d.host),
            port=self.port(t, "smtp_in.port", d.port),
            protocol=self.choice(t, "smtp_in.protocol", ("smtp", "lmtp"), "smtp"),
            max_message_size=self.size(t, "smtp_in.max_message_size", d.max_message_size),
            max_connections=self.get(t, "smtp_in.max_connections", int, d.max_connections),
            max_connections_per_ip=self.get(t, "smtp_in.max_connections_per_ip", int,
                                            d.max_connections_per_ip),
            data_timeout=self.seconds(t, "smtp_in.data_timeout", d.data_timeout),
            data_max_seconds=self.seconds(t, "smtp_in.data_max_seconds", d.data_max_seconds),
            memory_budget=self.size(t, "smtp_in.memory_budget", d.memory_budget),
            tls_cert=self.path(t, "smtp_in.tls_cert", None),
            tls_key=self.path(t, "smtp_in.tls_key", None),
            require_tls=self.get(t, "smtp_in.require_tls", bool, False),
        )
        if c.max_connections < 1:
            self.error("smtp_in.max_connections", "must be at least 1")
        elif not 1 <= c.max_connections_per_ip <= c.max_connections:
            self.error("smtp_in.max_connections_per_ip", "must be from 1 to max_connections")
        if c.memory_budget < 1024 * 1024:
            self.error("smtp_in.memory_budget", "must be at least 1MB")
        if (c.tls_cert is None) != (c.tls_key is None):
            self.error("smtp_in.tls_cert", "give both tls_cert and tls_key, or neither")
        if c.require_tls and c.tls_cert is None:
            self.error("smtp_in.require_tls", "needs tls_cert and tls_key")
        return c

    def policy(self, name: str, raw: Any) -> PolicyConfig:
        k = f"policy.{name}"
        t = self.table(raw, k, {"timezone", "holidays", "workdays", "business_hours",
                                "first_response", "resolution", "warn_before",
                                "breach_after", "update_every", "require_encryption",
                                *SCOPE_KEYS})
        base = PolicyConfig(name=name)
        tz = self.get(t, f"{k}.timezone", str, base.timezone)
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            self.error(f"{k}.timezone", f"unknown time zone {tz!r} (use an IANA name)")
        country = self.get(t, f"{k}.holidays", str, base.holidays)
        if country == "":
            country = None
        if country is not None and country not in holidays.list_supported_countries():
            self.error(f"{k}.holidays", f"unknown holiday country {country!r} (ISO 3166 code)")
        days = self.get(t, f"{k}.workdays", list, None)
        workdays = base.workdays
        if days is not None:
            bad = [d for d in days if d not in WEEKDAYS]
            if bad or not days:
                self.error(f"{k}.workdays", f"expected names from {', '.join(WEEKDAYS)}")
            else:
                workdays = tuple(sorted({WEEKDAYS.index(d) for d in days}))
        hours = self.get(t, f"{k}.business_hours", str, None)
        business_hours = base.business_hours
        if hours is not None:
            business_hours = self.convert(f"{k}.business_hours", hours, _hours, business_hours)
        return PolicyConfig(
            name=name,
            timezone=tz,
            holidays=country,
            workdays=workdays,
            business_hours=business_hours,
            first_response=self.duration(t, f"{k}.first_response", base.first_response),
            resolution=self.duration(t, f"{k}.resolution", base.resolution),
            warn_before=self.duration(t, f"{k}.warn_before", base.warn_before),
            breach_after=self.duration(t, f"{k}.breach_after", base.breach_after),
            update_every=(self.duration(t, f"{k}.update_every", parse_duration("14 days"))
                          if "update_every" in t else None),
            require_encryption=self.kinds(t, f"{k}.require_encryption"),
            scope=self.scope(t, k),
        )

    def scope(self, t: Mapping[str, Any], k: str) -> ScopeConfig:
        """The triage keys of a policy: scope, out-of-scope classes, rewards."""
        def strings(key: str) -> tuple[str, ...]:
            values: list[Any] = self.get(t, f"{k}.{key}", list, [])
            if not all(isinstance(v, str) and v.strip() for v in values):
                self.error(f"{k}.{key}", "must be a list of non-empty strings")
                return ()
            return tuple(v.strip() for v in values)

        entries = strings("in_scope")
        hosts = tuple(e for e in entries if _is_scope_host(e))
        for e in (*hosts, *strings("out_of_scope_hosts")):
            if "/" in e and not _is_network(e):
                self.error(f"{k}.in_scope", f"{e!r} is not a CIDR range like 203.0.113.0/24")
        own: dict[str, Any] = self.get(t, f"{k}.classes", dict, {})
        classes = {cid: c for cid, raw in own.items()
                   if (c := self.own_class(f"{k}.classes.{cid}", cid, raw))}
        known = {**CATALOGUE, **classes}
        out = strings("out_of_scope")
        unknown = [c for c in out if c not in known]
        if unknown:
            self.error(f"{k}.out_of_scope", f"unknown class {', '.join(unknown)}; the "
                       f"catalogue has: {', '.join(CATALOGUE)} (add your own under classes)")
        groups: list[Any] = self.get(t, f"{k}.same_codebase", list, [])
        if not all(isinstance(g, list) and all(isinstance(h, str) for h in g) for g in groups):
            self.error(f"{k}.same_codebase", "must be a list of lists of host names")
            groups = []
        rewards: dict[str, Any] = self.get(t, f"{k}.rewards", dict, {})
        bad = [s for s, v in rewards.items()
               if s not in ("critical", "high", "medium", "low") or not isinstance(v, str)]
        if bad:
            self.error(f"{k}.rewards", "keys critical, high, medium, low with text values")
            rewards = {}
        url = self.get(t, f"{k}.policy_url", str, None)
        if url is not None and not url.startswith("https://"):
            self.error(f"{k}.policy_url", f"{url!r} is not an https:// URL")
        return ScopeConfig(
            in_scope=hosts, products=tuple(e for e in entries if e not in hosts),
            out_of_scope_hosts=strings("out_of_scope_hosts"), out_of_scope=out,
            classes=classes, same_codebase=tuple(tuple(h.lower() for h in g) for g in groups),
            rewards=dict(rewards), policy_url=url,
        )

    def own_class(self, key: str, cid: str, raw: Any) -> OutOfScopeClass | None:
        t = self.table(raw, key, {"en", "nl", "phrases", "unless"})
        en = self.get(t, f"{key}.en", str, "")
        if not en:
            self.error(f"{key}.en", "is required: the policy's sentence for this class")
            return None
        phrases: list[Any] = self.get(t, f"{key}.phrases", list, [])
        unless: list[Any] = self.get(t, f"{key}.unless", list, [])
        for p in (*phrases, *unless):
            try:
                re.compile(str(p))
            except re.error as e:
                self.error(f"{key}.phrases", f"{p!r} is not a regular expression: {e}")
                return None
        if not phrases:
            self.error(f"{key}.phrases", "give at least one phrase (a regular expression)")
            return None
        return OutOfScopeClass(cid, en, self.get(t, f"{key}.nl", str, en),
                               tuple(str(p).lower() for p in phrases),
                               tuple(str(p).lower() for p in unless))

    def kinds(self, t: Mapping[str, Any], key: str) -> tuple[str, ...]:
        kinds: list[Any] = self.get(t, key, list, [])
        if any(kind not in ENCRYPTABLE_KINDS for kind in kinds):
            self.error(key, f"expected a list of: {', '.join(ENCRYPTABLE_KINDS)}")
            return ()
        return tuple(kinds)

    def security_txt(self, raw: Any) -> SecurityTxtConfig:
        fields = ("encryption", "policy", "canonical", "acknowledgments", "hiring")
        t = self.table(raw, "security_txt", {*fields, "expires", "languages", "inboxes"})
        urls: dict[str, str | None] = {}
        for name in fields:
            url = self.get(t, f"security_txt.{name}", str, None)
            if url is not None and not re.fullmatch(r"(https|dns|openpgp4fpr):\S+", url):
                self.error(f"security_txt.{name}", f"{url!r} is not an https:// URI")
            urls[name] = url
        expires = self.duration(t, "security_txt.expires", parse_duration("180 days"))
        if expires.unit is Unit.BUSINESS_DAYS:
            self.error("security_txt.expires", "use days, not business days")
        languages: list[Any] = self.get(t, "security_txt.languages", list, [])
        inboxes: list[Any] = self.get(t, "security_txt.inboxes", list, [])
        return SecurityTxtConfig(**urls, expires=_timedelta(expires),
                                 languages=tuple(str(x) for x in languages),
                                 inboxes=tuple(str(x) for x in inboxes))

    def inbox(self, i: int, raw: Any, policies: Mapping[str, PolicyConfig]) -> InboxConfig | None:
        k = f"inbox[{i}]"
        t = self.table(raw, k, {"name", "address", "prefix", "policy", "language", "pgp_key",
                                "imap", "notify", "staff_auth", "list_ids", "aliases",
                                "retention"})
        missing = [f for f in ("name", "address", "prefix", "policy") if f not in t]
        for f in missing:
            self.error(f"{k}.{f}", "is required")
        if missing:
            return None
        name = self.get(t, f"{k}.name", str, "")
        address = self.get(t, f"{k}.address", str, "")
        if not _is_address(address):
            self.error(f"{k}.address", f"{address!r} is not a mail address")
        prefix = self.get(t, f"{k}.prefix", str, "")
        if not re.fullmatch(r"[A-Z][A-Z0-9]{0,9}", prefix):
            self.error(f"{k}.prefix", f"{prefix!r} must be 1-10 capitals or digits, like 'SEC'")
        policy = self.get(t, f"{k}.policy", str, "")
        if policy not in policies:
            known = ", ".join(sorted(policies)) or "none defined"
            self.error(f"{k}.policy", f"no [policy.{policy}] (defined: {known})")
        language = self.choice(t, f"{k}.language", LANGUAGES, "en")
        pgp_key = self.get(t, f"{k}.pgp_key", str, None)
        if pgp_key is not None:
            pgp_key = pgp_key.replace(" ", "").upper()
            if not re.fullmatch(r"[0-9A-F]{40}", pgp_key):
                self.error(f"{k}.pgp_key", "must be a 40-hex-digit fingerprint")
        raw_imap = self.get(t, f"{k}.imap", dict, None)
        imap = self.imap(f"{k}.imap", raw_imap) if raw_imap is not None else None
        notify: list[Any] = self.get(t, f"{k}.notify", list, [])
        for a in notify:
            if not isinstance(a, str) or not _is_address(a):
                self.error(f"{k}.notify", f"{a!r} is not a mail address")
        proofs: list[Any] = self.get(t, f"{k}.staff_auth", list, ["reply-token"])
        bad = [p for p in proofs if p not in STAFF_PROOFS]
        if bad or not proofs:
            self.error(f"{k}.staff_auth", f"expected a list of: {', '.join(STAFF_PROOFS)}")
        list_ids: list[Any] = self.get(t, f"{k}.list_ids", list, [])
        for x in list_ids:
            if not isinstance(x, str) or not re.fullmatch(r"[^<>\s@]{1,250}", x):
                self.error(f"{k}.list_ids", f"{x!r} is not a List-Id such as "
                           "\"security.example.org\" (without the <>)")
        aliases: list[Any] = self.get(t, f"{k}.aliases", list, [])
        for a in aliases:
            if not isinstance(a, str) or not _is_address(a):
                self.error(f"{k}.aliases", f"{a!r} is not a mail address")
        return InboxConfig(name, address, prefix, policy, language, pgp_key, imap,
                           tuple(str(a) for a in notify), tuple(str(p) for p in proofs),
                           tuple(str(x).lower() for x in list_ids),
                           tuple(str(a) for a in aliases),
                           self.retention(t, f"{k}.retention"))

    def retention(self, t: Mapping[str, Any], key: str) -> timedelta | None:
        """"2 years", "18 months", "90 days": calendar time (a year is 365 days, a month
        30), never business days: the law counts calendar time."""
        text = self.get(t, key, str, None)
        if text is None:
            return None
        m = re.fullmatch(r"\s*(\d+)\s*(years?|months?|days?)\s*", text)
        if not m or int(m.group(1)) == 0:
            self.error(key, f"{text!r} is not a period like '2 years', '18 months', '90 days'")
            return None
        days = {"y": 365, "m": 30, "d": 1}[m.group(2)[0]]
        return timedelta(days=int(m.group(1)) * days)

    def imap(self, k: str, raw: dict[str, Any]) -> ImapConfig | None:
        t = self.table(raw, k, {"host", "port", "tls", "ca_file", "username", "password_file",
                                "password_env", "folder", "processed_folder", "mark",
                                "poll_interval", "idle_check", "backoff_max", "timeout"})
        for f in ("host", "username"):
            if f not in t:
                self.error(f"{k}.{f}", "is required")
        if ("password_file" in t) == ("password_env" in t):
            self.error(f"{k}.password_file", "give exactly one of password_file, password_env")
        tls = self.choice(t, f"{k}.tls", ("implicit", "starttls", "none"), "implicit")
        folder = self.get(t, f"{k}.folder", str, "INBOX")
        processed = self.get(t, f"{k}.processed_folder", str, None)
        if processed is not None and processed == folder:
            self.error(f"{k}.processed_folder", "must differ from the watched folder")
        poll, backoff, timeout = (self.seconds(t, f"{k}.{f}", default) for f, default in
                                  (("poll_interval", 60.0), ("backoff_max", 300.0),
                                   ("timeout", 30.0)))
        idle_check = 0.0 if t.get("idle_check") == 0 else self.seconds(
            t, f"{k}.idle_check", 10.0)
        return ImapConfig(
            host=self.get(t, f"{k}.host", str, ""),
            username=self.get(t, f"{k}.username", str, ""),
            port=self.port(t, f"{k}.port", 993 if tls == "implicit" else 143),
            tls=tls,
            ca_file=self.path(t, f"{k}.ca_file", None),
            password_file=self.path(t, f"{k}.password_file", None),
            password_env=self.get(t, f"{k}.password_env", str, None),
            folder=folder,
            processed_folder=processed,
            mark=self.choice(t, f"{k}.mark", ("seen", "keyword"), "seen"),
            poll_interval=poll,
            idle_check=idle_check,
            backoff_max=backoff,
            timeout=timeout,
        )

    def staff(self, i: int, raw: Any) -> StaffConfig | None:
        k = f"staff[{i}]"
        t = self.table(raw, k, {"address", "role", "name", "pgp_fingerprint"})
        address = self.get(t, f"{k}.address", str, "")
        if not _is_address(address):
            self.error(f"{k}.address", f"{address!r} is not a mail address")
            return None
        fpr = self.get(t, f"{k}.pgp_fingerprint", str, None)
        if fpr is not None:
            fpr = fpr.replace(" ", "").upper()
            if not re.fullmatch(r"[0-9A-F]{40}", fpr):
                self.error(f"{k}.pgp_fingerprint", "must be a 40-hex-digit fingerprint")
        return StaffConfig(
            address=address,
            role=self.choice(t, f"{k}.role", ROLES, "member"),
            name=self.get(t, f"{k}.name", str, None),
            pgp_fingerprint=fpr,
        )


SCOPE_KEYS = ("in_scope", "out_of_scope_hosts", "out_of_scope", "classes", "same_codebase",
              "rewards", "policy_url")


def _is_scope_host(entry: str) -> bool:
    """A host name, `*.domain`, an IP address or a CIDR range (else a product name)."""
    return bool(re.fullmatch(r"(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+\.?", entry)
                or re.fullmatch(r"(\d{1,3}\.){3}\d{1,3}(/\d{1,2})?", entry)
                or re.fullmatch(r"[0-9a-fA-F]*:[0-9a-fA-F:]*(/\d{1,3})?", entry))


def _is_network(entry: str) -> bool:
    try:
        ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False
    return True


def dns_server(server: object) -> tuple[str, int]:
    """(IP, port) of "ip", "ip:port", "v6", "[v6]" or "[v6]:port"; ValueError if bad."""
    if not isinstance(server, str):
        raise ValueError(f"must be a string like \"127.0.0.1:53\", not {type(server).__name__}")
    text = server.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ("" if not rest else "x")
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    if (port and not port.isdigit()) or not 0 < int(port or 53) < 65536:
        raise ValueError(f"{server!r}: the port is not a number from 1 to 65535")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{server!r}: give the resolver's IP address, as in "
                         "\"127.0.0.1:53\" or \"[::1]:53\"") from None
    return host, int(port or 53)


def _timedelta(d: Duration) -> timedelta:
    per_unit = {Unit.MINUTES: timedelta(minutes=1), Unit.HOURS: timedelta(hours=1),
                Unit.DAYS: timedelta(days=1), Unit.WEEKS: timedelta(weeks=1),
                Unit.BUSINESS_DAYS: timedelta(days=1)}
    return per_unit[d.unit] * d.amount


def _is_address(value: str) -> bool:
    return bool(re.fullmatch(r"[^@\s<>,;\"]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", value))


def _hours(value: str) -> tuple[int, int]:
    m = re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)", value.strip())
    if not m:
        raise ValueError(f"{value!r} is not like '09:00-17:00'")
    start = int(m.group(1)) * 60 + int(m.group(2))
    end = int(m.group(3)) * 60 + int(m.group(4))
    if end <= start:
        raise ValueError(f"{value!r}: the end must come after the start")
    return start, end
