"""Headless Chromium driven over its DevTools protocol through a pipe
(`--remote-debugging-pipe`: JSON messages ended by a NUL byte on file descriptors 3 and 4),
with no driver package: Debian's `chromium` is the only requirement (`.ci/install-browser`
installs it). Used by tests/test_report_page.py and docs/screenshots.py."""

import base64
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path


def find_chromium() -> str | None:
    """The Chromium executable (`$CHROMIUM`, else `chromium` on the PATH), or None."""
    return (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )


class Chromium:
    """A headless Chromium with one page; `open(path)` loads a file, `evaluate(js)` runs
    an expression there, `screenshot()` returns PNG bytes, `errors` lists the console
    errors and uncaught exceptions seen so far."""

    def __init__(self, executable: str, width: int = 1280, height: int = 900):
        self.profile = tempfile.mkdtemp(prefix="jgeo-chromium-")
        args = [
            executable,
            "--headless",
            "--remote-debugging-pipe",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            f"--user-data-dir={self.profile}",
            "about:blank",
        ]
        # Chromium reads the protocol on fd 3 and writes it on fd 4: the shell moves this
        # process's pipes there.
        self.process = subprocess.Popen(
            ["bash", "-c", 'exec "$@" 3<&0 4>&1 0</dev/null 1>/dev/null 2>/dev/null', "-", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.messages: queue.Queue = queue.Queue()
        self.events: list[dict] = []
        self.errors: list[str] = []
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Runtime", "Log", "Page"):
            self.call(f"{domain}.enable", session=True)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session=True,
        )

    def _read(self) -> None:
        buffer = b""
        while chunk := self.process.stdout.read1(1 << 16):
            buffer += chunk
            *complete, buffer = buffer.split(b"\0")
            for message in complete:
                self.messages.put(json.loads(message))
        self.messages.put(None)

    def _note(self, message: dict) -> None:
        method, params = message.get("method"), message.get("params", {})
        self.events.append(message)
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.errors.append(details.get("exception", {}).get("description", details["text"]))
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            self.errors.append(
                " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
            )
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.errors.append(params["entry"]["text"])

    def call(
        self, method: str, params: dict | None = None, *, session: bool = False, timeout: float = 60
    ) -> dict:
        """Send one protocol command and wait for its answer (events are noted meanwhile)."""
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        self.process.stdin.write(json.dumps(message).encode() + b"\0")
        self.process.stdin.flush()
        deadline = time.monotonic() + timeout
        while True:
            answer = self.messages.get(timeout=max(0.01, deadline - time.monotonic()))
            if answer is None:
                raise RuntimeError("chromium exited")
            if answer.get("id") == self.next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]
            self._note(answer)

    def evaluate(self, expression: str, timeout: float = 60):
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session=True,
            timeout=timeout,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:60]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, path: Path, ready: str, timeout: float = 60) -> None:
        """Load the file `path` and wait until the expression `ready` is truthy."""
        self.call("Page.navigate", {"url": Path(path).resolve().as_uri()}, session=True)
        self.wait(ready, timeout)

    def wait(self, ready: str, timeout: float = 60) -> None:
        """Wait until the expression `ready` is truthy (an exception counts as false)."""
        guarded = f"(() => {{ try {{ return !!({ready}); }} catch (e) {{ return false; }} }})()"
        deadline = time.monotonic() + timeout
        while not self.evaluate(guarded):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{ready!r} still false after {timeout} s")
            time.sleep(0.2)

    def screenshot(self, full_page: bool = False, element: str | None = None) -> bytes:
        """The page as PNG bytes: the viewport, the whole page, or the element of id
        `element`."""
        params = {"format": "png"}
        if full_page or element:
            if element:
                box = self.evaluate(
                    f"(() => {{ const r = document.getElementById({element!r})"
                    ".getBoundingClientRect(); return [r.left + scrollX, r.top + scrollY, "
                    "r.width, r.height]; })()"
                )
            else:
                size = self.call("Page.getLayoutMetrics", session=True)["cssContentSize"]
                box = [0, 0, size["width"], size["height"]]
            x, y, width, height = box
            params["clip"] = {"x": x, "y": y, "width": width, "height": height, "scale": 1}
            params["captureBeyondViewport"] = True
        return base64.b64decode(self.call("Page.captureScreenshot", params, session=True)["data"])

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except (RuntimeError, queue.Empty, BrokenPipeError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
