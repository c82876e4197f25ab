"""Read one SMTP DATA block off the stream: up to <CRLF>.<CRLF>, wherever it falls.

The DATA command's own CRLF counts, so `.<CRLF>` first thing ends an empty mail and a
one-line mail ends after its first line. Only <CRLF>.<CRLF> ends data: a bare
`<LF>.<CR><LF>` or `<CR><LF>.<LF>` (SMTP smuggling) stays in the mail, as do bare LF and
CR line ends: what the client sent is stored; the worker may normalise.

A block up to `block` bytes is read in one `readuntil` (the flood's fast path); a larger one
goes, dot-unstuffed chunk by chunk, into an unlinked temporary file in the data directory,
so an open DATA costs a connection at most about two blocks of memory.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

END = b"\r\n.\r\n"
BLOCK = 256 * 1024  # bytes read in one go before spooling; nearly every text mail fits
# While spooling, the stream's buffer is emptied past this many bytes (the transport
# pauses reading at twice as much): what a connection holds in memory meanwhile.
SPOOL_CHUNK = 64 * 1024


class Refused(Exception):
    """The block was read to its end but is not kept; `reply` says why."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


TOO_BIG = "552 5.3.4 Error: Too much mail data"
NO_SPOOL = "451 4.3.1 cannot take the mail now (no room to spool it); try again later"


@dataclass(slots=True)
class Block:
    """The mail as received, dot-unstuffed: in memory, or in a spool file of `size` bytes."""

    content: bytes | None
    spool: BinaryIO | None = None
    size: int = 0

    async def load(self) -> bytes:
        if self.content is not None:
            return self.content
        assert self.spool is not None
        return await asyncio.to_thread(_read_all, self.spool)

    async def close(self) -> None:
        if self.spool is not None:
            await asyncio.to_thread(self.spool.close)
            self.spool = None


def unstuff(data: bytes) -> bytes:
    """RFC 5321 4.5.2: a line that starts with a dot lost that dot. `data` starts with the
    DATA line's CRLF, which is dropped."""
    return data.replace(b"\r\n.", b"\r\n")[2:]


class _Unstuffer:
    """`unstuff` over a stream of chunks: a CRLF (or CR) at a chunk's end waits for the next.
    A chunk with no dot to take off (any base64 attachment) is passed on without a copy."""

    def __init__(self) -> None:
        self.carry = b""
        self.skip = 2  # the DATA line's CRLF

    def feed(self, chunk: bytes) -> bytes | memoryview:
        s = self.carry + chunk if self.carry else chunk
        keep = 2 if s.endswith(b"\r\n") else 1 if s.endswith(b"\r") else 0
        end = len(s) - keep
        out: bytes | memoryview
        out = s[:end].replace(b"\r\n.", b"\r\n") if b"\r\n." in s else memoryview(s)[:end]
        self.carry = s[end:]
        if self.skip:
            out, self.skip = out[self.skip:], max(0, self.skip - len(out))
        return out

    def end(self) -> bytes:
        out, self.carry = self.carry, b""
        return out[self.skip:]


async def read_block(
    reader: asyncio.StreamReader, *, max_size: int, spool_dir: Path, block: int = BLOCK
) -> Block:
    """The next DATA block; raises `Refused` once it was read to its end (over `max_size`,
    or no room to spool), so the session goes on in step with the client."""
    # Private StreamReader attributes (stable since Python 3.4): the limit is one command
    # line's length while aiosmtpd reads commands and is set back below; the DATA line's
    # CRLF goes back in front of the buffer so that <CRLF>.<CRLF> can match right away.
    saved = reader._limit  # type: ignore[attr-defined]
    reader._limit = block  # type: ignore[attr-defined]
    reader._buffer[0:0] = b"\r\n"  # type: ignore[attr-defined]
    try:
        try:
            data = await reader.readuntil(END)
        except asyncio.LimitOverrunError as e:
            reader._limit = SPOOL_CHUNK  # type: ignore[attr-defined]
            return await _spool(reader, e.consumed, max_size, spool_dir)
        if len(data) - len(END) > max_size:
            raise Refused(TOO_BIG)
        return Block(unstuff(data[:-3]), size=len(data) - len(END))
    finally:
        reader._limit = saved  # type: ignore[attr-defined]


async def _spool(
    reader: asyncio.StreamReader, ready: int, max_size: int, spool_dir: Path
) -> Block:
    """Read the rest of a block in chunks into a spool file; past `max_size`, or when the
    spool cannot be written, only read on to the end marker."""
    unstuffer = _Unstuffer()
    received = size = 0
    refusal: str | None = None
    spool: BinaryIO | None = None
    try:
        while True:
            if ready:
                chunk, last = await reader.readexactly(ready), False
            else:
                try:
                    chunk, last = (await reader.readuntil(END))[:-3], True
                except asyncio.LimitOverrunError as e:
                    ready = e.consumed
                    continue
            ready = 0
            received += len(chunk)
            if refusal is None and received - 2 > max_size:
                refusal = TOO_BIG
            if refusal is None:
                try:
                    if spool is None:
                        spool = await asyncio.to_thread(_open_spool, spool_dir)
                    for out in (unstuffer.feed(chunk), unstuffer.end() if last else b""):
                        if out:
                            await asyncio.to_thread(spool.write, out)
                            size += len(out)
                except OSError:
                    refusal = NO_SPOOL
            if last:
                break
        if refusal is not None:
            raise Refused(refusal)
        assert spool is not None
        block, spool = Block(None, spool, size), None
        return block
    finally:
        if spool is not None:
            await asyncio.to_thread(spool.close)


def _open_spool(spool_dir: Path) -> BinaryIO:
    """An unlinked file readable by us alone (0600), next to the database."""
    spool_dir.mkdir(parents=True, exist_ok=True)
    f = tempfile.TemporaryFile(dir=spool_dir, prefix="mailbot-data-")  # noqa: SIM115
    os.fchmod(f.fileno(), 0o600)
    return f


def _read_all(f: BinaryIO) -> bytes:
    f.flush()
    f.seek(0)
    return f.read()
