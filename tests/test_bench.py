"""Every bench script runs, at a tiny size, from a directory outside the repository.

A bench nobody runs breaks silently (a moved helper, a renamed option, a file it expects
next to the clone). Each script under bench/ takes `--count N` for its size; here each runs
with `--count 20` as a child process, and what it prints is checked for its figures and
for zero errors. No figure is compared with a target: timing belongs to the benches.
"""

from __future__ import annotations

import json
import mailbox
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.dovecot import available as dovecot_available
from tests.pgserver import available as pg_available

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py")
                 if 'if __name__ == "__main__":' in p.read_text(encoding="utf-8"))

# What each known bench must print at --count 20 (any other script: rc 0, no traceback).
EXPECTED: dict[str, list[str]] = {
    "corpus.py": [r"wrote corpus-20-1\.mbox: 20 messages \(\d+ reports, \d+ follow-ups\)"],
    "ingest.py": [r"floor \(parse \+ 1 commit\)\s+\d+",
                  r"mailbot import\s+\d+\s+[\d.]+\s+\d+\s+0\n",
                  r"smtp, 8 clients, flood\s+\d+\s+[\d.]+\s+\d+\s+\d+\s+\d+\s+0\n",
                  r"smtp, paced 50/s\s+\d+\s+[\d.]+\s+\d+\s+\d+\s+\d+\s+0\n"],
    "load.py": [r"20 mails \(16 reports\)", r"errors\s+0 \(smtp 0, acks missing 0, log 0\)"],
    "sweep.py": [r"20 open cases", r"first sweep .* mails queued \d+",
                 r"steady-state sweep, 1 min later\s+[\d.]+ s", r"digest \(build \+ render\)"],
    "thread_lookup.py": [r"20 cases, 200 Message-IDs", r"in-reply-to .* found 2000/2000",
                         r"subject ref .* found 2000/2000", r"no thread .* found 0/2000"],
    "pgp.py": [r"import, clear reports\s+\d+", r"import, PGP/MIME \(half signed\)\s+\d+"],
    "assess.py": [r"20 reports of 1048576 bytes",
                  r"assess \+ duplicates: p50 [\d.]+ ms, p99 [\d.]+ ms"],
    "imap.py": [r"initial sync, 20 messages: stored and marked",
                r"new-mail latency .* 5 mails: p50 \d+ ms, p99 \d+ ms"],
    "connections.py": [r"max_connections = 120: 20 idle sessions held, 0 refused .* 0 not 250",
                       r"\(defaults\): 20 idle sessions held, 0 refused .* 0 not 250",
                       r"2 concurrent 20 MB DATA transfers: 2 x 250, 0 x 4xx, 0 other"],
}
# Benches that start a daemon, gpg or Dovecot: seconds each, not milliseconds.
SLOW = {"ingest.py", "load.py", "pgp.py", "imap.py", "connections.py"}


def _param(name: str) -> object:
    marks = [pytest.mark.slow] if name in SLOW else []
    return pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("script", [_param(s) for s in SCRIPTS])
