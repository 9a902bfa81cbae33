"""A message WhatsApp delivers again after a restart is not a second message.

Specification (real bridge, real Baileys, the simulator): the tenant receives and stores a message
but its acknowledgement never reaches the server (the simulator's `deaf` fault), so after a bridge
restart the server delivers the same stanza again. Its Signal keys are already used: the runtime
answers it from the message store instead of failing to decrypt, acknowledges it (the server
forgets it), and the bridge publishes no second `message` event.
"""

from __future__ import annotations

from tests.faults.conftest import MakeBridge
from tests.faults.service import is_kind
from tests.faults.tenants import Login, deliver, link
from tests.simulator.client import SimulatorClient


async def test_a_stored_message_delivered_again_after_a_restart_is_not_published_twice(
    make_bridge: MakeBridge, simulator: SimulatorClient
) -> None:
    bridge = await make_bridge().start()
    tenant = await link(bridge, simulator, "again", Login.QR)
    await deliver(bridge, simulator, tenant, "settled")  # the phone's history sync is acknowledged before
    await simulator.fault("deaf", phone=tenant.phone)  # the server ignores the tenant's receipts from now on
    sent = await simulator.send_from_contact(tenant.contact, tenant.phone, "delivered twice by the server")

    def first_copy(e: dict[str, object]) -> bool:
        return is_kind(e, "message") and isinstance(e["data"], dict) and e["data"].get("id") == sent.id

    await bridge.wait_event(first_copy)
    # received messages are handled one after another: once the next one is out, the first one's
    # Signal keys are committed (a stop before that would leave them unused: also fine, not this case)
    after = await simulator.send_from_contact(tenant.contact, tenant.phone, "after it")
    await bridge.wait_event(lambda e: is_kind(e, "message") and e["data"].get("id") == after.id)
    assert await bridge.stop() == 0
    mark = bridge.mark()
    await bridge.start()
    await bridge.wait_state(tenant.sid, {"open"}, after=mark)
    later = await simulator.send_from_contact(tenant.contact, tenant.phone, "the next one")
    await bridge.wait_event(lambda e: is_kind(e, "message") and e["data"].get("id") == later.id, after=mark)

    assert [e for e in bridge.events if first_copy(e)] == [next(e for e in bridge.events if first_copy(e))], (
        "the copy delivered again was published as a second message")
    stored = await bridge.api("GET", f"/api/v1/sessions/{tenant.sid}/messages/{sent.id}")
    assert stored["message"]["text"] == "delivered twice by the server"
    log = bridge.log()
    assert "failed to decrypt" not in log and "Bad MAC" not in log
    assert "answered from the message store" in log, "the copy was never delivered again"
    assert await bridge.stop() == 0
