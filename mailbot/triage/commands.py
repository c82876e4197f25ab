"""Staff command lines: parsed and validated as a whole, before anything is applied.

Command lines stand at the top of a staff reply's new text (blank lines between them are
fine); the first other line ends them, and the text from there on is the note or the
reply. One bad line means none is applied: `parse` returns every error, with its line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from cvss import CVSS3, CVSS4
from cvss.exceptions import CVSSError

from mailbot.errors import CommandError

STATUSES = ("triaged", "needs-info", "accepted", "fixing", "resolved", "rejected")
SEVERITIES = ("critical", "high", "medium", "low")
NAMES = ("status", "severity", "assign", "due", "reply", "note", "credit", "duplicate", "cve",
         "bounty", "disclose", "close", "reopen", "open-for", "template")
ORIGINAL_DATE = "original-date"  # #open-for ADDRESS original-date: deadlines from its Date:
_NO_ARGUMENT = frozenset({"reply", "note", "reopen"})
_OPTIONAL_ARGUMENT = frozenset({"bounty"})  # #bounty alone: the policy's reward
_REF = re.compile(r"[A-Z][A-Z0-9]{0,9}-\d{4}-\d{4,}")
_CVE = re.compile(r"CVE-\d{4}-\d{4,}")
_TEMPLATE = re.compile(r"[a-z0-9][a-z0-9-]{0,39}(?: [a-z0-9][a-z0-9-]{0,59})?")
_ADDRESS = re.compile(r"[^\s<>\"'(),;:@\\]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){1,8}")
_AMOUNT = re.compile(r"(?:[€$£]\s?)?\d{1,9}(?:[.,]\d{1,2})?(?:\s?[A-Z]{3})?")


@dataclass(frozen=True, slots=True)
class Command:
    line: int  # 1-based line in the reply's new text
    name: str
    value: str | None = None  # normalised: a state, a level, an ISO date, a CVE id, ...
    vector: str | None = None  # #severity with a CVSS vector: the vector
    score: float | None = None  # and its base score
    flag: bool = False  # #open-for with "original-date"


@dataclass(frozen=True, slots=True)
class Parsed:
    commands: tuple[Command, ...]
    text: str  # what follows the command lines: the note, or the reply to the reporter
    errors: tuple[CommandError, ...]

    @property
    def replies(self) -> bool:
        return any(c.name == "reply" for c in self.commands)


def parse(new_text: str) -> Parsed:
    commands: list[Command] = []
    errors: list[CommandError] = []
    lines = new_text.split("\n")
    end = len(lines)
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        if not line.startswith("#"):
            end = number - 1
            break
        try:
            commands.append(_command(number, line))
        except CommandError as e:
            errors.append(e)
    seen: dict[str, int] = {}
    for c in commands:
        if c.name in seen:
            errors.append(CommandError(c.line, f"#{c.name} given twice (also line {seen[c.name]})"))
        seen[c.name] = c.line
    if "reply" in seen and "note" in seen:
        errors.append(CommandError(seen["note"], "#note and #reply exclude each other"))
    text = "\n".join(lines[end:]).strip()
    if "open-for" in seen and "reply" in seen:
        errors.append(CommandError(seen["reply"], "#open-for and #reply exclude each other: "
                                   "the acknowledgement goes first"))
    if "reply" in seen and not text:
        errors.append(CommandError(seen["reply"], "#reply needs the text to send below it"))
    return Parsed(tuple(commands), text, tuple(sorted(errors, key=lambda e: e.line)))


def _command(number: int, line: str) -> Command:
    word, _, rest = line[1:].partition(" ")
    name, arg = word.lower(), " ".join(rest.split())
    if name not in NAMES:
        raise CommandError(number, f"unknown command '#{word[:30]}'; expected one of: "
                           + ", ".join(f"#{n}" for n in NAMES))
    if name in _NO_ARGUMENT:
        if arg:
            raise CommandError(number, f"#{name} takes no argument")
        return Command(number, name)
    if not arg and name in _OPTIONAL_ARGUMENT:
        return Command(number, name)
    if not arg:
        raise CommandError(number, f"#{name} needs an argument")
    match name:
        case "status":
            if arg.lower() not in STATUSES:
                raise CommandError(number, f"unknown status '{arg[:30]}'; expected one of: "
                                   + ", ".join(STATUSES))
            return Command(number, name, arg.lower())
        case "severity":
            return _severity(number, arg)
        case "due":
            return Command(number, name, _date(number, arg))
        case "disclose":
            return _disclose(number, arg)
        case "cve":
            if not _CVE.fullmatch(arg.upper()):
                raise CommandError(number, f"'{arg[:30]}' is not a CVE id like CVE-2026-12345")
            return Command(number, name, arg.upper())
        case "duplicate":
            if not _REF.fullmatch(arg.upper()):
                raise CommandError(number, f"'{arg[:30]}' is not a case reference")
            return Command(number, name, arg.upper())
        case "template":
            return _template(number, arg)
        case "open-for":
            return _open_for(number, arg)
        case "bounty":
            if not _AMOUNT.fullmatch(arg):
                raise CommandError(number, f"'{arg[:30]}' is not an amount like 500 EUR")
            return Command(number, name, arg)
    return Command(number, name, arg[:200])  # assign, credit, close: free text


def _template(number: int, arg: str) -> Command:
    """`#template NAME [CLASS|REF]`: a canned reply's name and what it is about."""
    if not _TEMPLATE.fullmatch(arg.lower()):
        raise CommandError(number, f"'{arg[:40]}' is not like 'out-of-scope' or "
                           "'out-of-scope CLASS' or 'duplicate-of REF'")
    return Command(number, "template", arg.lower())


