"""The assessment against the labelled corpus: precision and recall, printed and floored."""

from __future__ import annotations

import pytest

from tests.triage.corpus import HOLDOUT, measure, reports

# Floors set from the measured figures (README), a little below them so a phrase change
# that costs one report still passes, and the targets (precision 0.9, recall 0.7).
CLASS_PRECISION = 0.95
CLASS_RECALL = 0.95
PER_CLASS_PRECISION = 0.8
DUPLICATE_PRECISION = 0.9
DUPLICATE_RECALL = 0.8


@pytest.fixture(scope="module")
def figures():  # type: ignore[no-untyped-def]
    found = measure()
    print("\n" + found.table())
    return found


def test_corpus_is_large_and_bilingual() -> None:
    """At least 200 reports, in both languages, covering every class of the catalogue."""
    corpus = reports()
    assert len(corpus) >= 200
    assert {r.language for r in corpus} == {"en", "nl"}
    assert sum(r.language == "nl" for r in corpus) >= 60
    assert sum(1 for r in corpus if not r.classes) >= 50  # real findings, in scope


def test_out_of_scope_classes_precision_and_recall(figures) -> None:  # type: ignore[no-untyped-def]
    """Over all classes, what the assessment names is right and what it misses is rare."""
    assert figures.precision() >= CLASS_PRECISION
    assert figures.recall() >= CLASS_RECALL


def test_every_class_is_precise_and_found(figures) -> None:  # type: ignore[no-untyped-def]
    """No class of the catalogue is named falsely often or never found."""
    for cid, (tp, fp, fn) in figures.per_class.items():
        assert tp >= 4, cid
        assert tp / (tp + fp) >= PER_CLASS_PRECISION, cid
        assert tp / (tp + fn) >= 0.7, cid


def test_hosts_sorted_exactly(figures) -> None:  # type: ignore[no-untyped-def]
    """Every host of every report lands in the right bucket (exact, wildcard, CIDR)."""
    assert figures.host_errors == []


def test_duplicates_precision_and_recall(figures) -> None:  # type: ignore[no-untyped-def]
    """Pairs named as likely duplicates are duplicates; most duplicates are named."""
    tp, fp, fn = figures.duplicates
    assert tp >= 10
    assert tp / (tp + fp) >= DUPLICATE_PRECISION
    assert tp / (tp + fn) >= DUPLICATE_RECALL


def test_held_out_reports() -> None:
    """On reports the phrases were not tuned on, the issue's targets still hold: class
    precision 0.9 at recall 0.7 or more, hosts sorted exactly."""
    found = measure(HOLDOUT)
    print("\nheld out:\n" + found.table())
    assert found.reports >= 50
    assert found.precision() >= 0.9
    assert found.recall() >= 0.85
    assert found.host_errors == []
