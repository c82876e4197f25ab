"""Likely duplicates: pure comparisons of a report's features with earlier cases'.

Three reasons, each said to staff: the same host and path (or parameter) with the same
kind of flaw; near-identical text (a bottom-k MinHash sketch of word 3-shingles, its
Jaccard estimate over a threshold measured on tests/triage/corpus.txt); the same flaw on a
sister site of a configured `same_codebase` group.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SKETCH_SIZE = 64
# Jaccard estimate from which two texts are "near-identical": on the corpus, unrelated
# reports reach 0.15 at most, reworded copies 0.30-0.74 (README).
TEXT_THRESHOLD = 0.3
SKETCH_TEXT_LIMIT = 8 * 1024  # characters: enough to know a text, cheap for a 1 MB one
_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class Duplicate:
    ref: str
    why: str


@dataclass(frozen=True, slots=True)
class Features:
    """What a report is about, as stored for later reports to compare with."""

    hosts: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()  # host/path of each URL
    params: tuple[str, ...] = ()  # query parameter names of the URLs
    kinds: tuple[str, ...] = ()  # vulnerability kinds and out-of-scope classes
    sketch: tuple[int, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"hosts": list(self.hosts), "paths": list(self.paths),
                "params": list(self.params), "kinds": list(self.kinds),
                "sketch": list(self.sketch)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Features:
        return cls(*(tuple(data.get(k, ())) for k in ("hosts", "paths", "params", "kinds",
                                                       "sketch")))


def sketch(text: str) -> tuple[int, ...]:
    """The SKETCH_SIZE smallest 32-bit hashes of the text's word 3-shingles."""
    words = _WORD.findall(text[:SKETCH_TEXT_LIMIT].lower())
    if len(words) < 3:
        words = [*words, "", ""]
    # A CRC per word, mixed per shingle: stable across processes (unlike hash()), and a
    # third of the cost of a CRC per shingle.
    w = [zlib.crc32(x.encode()) for x in words]
    hashes = {(a * 0x9E3779B1 ^ b * 0x85EBCA77 ^ c * 0xC2B2AE3D) & 0xFFFFFFFF
              for a, b, c in zip(w, w[1:], w[2:], strict=False)}
    return tuple(sorted(hashes)[:SKETCH_SIZE])


def similarity(a: Sequence[int], b: Sequence[int]) -> float:
    """Bottom-k estimate of the Jaccard similarity of the two shingle sets."""
    if not a or not b:
        return 0.0
    union = sorted(set(a) | set(b))[:SKETCH_SIZE]
    both = set(a) & set(b)
    return sum(1 for h in union if h in both) / len(union)


KEY_PATHS = 20  # paths of a report that are keys
KEY_HASHES = 8  # its smallest text hashes that are keys: a reworded copy (Jaccard 0.3 or
# more) shares one with a probability near 1 - 0.7^8 = 0.94


def keys(features: Features, groups: Sequence[Sequence[str]] = ()) -> set[str]:
    """What an earlier case must share with this report to be compared with it at all."""
    found = {f"path:{p}" for p in features.paths[:KEY_PATHS] if not p.endswith("/")}
    found |= {f"text:{h}" for h in features.sketch[:KEY_HASHES]}
    hosts = set(features.hosts)
    for group in groups:
        members = frozenset(h.lower() for h in group)
        if hosts & members:
            name = ",".join(sorted(members))
            found |= {f"sister:{name}:{place}" for place in sorted(_places(features))[:KEY_PATHS]}
    return found


def likely_duplicates(
    mine: Features, others: Sequence[tuple[str, Features]],
    same_codebase: Sequence[Sequence[str]] = (),
) -> list[Duplicate]:
    """The earlier cases (ref, features) this report likely repeats, each with why."""
    here = _Mine(mine, same_codebase)
    return [Duplicate(ref, why) for ref, other in others if (why := here.why(other))]


class _Mine:
    """One report's features as sets, made once and compared with each earlier case."""

    def __init__(self, mine: Features, groups: Sequence[Sequence[str]]) -> None:
        self.mine = mine
        self.kinds = frozenset(mine.kinds)
        self.paths = frozenset(p for p in mine.paths if not p.endswith("/"))
        self.places = _places(mine)
        self.sketch = frozenset(mine.sketch)
        hosts = set(mine.hosts)
        # The sister-site groups this report is in, with the hosts it names of each.
        self.groups = [(members, hosts & members) for g in groups
                       if hosts & (members := frozenset(h.lower() for h in g))]

    def why(self, other: Features) -> str | None:
        kinds = sorted(self.kinds.intersection(other.kinds))
        if kinds:
            paths = sorted(self.paths.intersection(other.paths))
            if paths:
                return f"same {kinds[0]} on {paths[0]}"
        # Cheap bound first: the estimate cannot reach the threshold with fewer shared hashes.
        bound = TEXT_THRESHOLD * max(len(self.sketch), len(other.sketch))
        if len(self.sketch.intersection(other.sketch)) >= bound > 0:
            sim = similarity(self.mine.sketch, other.sketch)
            if sim >= TEXT_THRESHOLD:
                return f"near-identical text ({sim:.0%} alike)"
        if kinds:
            for members, here in self.groups:
                there = members.intersection(other.hosts)
                if there and there != here and self.places & _places(other):
                    return (f"same {kinds[0]} on sister site {sorted(there)[0]}"
                            f" (same codebase as {sorted(here)[0]})")
        return None


def _places(features: Features) -> set[str]:
    """Paths without their host, and parameter names: the same place on any sister site."""
    return ({p.partition("/")[2] for p in features.paths if p.partition("/")[2]}
            | {f"?{p}" for p in features.params})
