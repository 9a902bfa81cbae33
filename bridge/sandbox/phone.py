"""`VirtualPhone`: the bridge's client of the simulator's control API (sandbox mode only).

It plays the phone a newcomer does not need: scan a session's QR, type a pairing code, and chat
as simulated contacts. Errors of the simulator keep its status and message (`PhoneError`), so
the dashboard can show "404 ref unknown/expired" as the simulator said it.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from bridge.errors import BridgeError, ErrorCode

TIMEOUT = aiohttp.ClientTimeout(total=60)


class PhoneError(BridgeError):
    """The simulator refused a control call; `status` is its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        code = {404: ErrorCode.NOT_FOUND, 403: ErrorCode.CONFLICT, 409: ErrorCode.CONFLICT,
                503: ErrorCode.RUNTIME_ERROR}.get(status, ErrorCode.VALIDATION_ERROR)
        super().__init__(f"virtual phone: {message}", code=code)
        self.status = status


class VirtualPhone:
    """Thin typed calls to the control API at `control_url` (127.0.0.1, no auth: loopback only)."""

    def __init__(self, control_url: str) -> None:
        self.control_url = control_url
        self._http: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=TIMEOUT)
        try:
            async with self._http.request(method, self.control_url + path, json=body) as resp:
                data = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise PhoneError(503, f"the simulator does not answer ({exc or type(exc).__name__})") from exc
        if resp.status != 200:
            err = data.get("error", {}) if isinstance(data, dict) else {}
            raise PhoneError(resp.status, str(err.get("message", data)))
        return data

    async def scan(self, qr: str, phone: str) -> dict[str, Any]:
        """The phone `phone` scans `qr`; answers the new linked device once it signed."""
        result: dict[str, Any] = await self.call("POST", "/scan", {"qr": qr, "phone": phone})
        return result

    async def enter_pairing_code(self, phone: str, code: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("POST", "/pair-code", {"phone": phone, "code": code})
        return result

    async def ensure_contact(self, phone: str, push_name: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("POST", "/contacts", {"phone": phone, "push_name": push_name})
        return result

    async def contacts(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.call("GET", "/contacts")
        return result

    async def inbox(self, phone: str) -> list[dict[str, Any]]:
        """What contact `phone` received and decrypted, oldest first."""
        result: list[dict[str, Any]] = await self.call("GET", f"/contacts/{phone}/inbox")
        return result

    async def outbox(self, phone: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.call("GET", f"/contacts/{phone}/outbox")
        return result

    async def send_text(self, phone: str, to: str, text: str, quoted: str | None = None) -> dict[str, Any]:
        """Contact `phone` sends `text` to the account `to` (a phone number)."""
        body: dict[str, Any] = {"to": to, "kind": "text", "text": text}
        if quoted:
            body["quoted"] = quoted
        result: dict[str, Any] = await self.call("POST", f"/contacts/{phone}/send", body)
        return result

    async def send_receipt(self, phone: str, to: str, ids: list[str], kind: str = "read") -> None:
        await self.call("POST", f"/contacts/{phone}/receipt", {"to": to, "ids": ids, "type": kind})

    async def accounts(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.call("GET", "/accounts")
        return result
