"""The simulator's media host, as tests drive it (simulator/media.mjs, routes in README.md)."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path
from typing import Any

import aiohttp

from tests.simulator.client import SimulatorClient, SimulatorError


async def _call(sim: SimulatorClient, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        async with http.request(method, sim.control_url + path, json=body) as resp:
            data = await resp.json(content_type=None)
            if resp.status != 200:
                raise SimulatorError(resp.status, str(data))
            return data


async def trust_file(sim: SimulatorClient, folder: Path) -> Path:
    """The media host's certificate as a PEM file (BRIDGE_MEDIA_TRUST_CA)."""
    info = await _call(sim, "GET", "/media")
    path = folder / "media-ca.pem"
    path.write_text(info["ca_pem"])
    return path


async def media_host_port(sim: SimulatorClient) -> int:
    """The TCP port of the simulator's media host."""
    info = await _call(sim, "GET", "/media")
    return int(str(info["host"]).rsplit(":", 1)[1])


async def decrypted(sim: SimulatorClient, contact: str, message_id: str) -> dict[str, Any]:
    """What the contact decrypted from the media message it received: sha256, size, fields."""
    result: dict[str, Any] = await _call(sim, "GET", f"/contacts/{contact}/media/{message_id}")
    return result


STAGE_OVER = 512 << 10
"""Files larger than this go raw to the media host first (the control API takes JSON up to 1 MiB)."""


async def stage(sim: SimulatorClient, data: bytes | Path) -> str:
    """Put a plaintext on the media host (`POST /sim/stage`) for a later `send_media` with `data_ref`."""
    info = await _call(sim, "GET", "/media")
    context = ssl.create_default_context(cadata=info["ca_pem"])
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as http:
        if isinstance(data, Path):
            with data.open("rb") as body:
                async with http.post(f"https://{info['host']}/sim/stage", data=body, ssl=context) as resp:
                    answer = await resp.json(content_type=None)
        else:
            async with http.post(f"https://{info['host']}/sim/stage", data=data, ssl=context) as resp:
                answer = await resp.json(content_type=None)
    if resp.status != 200:
        raise SimulatorError(resp.status, str(answer))
    return str(answer["ref"])


async def send_media(sim: SimulatorClient, contact: str, to: str, kind: str, data: bytes | Path, mimetype: str,
                     **extra: Any) -> str:
    """The contact sends `data` (bytes, or a file's path) as a `kind` message to `to`; returns its id."""
    if isinstance(data, Path) or len(data) > STAGE_OVER:
        source: dict[str, str] = {"data_ref": await stage(sim, data)}
    else:
        source = {"data": base64.b64encode(data).decode()}
    body = {"to": to, "kind": kind, **source, "mimetype": mimetype, **extra}
    sent = await _call(sim, "POST", f"/contacts/{contact}/send_media", body)
    return str(sent["id"])


async def tamper(sim: SimulatorClient, contact: str, message_id: str) -> None:
    await _call(sim, "POST", f"/contacts/{contact}/media/{message_id}/tamper")


async def expire(sim: SimulatorClient, contact: str, message_id: str, *, everywhere: bool = False) -> None:
    """The media host forgets the blob (answers 410); the contact's phone keeps its copy unless
    `everywhere` (then a re-upload request is answered with error 2, not found)."""
    await _call(sim, "POST", f"/contacts/{contact}/media/{message_id}/expire", {"everywhere": everywhere})


async def reuploads(sim: SimulatorClient) -> int:
    """How many files senders' phones uploaded again on a session's request."""
    return int((await _call(sim, "GET", "/media"))["reuploads"])


async def send_media_to_group(sim: SimulatorClient, contact: str, group: str, kind: str, data: bytes, mimetype: str,
                              **extra: Any) -> str:
    """Member contact `contact` sends `data` as a `kind` message to `group` (sender key, skmsg); its id."""
    if len(data) > STAGE_OVER:
        source: dict[str, str] = {"data_ref": await stage(sim, data)}
    else:
        source = {"data": base64.b64encode(data).decode()}
    body = {"phone": contact, "kind": kind, **source, "mimetype": mimetype, **extra}
    sent = await _call(sim, "POST", f"/groups/{group}/send", body)
    return str(sent["id"])
