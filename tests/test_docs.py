"""The documentation stands alone in a clone and says what the code does.

Every relative link in README.md, CONTRIBUTING.md, CHANGELOG.md and docs/ points to a file
(and, with a #fragment, to a heading) inside the repository; docs/reference.md names every
configuration key, command and JSON field the code has; the deployment units parse.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import shutil
import subprocess
import unicodedata
from pathlib import Path

import pytest

from mailbot import cli, config
from mailbot.store import cases as case_q

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md",
                *(ROOT / "docs").glob("*.md")])
REFERENCE = ROOT / "docs" / "reference.md"

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of a Markdown page, with GitHub's -1, -2 for repeats."""
    seen: dict[str, int] = {}
    found = set()
    for heading in _HEADING.findall(_FENCE.sub("", page.read_text(encoding="utf-8"))):
        base = slug(heading)
        n = seen.get(base, 0)
        found.add(base if n == 0 else f"{base}-{n}")
        seen[base] = n + 1
    return found


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    """The relative links of a page whose file, or heading, does not exist in `root`."""
    text = _CODE_SPAN.sub("", _FENCE.sub("", page.read_text(encoding="utf-8")))
    broken = []
    for target in _LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:, …
            continue
        path, _, fragment = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if root.resolve() not in (file, *file.parents):
            broken.append(f"{target} (outside the repository)")
        elif not file.exists():
            broken.append(f"{target} (no such file)")
        elif fragment and file.suffix == ".md" and fragment not in anchors(file):
            broken.append(f"{target} (no such heading)")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_inside_the_repository(page: Path) -> None:
    """Each relative link of the page reaches an existing file (and heading) of the clone."""
    assert broken_links(page) == []


def test_the_link_check_finds_what_is_broken(tmp_path: Path) -> None:
    """A missing file, a missing heading and a path out of the clone are each reported."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "there.md").write_text("# A heading: with `code`\n\n## Twice\n\n## Twice\n")
    page = tmp_path / "docs" / "page.md"
    page.write_text("[ok](../there.md#a-heading-with-code) [ok](../there.md#twice-1)\n"
                    "[gone](gone.md) [nohead](../there.md#nowhere) [out](../../SPEC.md)\n"
                    "[web](https://example.org/x) `[code](not-a-link.md)` [self](#nothing)\n"
                    "```\n[fenced](not-a-link-either.md)\n```\n")
    assert broken_links(page, tmp_path) == [
        "gone.md (no such file)", "../there.md#nowhere (no such heading)",
        "../../SPEC.md (outside the repository)", "#nothing (no such heading)"]


def test_readme_links_the_documentation() -> None:
    """The README links each page of docs/ and CONTRIBUTING.md, and nothing beside the clone."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for page in [*(ROOT / "docs").glob("*.md"), ROOT / "CONTRIBUTING.md"]:
        if page.name != "README.md":
            assert f"]({page.relative_to(ROOT)})" in readme, page.name
    assert "../shared" not in readme


def _config_keys() -> set[str]:
    """Every key the TOML file can set, spelled as docs/reference.md writes them."""
    tables = {"storage": config.StorageConfig, "smtp_in": config.SmtpInConfig,
              "smtp_out": config.SmtpOutConfig, "gpg": config.GpgConfig,
              "policy.NAME": config.PolicyConfig, "inbox": config.InboxConfig,
              "inbox.imap": config.ImapConfig, "staff": config.StaffConfig,
              "auth": config.AuthConfig, "limits": config.LimitsConfig,
              "escalation": config.EscalationConfig, "digest": config.DigestConfig,
              "security_txt": config.SecurityTxtConfig, "http": config.HttpConfig}
    skip = {("policy.NAME", "name"), ("inbox", "imap"),  # the table's own name; a sub-table
            ("policy.NAME", "scope")}  # the triage keys, read into their own dataclass
    scope = {f"policy.NAME.{f.name}" for f in dataclasses.fields(config.ScopeConfig)
             if f.name != "products"}  # products: the in_scope entries that are not hosts
    return scope | {f"{table}.{f.name}" for table, cls in tables.items()
                    for f in dataclasses.fields(cls) if (table, f.name) not in skip}


