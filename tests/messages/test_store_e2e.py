"""The message store across a crash: a real `python -m bridge` (real Node, real Baileys) against the
WhatsApp simulator, SIGKILLed and restarted.

Specification: a message received before the kill is still listed by `GET .../messages` after the
restart and can be replied to and reacted to (the contact decrypts the reply quoting it and the
reaction pointing at it); a receipt that arrives after the restart lands on the message stored
before it (`GET .../messages/{msg}` shows `read` and the history sent -> delivered -> read).
A send whose answer came just before the kill has its row, its `sent` status and its `message` and
`message.status` events on disk: the answer waits for them (they are written while Baileys commits
the message's keys, see bridge.messages.desk).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import signal
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from tests.api.conftest import API_KEY, AUTH
from tests.api.service_helpers import bridge_process, free_port, wait_http
from tests.api.sse import collect_until
from tests.simulator.client import SimulatorClient

TIMEOUT = 120.0


_numbers = itertools.count(random.Random(os.getpid() + 14).randrange(10_000, 90_000) * 1000)


def fresh_phone() -> str:
    return f"1778{next(_numbers):08d}"


def bridge_env(root: Path, port: int, simulator: SimulatorClient) -> dict[str, str]:
    return {
        "BRIDGE_AUTH_ROOT": str(root / "auth"),
        "BRIDGE_PORT": str(port),
        "BRIDGE_API_KEYS": API_KEY,
        "BRIDGE_MONITOR_ENABLED": "false",
        "BRIDGE_WA_URL": simulator.ws_url,
        "BRIDGE_WA_TRUST_ROOT": simulator.root_pub,
        "BRIDGE_RECONNECT_INITIAL": "0.2",
        "BRIDGE_RECONNECT_MAX": "1",
        "BRIDGE_LOG_LEVEL": "WARNING",
    }


async def kill_hard(pid: int) -> None:
    children = psutil.Process(pid).children(recursive=True)
    os.kill(pid, signal.SIGKILL)
    _, alive = await asyncio.to_thread(psutil.wait_procs, children, 30)
    for child in alive:
        child.kill()


async def until(probe: Any, what: str) -> Any:
    """Poll `probe()` until it returns something truthy."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            found = await probe()
            if found:
                return found
            await asyncio.sleep(0.3)
    raise AssertionError(what)  # pragma: no cover


async def state_of(http: aiohttp.ClientSession, base: str, sid: str) -> str:
    async with http.get(f"{base}/api/v1/sessions/{sid}") as response:
        return str((await response.json()).get("state")) if response.status == 200 else ""


async def listed(http: aiohttp.ClientSession, base: str, sid: str, **query: str) -> list[dict[str, Any]]:
    async with http.get(f"{base}/api/v1/sessions/{sid}/messages", params=query) as response:
        assert response.status == 200, await response.text()
        return list((await response.json())["messages"])


async def stored(http: aiohttp.ClientSession, base: str, sid: str, msg: str) -> dict[str, Any] | None:
    async with http.get(f"{base}/api/v1/sessions/{sid}/messages/{msg}") as response:
        if response.status == 404:
            return None
        assert response.status == 200, await response.text()
        return dict(await response.json())


async def send(http: aiohttp.ClientSession, base: str, sid: str, **body: Any) -> str:
    async with http.post(f"{base}/api/v1/sessions/{sid}/messages", json=body) as response:
        answer = await response.json()
        assert response.status == 201, answer
        return str(answer["id"])


async def link(http: aiohttp.ClientSession, base: str, simulator: SimulatorClient, sid: str, me: str) -> None:
    made = await http.post(f"{base}/api/v1/sessions", json={"id": sid, "login": "pairing_code", "phone": me})
    assert made.status == 201, await made.text()

    async def code() -> str | None:
        async with http.post(f"{base}/api/v1/sessions/{sid}/pairing-code", json={"phone": me}) as response:
            return str((await response.json())["code"]) if response.status == 200 else None

    await simulator.enter_pairing_code(me, await until(code, "a pairing code"))
    await until(lambda: _is(state_of(http, base, sid), "open"), "the session opened")


