"""A headless Chromium driven over the DevTools protocol: load a viewer page, read its scene
tree, click its controls, take screenshots. Used by the viewer's test and by
``scripts/viewer_screenshot.py`` (the README picture); nothing else needs a browser.

viser's web client exposes its scene tree as ``window.__viserSceneTree`` (for its own end-to-end
tests); :meth:`HeadlessBrowser.scene_nodes` reads it, so a test sees what the page received,
not what the server meant to send. The browser runs in its own process group with a fresh
profile folder; :meth:`HeadlessBrowser.close` ends that group and removes the folder.

This module may import the standard library and ``websockets`` (a dependency of viser).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Headless, no GPU, nothing phoning home; SwiftShader gives WebGL without a GPU (the page is ours).
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--no-default-browser-check", "--enable-unsafe-swiftshader", "--hide-scrollbars",
)


def find_chromium() -> str | None:
    """Path of a Chromium (or Chrome) executable on PATH, or None."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


class BrowserError(RuntimeError):
    """The browser did not start, or the page did not do what was waited for."""


class HeadlessBrowser:
    """One headless Chromium showing one page. Use as a context manager.

    Args:
        url: the page to open.
        width, height: window size in pixels.
        executable: the browser (default: :func:`find_chromium`).
        timeout: seconds to wait for the browser's DevTools endpoint.
    """

    def __init__(self, url: str, width: int = 1600, height: int = 1000, executable: str | None = None, timeout: float = 30.0) -> None:
        executable = executable or find_chromium()
        if executable is None:
            raise BrowserError(f"no Chromium found on PATH (looked for {', '.join(CHROMIUM_NAMES)})")
        self.profile = Path(tempfile.mkdtemp(prefix="lyra-sim-chromium-"))
        self.log_path = self.profile.parent / f"{self.profile.name}.log"
        self._log = open(self.log_path, "wb")
        command = [executable, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-port=0",
                   f"--window-size={width},{height}", url]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=self._log, start_new_session=True)
        self._socket = None
        self._next_id = 0
        try:
            self._connect(timeout)
        except BaseException:
            self.close()
            raise

    def _connect(self, timeout: float) -> None:
        from websockets.sync.client import connect

        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.is_file() and port_file.read_text().strip()):
            if self.process.poll() is not None:
                raise BrowserError(f"Chromium exited with {self.process.returncode}; its log: {self.log_path}")
            if time.monotonic() > deadline:
                raise BrowserError(f"Chromium opened no DevTools port within {timeout:.0f} s; its log: {self.log_path}")
            time.sleep(0.05)
        port = port_file.read_text().split()[0]
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=5) as response:
                pages = [t for t in json.load(response) if t.get("type") == "page"]
            if pages:
                break
            if time.monotonic() > deadline:
                raise BrowserError("Chromium shows no page")
            time.sleep(0.05)
        self._socket = connect(pages[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=timeout)

    def call(self, method: str, **params) -> dict:
        """Send one DevTools command and return its result."""
        self._next_id += 1
        self._socket.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv(timeout=60))
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise BrowserError(f"{method} failed: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"JavaScript error in {expression[:80]!r}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 30.0, what: str = "the page") -> Any:
        """Poll ``predicate`` until it returns something truthy; raise ``BrowserError`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"waited {timeout:.0f} s for {what}")
            time.sleep(0.1)

    def scene_nodes(self) -> dict[str, dict]:
        """The page's scene tree: node name -> {"type": viser message type, "visible": bool}.

        Empty until the viewer's web client has mounted its 3D canvas.
        """
        nodes = self.evaluate(
            "window.__viserSceneTree ? Object.fromEntries(Object.entries(window.__viserSceneTree.getState())"
            ".map(([name, node]) => [name, {type: node.message ? node.message.type : null,"
            " visible: node.effectiveVisibility !== false}])) : {}"
        )
        return nodes or {}

    def canvas_ready(self) -> bool:
        """Whether the 3D canvas is drawn at full opacity: viser keeps it faint until its
        environment map has loaded, so a screenshot before that looks washed out."""
        return bool(self.evaluate(
            "(() => { const drawn = [...document.querySelectorAll('canvas')].filter(c => c.width > 0 && c.height > 0);"
            " return drawn.length > 0 && drawn.every(c => c.style.opacity === '' || Number(c.style.opacity) >= 1); })()"
        ))

    def text(self) -> str:
        """The visible text of the page (the GUI panel)."""
        return self.evaluate("document.body.innerText") or ""

    def click_checkbox(self, label: str) -> None:
        """Click the checkbox of the GUI row labelled ``label``."""
        # A GUI row is a flex box holding the label text and one checkbox.
        found = self.evaluate(
            "(() => { const label = " + json.dumps(label) + ";"
            " for (const row of document.querySelectorAll('.mantine-Flex-root')) {"
            "  const boxes = row.querySelectorAll('input[type=checkbox]');"
            "  if (boxes.length === 1 && (row.innerText || '').trim() === label) { boxes[0].click(); return true; } }"
            " return false; })()"
        )
        if not found:
            raise BrowserError(f"no checkbox labelled {label!r} on the page")

    def click_button(self, label: str) -> None:
        """Click the GUI button labelled ``label``."""
        found = self.evaluate(
            "(() => { for (const button of document.querySelectorAll('button'))"
            "  if ((button.innerText || '').trim() === " + json.dumps(label) + ") { button.click(); return true; }"
            " return false; })()"
        )
        if not found:
            raise BrowserError(f"no button labelled {label!r} on the page")

    def hide_notifications(self) -> None:
        """Remove toast notifications (viser warns about software WebGL) before a screenshot."""
        self.evaluate("document.querySelectorAll('.mantine-Notification-root, .mantine-Notifications-notification').forEach(e => e.remove())")

    def screenshot(self, path) -> Path:
        """Save a PNG of the page."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        """End the browser's process group and remove its profile."""
        if self._socket is not None:
            try:
                self._socket.close()
            except Exception:  # noqa: BLE001 - the browser may already be gone
                pass
            self._socket = None
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.process.wait(timeout=5)
        self._log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> "HeadlessBrowser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