def test_bench_runs_at_a_tiny_size(script: str, tmp_path: Path) -> None:
    """The bench runs with --count 20 outside the repository, prints its figures, no errors."""
    if script == "imap.py" and not dovecot_available():
        pytest.skip("Dovecot is not installed (bash scripts/test.sh installs dovecot-imapd)")
    if script == "pgp.py" and shutil.which("gpg") is None:
        pytest.skip("gpg is not installed (bash scripts/test.sh installs gnupg)")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MAILBOT_CONFIG")}
    proc = subprocess.run([sys.executable, str(BENCH / script), "--count", "20"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    for pattern in EXPECTED.get(script, []):
        assert re.search(pattern, proc.stdout), f"{script}: no {pattern!r} in:\n{proc.stdout}"


@pytest.mark.slow
def test_ingest_bench_on_postgresql_with_two_instances(tmp_path: Path) -> None:
    """ingest.py --database throwaway --instances 2 floods PostgreSQL with one instance and
    then two, every report acknowledged, and prints each rate beside SQLite's."""
    if why := pg_available():
        pytest.skip(why)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MAILBOT_CONFIG")}
    proc = subprocess.run([sys.executable, str(BENCH / "ingest.py"), "--count", "20",
                           "--database", "throwaway", "--instances", "2"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"ingest.py failed:\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    for pattern in (r"smtp, 8 clients, flood\s+\d+\s+[\d.]+\s+\d+\s+\d+\s+\d+\s+0\n",
                    # rate, x sqlite, p50, p99, RSS, errors, x 1 instance, cores
                    r"postgresql, 1 instance\s+\d+\s+[\d.]+(\s+\d+){3}\s+0\s+1\.00\s+[\d.]+\n",
                    r"postgresql, 2 instances\s+\d+\s+[\d.]+(\s+\d+){3}\s+0\s+[\d.]+\s+[\d.]+\n",
                    r'"postgresql_1": \d+, "postgresql_2": \d+'):
        assert re.search(pattern, proc.stdout), f"no {pattern!r} in:\n{proc.stdout}"


def test_ingest_bench_refuses_instances_without_postgresql(tmp_path: Path) -> None:
    """--instances 2 on SQLite is refused with a one-line usage error, not a traceback."""
    proc = subprocess.run([sys.executable, str(BENCH / "ingest.py"), "--instances", "2"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "--instances N needs --database" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_every_known_bench_is_still_there() -> None:
    """A bench removed or renamed shows here, not as a silently shorter list of runs."""
    assert set(EXPECTED) <= set(SCRIPTS)


def test_no_bench_reaches_outside_the_repository() -> None:
    """No bench or test names a path beside the clone (the old ../shared/tools)."""
    offenders = [str(p.relative_to(ROOT))
                 for d in ("bench", "tests") for p in (ROOT / d).rglob("*.py")
                 if p.name not in ("test_bench.py", "test_docs.py")  # they name it to forbid it
                 and re.search(r"shared/tools|make_corpus|\.\./shared", p.read_text("utf-8"))]
    assert offenders == []


def _corpus(work: Path, count: int, seed: int) -> tuple[bytes, list[dict[str, object]]]:
    """bench/corpus.py run as a user runs it: the mbox's bytes and its truth file."""
    work.mkdir(exist_ok=True)
    out = work / "corpus.mbox"
    subprocess.run([sys.executable, str(BENCH / "corpus.py"), "--count", str(count),
                    "--seed", str(seed), "--out", str(out)], check=True, capture_output=True)
    return out.read_bytes(), json.loads(Path(f"{out}.truth.json").read_text("utf-8"))


def test_corpus_is_the_same_for_the_same_seed(tmp_path: Path) -> None:
    """Two runs with one seed write the same bytes; another seed writes other mail."""
    first, truth = _corpus(tmp_path / "a", 60, 5)
    again, _ = _corpus(tmp_path / "b", 60, 5)
    other, _ = _corpus(tmp_path / "c", 60, 6)
    assert first == again
    assert first != other
    assert len(truth) == 60


def test_corpus_truth_matches_its_mbox(tmp_path: Path) -> None:
    """The truth file lists the mbox's mails in order; each follow-up answers its thread."""
    _, truth = _corpus(tmp_path, 200, 1)
    box = mailbox.mbox(tmp_path / "corpus.mbox", create=False)
    mails = [box.get_message(k) for k in box.iterkeys()]
    box.close()
    assert [m["Message-ID"] for m in mails] == [t["message_id"] for t in truth]
    reports = {t["message_id"]: t for t in truth if not t["followup"]}
    seen: set[str] = set()
    follow_ups = 0
    for mail, t in zip(mails, truth, strict=True):
        if t["followup"]:
            follow_ups += 1
            root = reports[str(t["root"])]
            assert mail["In-Reply-To"] in seen  # it answers a mail sent before it
            assert str(mail["References"]).split()[0] == t["root"]
            assert t["from"] == root["from"]
            assert t["subject"] == "Re: " + str(root["subject"])
        else:
            assert t["root"] == t["message_id"]
            assert mail["In-Reply-To"] is None
        seen.add(str(mail["Message-ID"]))
    assert 0.2 < follow_ups / len(truth) < 0.4
    assert len({t["from"] for t in reports.values()}) == len(reports)  # one researcher each