def _disclose(number: int, arg: str) -> Command:
    """`#disclose YYYY-MM-DD` proposes a date, `… agreed` records consent, `public` makes
    the case public at once (the hall of fame)."""
    if arg.lower() == "public":
        return Command(number, "disclose", "public")
    day, _, agreed = arg.partition(" ")
    if agreed and agreed.lower() not in ("agreed", "akkoord"):
        raise CommandError(number, f"'{arg[:40]}' is not like 2026-12-24, "
                           "2026-12-24 agreed, or public")
    return Command(number, "disclose", _date(number, day) + (" agreed" if agreed else ""))


def _open_for(number: int, arg: str) -> Command:
    """#open-for ADDRESS [original-date]: the reporter of a forwarded report."""
    address, _, rest = arg.partition(" ")
    address = address.strip("<>").lower()
    if not _ADDRESS.fullmatch(address):
        raise CommandError(number, f"'{address[:60]}' is not an address like "
                                   "rita@example.net")
    if rest and rest.lower() != ORIGINAL_DATE:
        raise CommandError(number, f"#open-for takes an address and optionally "
                                   f"'{ORIGINAL_DATE}', not '{rest[:30]}'")
    return Command(number, "open-for", address, flag=bool(rest))


def _severity(number: int, arg: str) -> Command:
    if arg.lower() in SEVERITIES:
        return Command(number, "severity", arg.lower())
    try:
        if arg.startswith("CVSS:4.0/"):
            v4 = CVSS4(arg)
            return Command(number, "severity", v4.severity.lower(), v4.clean_vector(),
                           float(v4.base_score))
        if arg.startswith(("CVSS:3.0/", "CVSS:3.1/")):
            v3 = CVSS3(arg)
            level = v3.severities()[0].lower()
            if level == "none":
                level = "low"
            return Command(number, "severity", level, v3.clean_vector(), float(v3.scores()[0]))
    except CVSSError as e:
        raise CommandError(number, f"bad CVSS vector: {e}") from None
    raise CommandError(number, f"'{arg[:40]}' is not one of {', '.join(SEVERITIES)} "
                       "nor a CVSS:3.1/ or CVSS:4.0/ vector")


def _date(number: int, arg: str) -> str:
    try:
        return date.fromisoformat(arg).isoformat()
    except ValueError:
        raise CommandError(number, f"'{arg[:30]}' is not a date like 2026-12-24") from None