def test_reference_names_every_config_key() -> None:
    """Each field of the config model has its row in docs/reference.md's key table."""
    text = REFERENCE.read_text(encoding="utf-8")
    missing = sorted(k for k in _config_keys() if f"| `{k}` |" not in text)
    assert missing == [], f"add a row for each to docs/reference.md#configuration-keys: {missing}"


def test_reference_names_every_command() -> None:
    """Each `mailbot` subcommand is in docs/reference.md's command-line table."""
    sub = next(a for a in cli._parser()._actions if isinstance(a, argparse._SubParsersAction))
    text = REFERENCE.read_text(encoding="utf-8")
    missing = sorted(name for name in sub.choices if f"`mailbot {name}" not in text)
    assert missing == [], f"add each to docs/reference.md#command-line: {missing}"


def test_reference_names_every_json_field() -> None:
    """Each field `mailbot show --json` prints for a case is in docs/reference.md."""
    text = REFERENCE.read_text(encoding="utf-8")
    missing = sorted(f for f in case_q.CASE_FIELDS if f != "id" and f"`{f}`" not in text)
    assert missing == [], f"add each to docs/reference.md#json-output: {missing}"


def test_systemd_units_parse() -> None:
    """systemd-analyze finds nothing wrong in deploy/ but the mailbot binary not installed here."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    units = sorted(str(p) for p in (ROOT / "deploy").glob("*.service")) + sorted(
        str(p) for p in (ROOT / "deploy").glob("*.timer"))
    assert len(units) >= 3
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", *units],
                          capture_output=True, text=True, timeout=60,
                          env={"SYSTEMD_LOG_LEVEL": "warning", "PATH": "/usr/bin:/bin"})
    problems = [line for line in (proc.stdout + proc.stderr).splitlines()
                if line.strip() and "/opt/mailbot/bin/mailbot is not executable" not in line]
    assert problems == []


def test_operations_guide_points_at_real_deployment_files() -> None:
    """The unit the guide installs runs `mailbot run` as its own user with a private umask."""
    unit = (ROOT / "deploy" / "mailbot.service").read_text(encoding="utf-8")
    assert re.search(r"^ExecStart=\S*/mailbot run$", unit, re.M)
    for line in ("User=mailbot", "UMask=0077", "StateDirectory=mailbot", "NoNewPrivileges=true",
                 "ProtectSystem=strict", "KillSignal=SIGTERM"):
        assert f"\n{line}\n" in unit, line
    transport = (ROOT / "deploy" / "postfix" / "transport").read_text(encoding="utf-8")
    assert re.search(r"^security@example\.org\s+mailbot:inet:127\.0\.0\.1:8025$", transport,
                     re.M)
    master = (ROOT / "deploy" / "postfix" / "master.cf").read_text(encoding="utf-8")
    assert re.search(r"^mailbot\s+unix\s+.*\slmtp$", master, re.M)


def test_postfix_examples_read_as_postfix_reads_them(tmp_path: Path) -> None:
    """Postfix's own tools take deploy/postfix/ without a warning and route the inboxes
    to the mailbot LMTP transport."""
    if shutil.which("postconf") is None or shutil.which("postmap") is None:
        pytest.skip("Postfix is not installed (postconf, postmap)")
    example = ROOT / "deploy" / "postfix"
    (tmp_path / "main.cf").write_text((example / "main.cf").read_text(encoding="utf-8"))
    master = Path("/etc/postfix/master.cf.proto")
    (tmp_path / "master.cf").write_text(
        (master.read_text(encoding="utf-8") if master.exists() else "")
        + (example / "master.cf").read_text(encoding="utf-8"))
    shutil.copy(example / "transport", tmp_path / "transport")

    def postfix(*args: str) -> str:
        proc = subprocess.run(list(args), capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr
        return proc.stdout

    settings = postfix("postconf", "-c", str(tmp_path), "-n")  # warns of unused parameters
    assert "recipient_delimiter = +" in settings
    assert postfix("postconf", "-c", str(tmp_path), "-M", "mailbot/unix").split()[-1] == "lmtp"
    table = f"hash:{tmp_path / 'transport'}"
    postfix("postmap", "-c", str(tmp_path), table)
    for inbox in ("security@example.org", "support@example.org"):
        assert postfix("postmap", "-c", str(tmp_path), "-q", inbox, table).strip() == (
            "mailbot:inet:127.0.0.1:8025")
