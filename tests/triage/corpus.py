"""The labelled corpus (corpus.txt), the policy it is read against, and its figures."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from mailbot.config import ScopeConfig
from mailbot.triage.assess import Assessment, assess
from mailbot.triage.catalogue import CATALOGUE
from mailbot.triage.duplicates import keys, likely_duplicates

CORPUS = Path(__file__).parent / "corpus.txt"
HOLDOUT = Path(__file__).parent / "holdout.txt"  # never used to tune the phrases
SISTERS = (("shop.example.nl", "shop.example.be"),)
SCOPE = ScopeConfig(
    in_scope=("example.nl", "*.example.nl", "app.example.com", "203.0.113.0/24",
              "shop.example.be"),
    out_of_scope_hosts=("legacy.example.nl", "status.example.nl"),
    out_of_scope=tuple(CATALOGUE), same_codebase=SISTERS,
)


@dataclass(frozen=True, slots=True)
class Report:
    line: int
    language: str
    classes: frozenset[str]
    in_scope: frozenset[str]
    out_of_scope: frozenset[str]
    unknown: frozenset[str]
    group: str | None
    text: str


def reports(path: Path = CORPUS) -> list[Report]:
    found = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip() or raw.startswith("#"):
            continue
        language, classes, hosts, group, text = (f.strip() for f in raw.split(" | ", 4))
        marks = hosts.split() if hosts != "-" else []
        found.append(Report(
            number, language, frozenset(classes.split(",")) - {"-"},
            frozenset(h[1:] for h in marks if h[0] == "+"),
            frozenset(h[1:] for h in marks if h[0] == "-"),
            frozenset(h[1:] for h in marks if h[0] == "?"),
            None if group == "-" else group, text.replace("\\n", "\n")))
    return found


@dataclass(frozen=True, slots=True)
class Figures:
    per_class: dict[str, tuple[int, int, int]]  # class -> (true pos, false pos, false neg)
    duplicates: tuple[int, int, int]
    host_errors: list[str]
    reports: int

    @staticmethod
    def ratio(a: int, b: int) -> float:
        return a / b if b else 1.0

    def precision(self) -> float:
        tp = sum(v[0] for v in self.per_class.values())
        return self.ratio(tp, tp + sum(v[1] for v in self.per_class.values()))

    def recall(self) -> float:
        tp = sum(v[0] for v in self.per_class.values())
        return self.ratio(tp, tp + sum(v[2] for v in self.per_class.values()))

    def table(self) -> str:
        rows = [f"{'class':36} {'prec':>5} {'recall':>6}  tp fp fn"]
        for cid, (tp, fp, fn) in sorted(self.per_class.items()):
            rows.append(f"{cid:36} {self.ratio(tp, tp + fp):5.2f} {self.ratio(tp, tp + fn):6.2f}"
                        f"  {tp:2} {fp:2} {fn:2}")
        tp, fp, fn = self.duplicates
        rows.append(f"{'all classes (micro)':36} {self.precision():5.2f} {self.recall():6.2f}")
        rows.append(f"{'duplicates (pairs)':36} {self.ratio(tp, tp + fp):5.2f} "
                    f"{self.ratio(tp, tp + fn):6.2f}  {tp:2} {fp:2} {fn:2}")
        rows.append(f"hosts: {self.reports - len(self.host_errors)}/{self.reports} reports "
                    "exactly right")
        return "\n".join(rows)


def measure(path: Path = CORPUS) -> Figures:
    """Every report assessed; each compared for duplicates with all reports before it."""
    corpus = reports(path)
    counts: Counter[tuple[str, str]] = Counter()
    host_errors: list[str] = []
    dup = Counter[str]()
    seen: list[tuple[str, Report, Assessment]] = []
    for r in corpus:
        a = assess(r.text, SCOPE, r.language)
        found = {c.id for c in a.classes}
        for cid in found | r.classes:
            counts[(cid, "tp" if cid in found and cid in r.classes
                    else "fp" if cid in found else "fn")] += 1
        if (frozenset(a.in_scope), frozenset(a.out_of_scope), frozenset(a.unknown)) != (
                r.in_scope, r.out_of_scope, r.unknown):
            host_errors.append(f"line {r.line}: {a.in_scope} {a.out_of_scope} {a.unknown}")
        # As the pipeline does: only earlier reports sharing a key are compared.
        mine = keys(a.features, SISTERS)
        refs = {d.ref for d in likely_duplicates(
            a.features, [(str(s[1].line), s[2].features) for s in seen
                         if mine & keys(s[2].features, SISTERS)], SISTERS)}
        for ref, other, _ in seen:
            same = r.group is not None and other.group == r.group
            said = ref in refs
            if same or said:
                dup["tp" if same and said else "fn" if same else "fp"] += 1
        seen.append((str(r.line), r, a))
    per_class = {cid: (counts[(cid, "tp")], counts[(cid, "fp")], counts[(cid, "fn")])
                 for cid in CATALOGUE}
    return Figures(per_class, (dup["tp"], dup["fp"], dup["fn"]), host_errors, len(corpus))


if __name__ == "__main__":
    print(measure().table())
    print("\nheld out:")
    print(measure(HOLDOUT).table())
