"""IMAP intake under SIGKILL: a real daemon watching a real Dovecot folder is killed at
random moments while another client APPENDs reports; after the last restart every message
in the folder is stored once, opened one case, got one acknowledgement, and is marked taken
on the server."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.dovecot import Dovecot
from tests.imap_support import (
    SEEN,
    imap_table,
    password_file,
    reports,
    scalar,
    until,
    write_imap_config,
)
from tests.reliability.harness import Daemon, killer
from tests.support import Sink, free_port

pytestmark = pytest.mark.slow


async def test_imap_intake_survives_kills(make_dovecot: Callable[..., Dovecot], sink: Sink,
                                          tmp_path: Path, long_run: bool) -> None:
    kills, batches, per_batch = (20, 20, 50) if long_run else (3, 6, 20)
    total = batches * per_batch
    server = make_dovecot()
    user = server.add_user()
    path = write_imap_config(tmp_path, sink.port,
                             imap_table(server, user, password_file(tmp_path)))
    port = free_port()
    path.write_text(path.read_text().replace("port = 0", f"port = {port}")
                    + "\n[limits]\nacks_per_sender_per_hour = 100000\n"
                      "acks_per_hour = 100000\n")
    db = tmp_path / "mailbot.db"
    daemon = Daemon(path, port, tmp_path / "daemon.log")
    rng = random.Random(7)

    async def appender() -> None:
        for b in range(batches):
            await asyncio.to_thread(server.append, user, reports(per_batch, f"b{b}"))
            await asyncio.sleep(rng.uniform(0.0, 0.3))

    await daemon.start()
    try:
        await asyncio.gather(appender(), killer(daemon, kills, rng, spread=0.4))
        await until(lambda: scalar(db, "SELECT count(*) FROM inbound WHERE status = 'done'")
                    >= total, timeout=120)
        await until(lambda: scalar(db, "SELECT count(*) FROM imap_messages WHERE marked = 0")
                    == 0, timeout=30)
        await sink.wait_for(total, timeout=60, to="researcher@example.net")
        await asyncio.sleep(1.0)  # a second acknowledgement, if one were coming
        assert await daemon.stop() == 0
    except BaseException:
        print(daemon.log_tail())
        raise
    finally:
        if daemon.proc is not None and daemon.proc.returncode is None:
            daemon.proc.kill()

    assert scalar(db, "SELECT count(*) FROM inbound") == total
    assert scalar(db, "SELECT count(DISTINCT message_id) FROM inbound") == total
    assert scalar(db, "SELECT count(*) FROM cases") == total
    acks = [r.msg["In-Reply-To"] for r in sink.to("researcher@example.net")]
    assert len(set(acks)) == total  # every report acknowledged
    # A kill while the relay's 250 is on its way back re-sends that one mail (SMTP cannot
    # do better; the sent journal narrows the window): at most one per kill, as in test_kills.
    again = len(acks) - total
    assert again <= kills, f"{again} acknowledgements sent twice in {kills} kills"
    flags = await asyncio.to_thread(server.flags, user)
    assert len(flags) == total and all(SEEN in f for f in flags.values())
    print(f"IMAP: {kills} kills, {total} messages, each taken once, {again} acks re-sent")
