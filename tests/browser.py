"""A real headless Chromium driven over the DevTools protocol on a pipe (no websocket, no
library): open a page, see every request it makes, read its visible text, screenshot it.

Chromium comes from Debian's `chromium` package (scripts/test.sh installs it when missing).
Every http(s) request is sent to a proxy that does not exist (port 9 on loopback), so
nothing leaves the machine, and each one is still reported by the Network domain.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NAMES = ("chromium", "chromium-browser", "google-chrome")


def find() -> str | None:
    return next((p for n in NAMES if (p := shutil.which(n))), None)


@dataclass
class Page:
    text: str  # document.body.innerText: what a reader sees
    requests: list[str] = field(default_factory=list)  # every URL the page asked for
    size: tuple[int, int] = (0, 0)  # the laid-out width and height in CSS pixels


class Browser:
    """One Chromium process; `open` loads a file and returns what it shows."""

    def __init__(self, binary: str, width: int = 700) -> None:
        self.width = width
        self._profile = tempfile.TemporaryDirectory(prefix="mailbot-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        # --remote-debugging-pipe talks on fds 3 (to the browser) and 4 (from it).
        self.proc = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--mute-audio", "--proxy-server=http://127.0.0.1:9",
             "--proxy-bypass-list=<-loopback>", f"--user-data-dir={self._profile.name}",
             "--remote-debugging-pipe", "about:blank"],
            pass_fds=(3, 4), preexec_fn=_pipes(to_child_r, from_child_w),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._next = 0
        self._events: list[dict[str, Any]] = []
        try:
            target = self.call("Target.createTarget", url="about:blank")["targetId"]
            self.session = self.call("Target.attachToTarget", targetId=target,
                                     flatten=True)["sessionId"]
            for domain in ("Page", "Network", "Runtime"):
                self.call(f"{domain}.enable", session=self.session)
            self.call("Emulation.setDeviceMetricsOverride", session=self.session, width=width,
                      height=900, deviceScaleFactor=1, mobile=False)
        except BaseException:
            self.close()  # never leave a browser behind
            raise

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))
            self._events.append(reply)

    def _read(self, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("chromium stopped answering")
            chunk = os.read(self._from_child, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed its pipe")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return dict(json.loads(message))

    def _wait_for(self, method: str) -> None:
        while True:
            found = [e for e in self._events if e.get("method") == method]
            if found:
                self._events.remove(found[0])
                return
            self._events.append(self._read())

    def open(self, path: Path, screenshot: Path | None = None,
             max_height: int | None = None) -> Page:
        """Load `path`; the screenshot shows the whole page, or its top `max_height` px."""
        self._events.clear()
        self.call("Page.navigate", session=self.session, url=path.resolve().as_uri())
        self._wait_for("Page.loadEventFired")
        page = Page(self.evaluate("document.body.innerText"))
        page.requests = [e["params"]["request"]["url"] for e in self._events
                         if e.get("method") == "Network.requestWillBeSent"]
        page.requests = [u for u in page.requests if u != path.resolve().as_uri()]
        width = int(self.evaluate("document.documentElement.scrollWidth"))
        height = int(self.evaluate("document.documentElement.scrollHeight"))
        page.size = (width, height)
        if screenshot is not None:
            shown = min(height, max_height or height)
            self.call("Emulation.setDeviceMetricsOverride", session=self.session,
                      width=self.width, height=shown, deviceScaleFactor=1, mobile=False)
            shot = self.call("Page.captureScreenshot", session=self.session, format="png")
            screenshot.write_bytes(base64.b64decode(shot["data"]))
        return page

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", session=self.session, expression=expression,
                           returnByValue=True)
        return result["result"].get("value")

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, OSError):
            self.call("Browser.close")
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_child)
        os.close(self._from_child)
        self._profile.cleanup()


def _pipes(to_child: int, from_child: int) -> Any:
    """In the child: the pipe ends on fds 3 and 4, where Chromium looks for them."""

    def setup() -> None:
        # Out of the way first: either end may itself be fd 3 or 4.
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_child, from_child)]
        os.dup2(high[0], 3)
        os.dup2(high[1], 4)

    return setup
