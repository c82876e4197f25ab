"""PGP benchmark: encrypted reports through `mailbot import`, against the same reports in clear.

    python bench/pgp.py [--count 500]

Prints mails/second for each, and the cost of PGP per mail. The reports are made once with
the real gpg and the committed test keys (PGP/MIME, encrypted to the inbox key, half of them
also signed by the reporter), as a reporter's client makes them.
"""

from __future__ import annotations

import argparse
import mailbox
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.pgp_support import (  # noqa: E402
    FPR,
    KEYS,
    Client,
    gpg_run,
    kill_agent,
    pgp_mime,
    report_part,
    short_home,
)

CONFIG = """
[storage]
database = "{work}/bench.db"
[auth]
secret_file = "{work}/secret"
[gpg]
home = "{home}"
[smtp_out]
maildir = "{work}/outbox"
[policy.security]
timezone = "Europe/Amsterdam"
[[inbox]]
name = "security"
address = "security@example.org"
prefix = "SEC"
policy = "security"
pgp_key = "{fpr}"
"""


def corpus(client: Client, count: int, encrypted: bool) -> list[bytes]:
    mails = []
    for i in range(count):
        text = f"Report {i}: the q parameter of /search{i} is reflected unescaped.\n" * 5
        entity = report_part(text, subject=f"XSS number {i}")
        if encrypted:
            sign = "reporter" if i % 2 else None
            mails.append(pgp_mime(client.encrypt(entity, sign_as=sign),
                                  message_id=f"<enc-{i}@example.net>"))
        else:
            mails.append(b"From: Rita Researcher <researcher@example.net>\r\n"
                         b"To: security@example.org\r\n"
                         + f"Message-ID: <clear-{i}@example.net>\r\n".encode() + entity)
    return mails


def run_import(mails: list[bytes], work: Path) -> float:
    home = short_home("gp")
    try:
        gpg_run(home, "--import", str(KEYS / "inbox.sec.asc"))
        config = work / "bench.toml"
        config.write_text(CONFIG.format(work=work, home=home, fpr=FPR["inbox"]))
        (work / "bench.db").unlink(missing_ok=True)
        box_path = work / "mails.mbox"
        box_path.unlink(missing_ok=True)
        box = mailbox.mbox(box_path)
        for raw in mails:
            box.add(raw)
        box.close()
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mailbot", "import", str(box_path), "--config",
                        str(config), "--log-level", "warning"], check=True, capture_output=True)
        return len(mails) / (time.perf_counter() - start)
    finally:
        kill_agent(home)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=500)
    args = ap.parse_args()
    client = Client()
    try:
        clear = corpus(client, args.count, encrypted=False)
        encrypted = corpus(client, args.count, encrypted=True)
    finally:
        client.close()
    with tempfile.TemporaryDirectory(prefix="mailbot-pgp-bench-") as tmp:
        work = Path(tmp)
        clear_rate = run_import(clear, work)
        enc_rate = run_import(encrypted, work)
    print(f"{'path':<34} {'mails/s':>8}")
    print(f"{'import, clear reports':<34} {clear_rate:8.0f}")
    print(f"{'import, PGP/MIME (half signed)':<34} {enc_rate:8.0f}")
    print(f"PGP cost per mail: {1000 / enc_rate - 1000 / clear_rate:.1f} ms")


if __name__ == "__main__":
    main()
