"""The triage assessment of large reports: time to read one report against the policy.

    python bench/assess.py [--count 20] [--size 1048576]

Builds `--count` reports of `--size` bytes from the labelled corpus (a report followed by
scanner output and pasted logs naming hosts, URLs and CVE ids), assesses each with the
full catalogue, compares it with 1,000 earlier cases' features for duplicates, and prints
p50/p99/max. The issue's budget is 50 ms for a 1 MB report; it is printed, not asserted.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mailbot.config import ScopeConfig
from mailbot.triage.assess import assess
from mailbot.triage.catalogue import CATALOGUE
from mailbot.triage.duplicates import likely_duplicates

SCOPE = ScopeConfig(in_scope=("example.nl", "*.example.nl", "app.example.com", "203.0.113.0/24"),
                    out_of_scope_hosts=("legacy.example.nl",), out_of_scope=tuple(CATALOGUE),
                    same_codebase=(("shop.example.nl", "shop.example.be"),))
CORPUS = Path(__file__).resolve().parents[1] / "tests" / "triage" / "corpus.txt"


def report(rng: random.Random, texts: list[str], size: int) -> str:
    parts = [rng.choice(texts)]
    n = len(parts[0])
    while n < size:
        host = rng.choice(["www.example.nl", "app.example.com", "cdn.other.net", "203.0.113.9",
                           "legacy.example.nl", f"h{rng.randrange(10**6)}.example.nl"])
        line = (f"[{rng.choice(['LOW', 'MEDIUM', 'INFO'])}] https://{host}/p/{rng.randrange(999)}"
                f"?id={rng.randrange(99)} {rng.choice(texts)[:120]} CVE-2021-{rng.randrange(9999)}"
                "\n")
        parts.append(line)
        n += len(line)
    return "".join(parts)[:size]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=20, help="reports to assess")
    ap.add_argument("--size", type=int, default=1024 * 1024, help="bytes per report")
    args = ap.parse_args()
    rng = random.Random(17)
    texts = [line.split(" | ", 4)[4].replace("\\n", "\n")
             for line in CORPUS.read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.startswith("#")]
    earlier = [(f"SEC-2026-{i:04d}", assess(rng.choice(texts), SCOPE, "en").features)
               for i in range(1000)]
    times, cpu, dups = [], [], 0
    for _ in range(args.count):
        text = report(rng, texts, args.size)
        t0, c0 = time.perf_counter(), time.process_time()
        a = assess(text, SCOPE, "en")
        dups += len(likely_duplicates(a.features, earlier, SCOPE.same_codebase))
        times.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    times.sort()
    cpu.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print(f"{args.count} reports of {args.size} bytes, 1000 earlier cases, 22 classes")
    print(f"assess + duplicates: p50 {statistics.median(times):.1f} ms, p99 {p99:.1f} ms, "
          f"max {times[-1]:.1f} ms (budget 50 ms)")
    # CPU time beside wall time: on a shared machine the wall clock also counts waiting.
    print(f"assess + duplicates, CPU time: p50 {statistics.median(cpu):.1f} ms, "
          f"max {cpu[-1]:.1f} ms")
    print(f"likely duplicates named: {dups}")


if __name__ == "__main__":
    main()
