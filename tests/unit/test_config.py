"""Config loading: embedded defaults, the example file, and errors that name file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbot.cli import main
from mailbot.config import default_config, load_config
from mailbot.errors import ConfigError, ConfigErrors
from mailbot.sla import Unit

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = """
[policy.p]
timezone = "Europe/Amsterdam"

[[inbox]]
name = "security"
address = "security@example.org"
prefix = "SEC"
policy = "p"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mailbot.toml"
    path.write_text(text)
    return path


def test_example_config_loads() -> None:
    """config/mailbot.example.toml is valid and shows two inboxes."""
    config = load_config(ROOT / "config" / "mailbot.example.toml")
    assert [i.prefix for i in config.inboxes] == ["SEC", "SUP"]
    assert config.policies["security"].first_response.unit is Unit.BUSINESS_DAYS
    assert config.smtp_in.max_message_size == 25 * 1024 * 1024
    assert (config.limits.acks_per_sender_per_hour, config.limits.acks_per_hour) == (10, 200)


def test_embedded_defaults_serve_a_newcomer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no file anywhere, defaults listen on 127.0.0.1:8025 and write mail to a maildir."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILBOT_CONFIG", raising=False)
    config = load_config(None)
    assert config == default_config()
    assert (config.smtp_in.host, config.smtp_in.port) == ("127.0.0.1", 8025)
    assert config.smtp_out.maildir == Path("var/outbox")
    assert str(config.storage.database).startswith("var/")


def test_env_var_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$MAILBOT_CONFIG is used when --config is not given."""
    path = write(tmp_path, MINIMAL)
    monkeypatch.setenv("MAILBOT_CONFIG", str(path))
    assert load_config(None).source == path


@pytest.mark.parametrize(
    ("snippet", "key", "reason"),
    [
        ('[smtp_in]\nprot = "smtp"\n', "smtp_in.prot", "unknown key"),
        ('[policy.q]\nfirst_response = "3 busines days"\n', "policy.q.first_response",
         "unknown unit"),
        ('[policy.q]\ntimezone = "Europe/Amsterdm"\n', "policy.q.timezone", "unknown time zone"),
        ('[policy.q]\nholidays = "XX"\n', "policy.q.holidays", "unknown holiday country"),
        ('[smtp_in]\nport = 70000\n', "smtp_in.port", "not a port"),
        ('[smtp_in]\nmax_message_size = "lots"\n', "smtp_in.max_message_size", "not a size"),
        ('[smtp_in]\nmax_connections = 0\n', "smtp_in.max_connections", "at least 1"),
        ('[smtp_in]\nmax_connections_per_ip = 200\n', "smtp_in.max_connections_per_ip",
         "from 1 to max_connections"),
        ('[smtp_in]\ndata_timeout = 0\n', "smtp_in.data_timeout", "positive number"),
        ('[smtp_in]\ntls_cert = "c.pem"\n', "smtp_in.tls_cert", "both tls_cert and tls_key"),
        ('[smtp_in]\nrequire_tls = true\n', "smtp_in.require_tls", "needs tls_cert"),
        ('[smtp_in]\nmemory_budget = "100KB"\n', "smtp_in.memory_budget", "at least 1MB"),
        ('[[staff]]\naddress = "alice"\n', "staff[0].address", "not a mail address"),
        ('[[staff]]\naddress = "a@example.org"\nrole = "boss"\n', "staff[0].role", "not one of"),
        ('[digest]\nschedule = "monday 9am"\n', "digest.schedule", "not like"),
        ('[gpg]\nmax_processes = 0\n', "gpg.max_processes", "at least 1"),
        ('[policy.q]\nrequire_encryption = ["notes"]\n', "policy.q.require_encryption",
         "expected a list of: ack, update"),
        ('[security_txt]\npolicy = "http://example.org/p"\n', "security_txt.policy",
         "not an https:// URI"),
        ('[security_txt]\ninboxes = ["sales"]\n', "security_txt.inboxes", "no inbox named"),
        ('[limits]\nacks_per_hour = 5\n', "limits.acks_per_hour", "at least acks_per_sender"),
        ('[limits]\nacks_per_sender_per_hour = 0\n', "limits.acks_per_sender_per_hour",
         "at least 1"),
    ],
)
def test_errors_name_file_key_and_reason(
    tmp_path: Path, snippet: str, key: str, reason: str
) -> None:
    """Each bad value is reported with its file, its key and why."""
    path = write(tmp_path, MINIMAL + snippet)
    with pytest.raises(ConfigErrors) as info:
        load_config(path)
    (err,) = info.value.errors
    assert err.file == str(path)
    assert err.key == key
    assert reason in err.reason


def test_inbox_naming_missing_policy(tmp_path: Path) -> None:
    """An inbox whose policy is not defined is an error on that inbox's key."""
    path = write(tmp_path, MINIMAL.replace('policy = "p"', 'policy = "nope"'))
    with pytest.raises(ConfigErrors) as info:
        load_config(path)
    assert [(e.key, e.reason[:18]) for e in info.value.errors] == [
        ("inbox[0].policy", "no [policy.nope] (")]


