"""A proxy in front of a real IMAP server (Dovecot) that makes it behave as other servers do
in the ways that trouble the watcher. Everything else passes through byte for byte; the
server does all the work, the proxy only withholds or trims what it says:

- `strip_uidnext`: SELECT answers without `[UIDNEXT n]` (Courier).
- `silent_idle`: nothing is reported while a client idles (Courier without enhanced IDLE,
  Cyrus without idled: IDLE is accepted, new mail shows up only at the next command).
- `no_keywords`: PERMANENTFLAGS without `\\*` or keywords, as pymap or a read-only flag
  store would announce.

Responses are read whole, literals included (`{n}` then n raw bytes), so a mail body that
looks like a response is never mistaken for one.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from typing import BinaryIO

from tests.dovecot import free_port

LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")
UIDNEXT = re.compile(rb"^\* OK \[UIDNEXT \d+\]")
NEWS = re.compile(rb"^\* \d+ (EXISTS|RECENT)\r\n$", re.IGNORECASE)
PERMANENT = re.compile(rb"^(\* OK \[PERMANENTFLAGS \()([^)]*)(\)\].*)$", re.DOTALL)


def read_response(f: BinaryIO) -> bytes:
    """One whole line of the protocol, with the literals it announces; b"" at the end."""
    out = b""
    while True:
        line = f.readline()
        if not line:
            return out
        out += line
        m = LITERAL.search(line)
        if not m:
            return out
        out += f.read(int(m.group(1)))


class ImapProxy:
    def __init__(self, upstream_port: int, *, strip_uidnext: bool = False,
                 silent_idle: bool = False, no_keywords: bool = False) -> None:
        self.upstream_port = upstream_port
        self.strip_uidnext = strip_uidnext
        self.silent_idle = silent_idle
        self.no_keywords = no_keywords
        self.withheld = 0  # responses not passed on: a test can see the proxy did its part
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._socks: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        for s in self._socks:
            with contextlib.suppress(OSError):
                s.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._socks += [client, server]
            idling = threading.Event()
            threading.Thread(target=self._up, args=(client, server, idling), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, idling),
                             daemon=True).start()

    def _up(self, client: socket.socket, server: socket.socket, idling: threading.Event) -> None:
        """Client to server, unchanged; noting when the client idles."""
        f = client.makefile("rb")
        with contextlib.suppress(OSError):
            while response := read_response(f):
                words = response.split()
                if len(words) == 2 and words[1].upper() == b"IDLE":
                    idling.set()
                elif response.strip().upper() == b"DONE":
                    idling.clear()
                server.sendall(response)
        _shut(client, server)

    def _down(self, server: socket.socket, client: socket.socket,
              idling: threading.Event) -> None:
        """Server to client, less what this proxy's server would not say."""
        f = server.makefile("rb")
        with contextlib.suppress(OSError):
            while response := read_response(f):
                if ((self.strip_uidnext and UIDNEXT.match(response))
                        or (self.silent_idle and idling.is_set() and NEWS.match(response))):
                    self.withheld += 1
                    continue
                if self.no_keywords and (m := PERMANENT.match(response)):
                    kept = b" ".join(f for f in m.group(2).split()
                                     if f.startswith(b"\\") and f != b"\\*")
                    response = m.group(1) + kept + m.group(3)
                client.sendall(response)
        _shut(client, server)


def _shut(*socks: socket.socket) -> None:
    for s in socks:
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
