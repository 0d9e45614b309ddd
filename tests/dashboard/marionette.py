"""A small client of Firefox's Marionette protocol, enough for the dashboard's test.

Firefox started with `--marionette` listens on `marionette.port`; every message is
`length:json`. It greets with `{"marionetteProtocol": 3, ...}`; a command is
`[0, id, "WebDriver:Navigate", {params}]` and its answer `[1, id, error, result]`.
(PyPI's marionette-driver does this too, but it imports `telnetlib`, gone in Python 3.13,
through the ten mozbase packages it needs.)
"""

from __future__ import annotations

import base64
import json
import socket
from typing import Any

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C WebDriver element reference
ENTER = "\ue007"
ESCAPE = "\ue00c"
TAB = "\ue004"


class MarionetteError(Exception):
    """An error the browser answered with (no such element, stale element, ...)."""


class Element:
    def __init__(self, client: Marionette, ref: str) -> None:
        self.client = client
        self.ref = ref

    @property
    def element_json(self) -> dict[str, str]:
        """The element as an argument of `Marionette.script`."""
        return {ELEMENT: self.ref}

    def find(self, css: str) -> Element:
        return self.client.find(css, within=self)

    @property
    def text(self) -> str:
        return str(self.client.send("WebDriver:GetElementText", {"id": self.ref})["value"])

    def click(self) -> None:
        self.client.send("WebDriver:ElementClick", {"id": self.ref})

    def send_keys(self, text: str) -> None:
        self.client.send("WebDriver:ElementSendKeys", {"id": self.ref, "text": text})

    def is_displayed(self) -> bool:
        return bool(self.client.send("WebDriver:IsElementDisplayed", {"id": self.ref})["value"])


class Marionette:
    """One session over one connection; each call waits for its answer."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 60) -> None:
        self.sock = socket.create_connection((host, port), timeout)
        self.sock.settimeout(timeout)
        self.buffer = b""
        self.last_id = 0
        hello = self.receive()
        if not isinstance(hello, dict) or hello.get("marionetteProtocol") != 3:
            raise MarionetteError(f"not Marionette protocol 3: {hello!r}")
        self.capabilities: dict[str, Any] = self.send("WebDriver:NewSession", {})["capabilities"]

    def send(self, command: str, params: dict[str, Any] | None = None) -> Any:
        self.last_id += 1
        data = json.dumps([0, self.last_id, command, params or {}]).encode()
        self.sock.sendall(str(len(data)).encode() + b":" + data)
        kind, answered, error, result = self.receive()
        assert kind == 1 and answered == self.last_id, "answers come in order"
        if error:
            raise MarionetteError(f"{command}: {error.get('error')}: {error.get('message')}")
        return result

    def receive(self) -> Any:
        while b":" not in self.buffer:
            self.buffer += self.read()
        size, _, self.buffer = self.buffer.partition(b":")
        while len(self.buffer) < int(size):
            self.buffer += self.read()
        message, self.buffer = self.buffer[: int(size)], self.buffer[int(size) :]
        return json.loads(message)

    def read(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise MarionetteError("the browser closed the connection")
        return chunk

    def close(self) -> None:
        try:
            self.send("WebDriver:DeleteSession")
        finally:
            self.sock.close()

    def navigate(self, url: str) -> None:
        self.send("WebDriver:Navigate", {"url": url})

    @property
    def url(self) -> str:
        return str(self.send("WebDriver:GetCurrentURL")["value"])

    @property
    def page_source(self) -> str:
        return str(self.send("WebDriver:GetPageSource")["value"])

    def find(self, css: str, within: Element | None = None) -> Element:
        params = {"using": "css selector", "value": css}
        if within is not None:
            params["element"] = within.ref
        return Element(self, self.send("WebDriver:FindElement", params)["value"][ELEMENT])

    def find_all(self, css: str) -> list[Element]:
        found = self.send("WebDriver:FindElements", {"using": "css selector", "value": css})
        return [Element(self, ref[ELEMENT]) for ref in found]

    def xpath(self, expression: str) -> Element:
        params = {"using": "xpath", "value": expression}
        return Element(self, self.send("WebDriver:FindElement", params)["value"][ELEMENT])

    def script(self, body: str, *args: Any) -> Any:
        return self.send("WebDriver:ExecuteScript", {"script": body, "args": list(args)})["value"]

    def cookies(self) -> list[dict[str, Any]]:
        return list(self.send("WebDriver:GetCookies"))

    def screenshot(self) -> bytes:
        """A PNG of the whole page."""
        shot = self.send("WebDriver:TakeScreenshot", {"full": True, "hash": False})["value"]
        return base64.b64decode(shot)

    def window_size(self, width: int, height: int) -> None:
        self.send("WebDriver:SetWindowRect", {"width": width, "height": height})

    def chrome_script(self, body: str) -> Any:
        """`body` run in the browser's own window (needs -remote-allow-system-access)."""
        self.send("Marionette:SetContext", {"value": "chrome"})
        try:
            return self.script(body)
        finally:
            self.send("Marionette:SetContext", {"value": "content"})