def test_all_errors_reported_together(tmp_path: Path) -> None:
    """Several problems in one file are reported in one go."""
    path = write(tmp_path, MINIMAL + '[smtp_in]\nport = "x"\nfoo = 1\n')
    with pytest.raises(ConfigErrors) as info:
        load_config(path)
    assert {e.key for e in info.value.errors} == {"smtp_in.port", "smtp_in.foo"}


def test_invalid_toml_is_reported(tmp_path: Path) -> None:
    """A syntax error names the file and says it is not valid TOML."""
    path = write(tmp_path, "[storage\n")
    with pytest.raises(ConfigErrors, match="not valid TOML"):
        load_config(path)


def test_check_command_prints_errors_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`mailbot check` prints each error with file and key, and exits 2."""
    path = write(tmp_path, MINIMAL + '[policy.q]\nresolution = "3 busines days"\n')
    assert main(["check", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: policy.q.resolution: unknown unit" in err


def test_check_command_accepts_example(capsys: pytest.CaptureFixture[str]) -> None:
    """`mailbot check` on the example config says OK."""
    assert main(["check", "--config", str(ROOT / "config" / "mailbot.example.toml")]) == 0
    assert "OK" in capsys.readouterr().out



IMAP = MINIMAL + """
[inbox.imap]
host = "imap.example.org"
username = "security@example.org"
password_env = "IMAP_PW"
"""


def test_example_imap_block_loads(tmp_path: Path) -> None:
    """The commented [inbox.imap] block of the example, uncommented, is valid as shown."""
    lines = (ROOT / "config" / "mailbot.example.toml").read_text().splitlines()
    start = lines.index("# [inbox.imap]")
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("#"))
    block = "\n".join(ln[1:] for ln in lines[start:end])
    imap = load_config(write(tmp_path, MINIMAL + block)).inboxes[0].imap
    assert imap is not None
    assert (imap.port, imap.tls, imap.processed_folder) == (993, "implicit", "Processed")
    assert imap.mailbox == "security@example.org@imap.example.org/INBOX"


def test_imap_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An IMAP table needs host, username and a secret; the rest has defaults."""
    monkeypatch.setenv("IMAP_PW", "s3cret")
    imap = load_config(write(tmp_path, IMAP + 'tls = "starttls"\n')).inboxes[0].imap
    assert imap is not None
    assert (imap.port, imap.folder, imap.mark, imap.poll_interval) == (143, "INBOX", "seen", 60)
    assert imap.password() == "s3cret"


@pytest.mark.parametrize(
    ("snippet", "key", "reason"),
    [
        ('tls = "ssl"\n', "inbox[0].imap.tls", "not one of"),
        ('password_file = "/x"\n', "inbox[0].imap.password_file", "exactly one"),
        ('processed_folder = "INBOX"\n', "inbox[0].imap.processed_folder", "must differ"),
        ("backoff_max = 0\n", "inbox[0].imap.backoff_max", "positive number of seconds"),
        ('mark = "flagged"\n', "inbox[0].imap.mark", "not one of"),
        ('pasword_env = "X"\n', "inbox[0].imap.pasword_env", "unknown key"),
    ],
)
def test_imap_errors_name_the_key(tmp_path: Path, snippet: str, key: str, reason: str) -> None:
    """Each bad IMAP value is reported on its own key."""
    with pytest.raises(ConfigErrors) as info:
        load_config(write(tmp_path, IMAP + snippet))
    (err,) = info.value.errors
    assert (err.key, reason in err.reason) == (key, True)


def test_imap_password_file_unreadable_is_a_config_error(tmp_path: Path) -> None:
    """A missing password file is named, and the error says why without any secret."""
    text = IMAP.replace('password_env = "IMAP_PW"', f'password_file = "{tmp_path}/nope"')
    imap = load_config(write(tmp_path, text)).inboxes[0].imap
    assert imap is not None
    with pytest.raises(ConfigError, match=r"imap\.password_file: cannot read"):
        imap.password()