async def test_sends_answered_right_before_a_sigkill_keep_their_rows_sent_status_and_events(
    tmp_path: Path, simulator: SimulatorClient
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = bridge_env(tmp_path, port, simulator)
    me, contact, sid = fresh_phone(), fresh_phone(), "answered"
    await simulator.create_account(me)
    await simulator.create_contact(contact)

    async with bridge_process(tmp_path, env, "run") as first, aiohttp.ClientSession(headers=AUTH) as http:
        await wait_http(f"{base}/readyz", AUTH)
        await link(http, base, simulator, sid, me)
        ours = [await send(http, base, sid, to=contact, text=f"answered {i}") for i in range(4)]
        runtimes = psutil.Process(first.pid).children(recursive=True)
        ours.append(await send(http, base, sid, to=contact, text="answered last"))
        os.kill(first.pid, signal.SIGKILL)  # right after the answer: nothing more is written
        for runtime in runtimes:
            with contextlib.suppress(psutil.NoSuchProcess):
                runtime.kill()
        await asyncio.to_thread(psutil.wait_procs, runtimes, 30)
        await first.wait()

    async with bridge_process(tmp_path, env, "run") as second, aiohttp.ClientSession(headers=AUTH) as http:
        await wait_http(f"{base}/readyz", AUTH)
        for msg in ours:
            found = await stored(http, base, sid, msg)
            assert found is not None, f"{msg} was answered 201 but is not stored"
            whole = [h["status"] for h in found["history"] if not h.get("participant")]
            assert "sent" in whole and found["message"]["status"] != "pending", found

        stream = await http.get(f"{base}/api/v1/sessions/{sid}/events", params={"after": "0"})
        sent_seen: set[str] = set()

        def all_sent(message: Any) -> bool:
            if message.event == "message.status" and message.data["data"]["status"] == "sent":
                sent_seen.add(message.data["data"]["id"])
            return sent_seen >= set(ours)

        replayed = await collect_until(stream, all_sent, TIMEOUT)
        stream.close()
        order = [(m.event, m.data["data"]["id"]) for m in replayed if m.event in ("message", "message.status")
                 and m.data["data"]["id"] in ours and m.data["data"].get("status") in (None, "pending", "sent")]
        assert order == [pair for msg in ours for pair in (("message", msg), ("message.status", msg))], order
        second.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(second.wait(), 60) == 0


async def test_a_message_received_before_a_sigkill_is_listed_quoted_and_reacted_to_after_the_restart(
    tmp_path: Path, simulator: SimulatorClient
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = bridge_env(tmp_path, port, simulator)
    me, contact, sid = fresh_phone(), fresh_phone(), "kept"
    await simulator.create_account(me)
    await simulator.create_contact(contact, push_name="Dora")
    chat = f"{contact}@s.whatsapp.net"

    async with bridge_process(tmp_path, env, "run") as first, aiohttp.ClientSession(headers=AUTH) as http:
        await wait_http(f"{base}/readyz", AUTH)
        await link(http, base, simulator, sid, me)
        theirs = await simulator.send_from_contact(contact, me, "keep me across a crash")
        await until(lambda: stored(http, base, sid, theirs.id), "the received message is stored")
        ours = await send(http, base, sid, to=contact, text="read me after the crash")
        await simulator.wait_inbox(contact, lambda m: m.id == ours, TIMEOUT)
        await kill_hard(first.pid)
        await first.wait()

    await simulator.send_receipt(contact, me, [ours], "read")  # while the bridge is down
    async with bridge_process(tmp_path, env, "run") as second, aiohttp.ClientSession(headers=AUTH) as http:
        await wait_http(f"{base}/readyz", AUTH)
        page = await listed(http, base, sid, chat=chat)
        assert [m["id"] for m in page[:2]] == [ours, theirs.id], "newest first, both directions"
        assert page[1]["text"] == "keep me across a crash" and page[1]["from_me"] is False

        async with http.get(f"{base}/api/v1/sessions/{sid}/messages", params={"before": "3EB0NOTSTORED"}) as bad:
            assert bad.status == 404 and (await bad.json())["error"]["code"] == "message_not_found"
        async with http.get(f"{base}/api/v1/sessions/nobody/messages") as bad:
            assert bad.status == 404 and (await bad.json())["error"]["code"] == "session_not_found"
        older = await listed(http, base, sid, chat=chat, before=ours, limit="1")
        assert [m["id"] for m in older] == [theirs.id], "the cursor pages on"

        await until(lambda: _is(state_of(http, base, sid), "open"), "the session opened again")
        reply = await send(http, base, sid, to=contact, text="replying after a crash", quoted=theirs.id)
        got = await simulator.wait_inbox(contact, lambda m: m.id == reply, TIMEOUT)
        assert got.quoted is not None and got.quoted.id == theirs.id
        reaction = await send(http, base, sid, kind="reaction", message_id=theirs.id, emoji="👍")
        got = await simulator.wait_inbox(contact, lambda m: m.id == reaction, TIMEOUT)
        assert got.reaction is not None and (got.reaction.key_id, got.reaction.emoji) == (theirs.id, "👍")

        async def read_landed() -> dict[str, Any] | None:
            found = await stored(http, base, sid, ours)
            return found if found and found["message"]["status"] == "read" else None

        found = await until(read_landed, "the receipt sent during the crash landed on the stored message")
        whole = [h["status"] for h in found["history"] if not h.get("participant") and h["status"] != "pending"]
        assert whole == ["sent", "delivered", "read"]
        second.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(second.wait(), 60) == 0


async def _is(state: Any, wanted: str) -> bool:
    return bool(await state == wanted)
