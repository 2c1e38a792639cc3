"""A real headless Chromium for the browser tests, driven over the DevTools protocol through a pipe
(--remote-debugging-pipe: no extra package). ``BROWSER`` is the Chromium found on the PATH, or None
(the tests that need one skip, saying why: apt-get install chromium)."""
from __future__ import annotations

import base64
import io
import json
import subprocess
import tempfile
import threading
import time

import numpy as np

from landscape.figures.interactive import HEADLESS_FLAGS, find_browser

BROWSER = find_browser()
NO_BROWSER = "no Chromium on the PATH (apt-get install chromium)"


class Chrome:
    """Headless Chromium with a fresh profile, no network (a dead proxy, no name resolution, and,
    with ``offline``, DevTools' offline emulation; without it only loopback addresses answer, which
    Chromium never sends through a proxy), one page. ``call`` sends a DevTools command and waits for
    its answer; every request the page makes is recorded in ``requests``."""

    def __init__(self, exe: str, width: int = 1400, height: int = 720, offline: bool = True):
        self.profile = tempfile.TemporaryDirectory(prefix="landscape-test-chromium-")
        args = [*HEADLESS_FLAGS, f"--user-data-dir={self.profile.name}", "--remote-debugging-pipe",
                f"--window-size={width},{height}", "--proxy-server=127.0.0.1:9",
                "--host-resolver-rules=MAP * ~NOTFOUND" + ("" if offline else ", EXCLUDE 127.0.0.1"), "about:blank"]
        # fd 3: commands to the browser, fd 4: its answers (our stdin / stdout pipes)
        self.proc = subprocess.Popen(["sh", "-c", 'exec "$0" "$@" 3<&0 4>&1 </dev/null >/dev/null 2>/dev/null',
                                      exe, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.next_id, self.answers, self.requests = 0, {}, []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for method, params in (("Page.enable", {}), ("Network.enable", {}),
                               *([("Network.emulateNetworkConditions", {"offline": True, "latency": 0,
                                                                        "downloadThroughput": -1,
                                                                        "uploadThroughput": -1})] if offline else []),
                               ("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                                                                       "deviceScaleFactor": 1, "mobile": False})):
            self.page(method, params)

    def _read(self):
        buf = b""
        while True:
            chunk = self.proc.stdout.read1(1 << 16)
            if not chunk:
                return
            buf += chunk
            *msgs, buf = buf.split(b"\0")
            for raw in msgs:
                msg = json.loads(raw)
                with self.cond:
                    if "id" in msg:
                        self.answers[msg["id"]] = msg
                    elif msg.get("method") == "Network.requestWillBeSent":
                        self.requests.append(msg["params"]["request"]["url"])
                    self.cond.notify_all()

    def call(self, method, params=None, session=None, timeout=60.0):
        self.next_id += 1
        n = self.next_id
        msg = {"id": n, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.proc.stdin.write(json.dumps(msg).encode() + b"\0")
        self.proc.stdin.flush()
        with self.cond:
            if not self.cond.wait_for(lambda: n in self.answers, timeout):
                raise TimeoutError(f"no answer to {method} in {timeout} s")
            answer = self.answers.pop(n)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    def page(self, method, params=None, timeout=60.0):
        return self.call(method, params, self.session, timeout)

    def js(self, expression, timeout=60.0):
        r = self.page("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True},
                      timeout)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait(self, expression, timeout=60.0):
        """Poll ``expression`` until it is true; an evaluation lost in a navigation is asked again."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                value = self.js(expression, timeout=min(10.0, max(end - time.monotonic(), 0.1)))
            except TimeoutError:
                continue
            if value:
                return value
            time.sleep(0.05)
        raise TimeoutError(f"still false after {timeout} s: {expression}")

    def goto(self, url: str, ready: str, timeout: float = 60.0):
        """Load ``url`` and wait until the JavaScript expression ``ready`` is true."""
        self.requests.clear()
        self.page("Page.navigate", {"url": url})
        self.wait(ready, timeout)

    def screenshot(self) -> np.ndarray:
        from PIL import Image

        data = self.page("Page.captureScreenshot", {"format": "png"})["data"]
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))  # (H, W, 3)

    def click(self, x, y):
        for kind in ("mousePressed", "mouseReleased"):
            self.page("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left",
                                                   "clickCount": 1})

    def move(self, x, y):
        self.page("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})

    def close(self):
        try:
            self.call("Browser.close", timeout=10)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            pipe.close()
        self.profile.cleanup()
