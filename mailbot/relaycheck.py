"""`mailbot check` for outgoing mail: talk to the relay as the sender will, and say which
step failed (connect, EHLO, STARTTLS, AUTH), or that the maildir cannot be written.

Nothing is sent: the session ends with QUIT after AUTH.
"""

from __future__ import annotations

import asyncio
import os
import tempfile

import aiosmtplib

from mailbot.config import SmtpOutConfig


async def relay_problem(cfg: SmtpOutConfig) -> str | None:
    """Why outgoing mail cannot go out now, in one line; None when it can."""
    if cfg.maildir is not None:
        return await asyncio.to_thread(_maildir_problem, cfg)
    where = f"relay {cfg.host}:{cfg.port}"
    smtp = aiosmtplib.SMTP(hostname=cfg.host, port=cfg.port, timeout=cfg.timeout,
                           use_tls=cfg.tls == "implicit", start_tls=False)
    step = "connect" + (" (implicit TLS)" if cfg.tls == "implicit" else "")
    try:
        await smtp.connect()
        step = "EHLO"
        await smtp.ehlo()
        if cfg.tls == "starttls":
            step = "STARTTLS"
            if not smtp.supports_extension("starttls"):
                return f"{where}: STARTTLS: not offered by the relay"
            await smtp.starttls()
        if cfg.username and cfg.password_file:
            step = "AUTH"
            try:
                password = await asyncio.to_thread(cfg.password_file.read_text)
            except OSError as e:
                return f"{where}: AUTH: smtp_out.password_file {cfg.password_file}: " \
                       f"{(e.strerror or str(e)).lower()}"
            await smtp.login(cfg.username, password.strip())
        step = "QUIT"
        await smtp.quit()
    except (aiosmtplib.SMTPException, OSError) as e:
        smtp.close()
        return f"{where}: {step}: {_reason(e)}"
    return None


def _reason(e: BaseException) -> str:
    """The relay's answer or the socket's error, without a password (none is ever in it)."""
    cause = e.__cause__ if isinstance(e.__cause__, OSError) else e
    if isinstance(cause, OSError) and cause.errno:  # asyncio's words name no reason
        return os.strerror(cause.errno).lower()
    if isinstance(e, aiosmtplib.SMTPResponseException):
        return f"{e.code} {' '.join(e.message.split())}"
    return " ".join(str(e).split()) or type(e).__name__


def _maildir_problem(cfg: SmtpOutConfig) -> str | None:
    assert cfg.maildir is not None
    target = cfg.maildir / "tmp"
    try:
        target.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, name = tempfile.mkstemp(dir=target, prefix=".check-")
        os.close(fd)
        os.unlink(name)
    except OSError as e:
        return f"smtp_out.maildir {cfg.maildir}: cannot write: {(e.strerror or str(e)).lower()}"
    return None
