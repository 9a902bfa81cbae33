"""Alerts reach the operator once per incident, over real HTTP, and never hold the monitor up."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from bridge.config import Settings
from bridge.events import EventBus
from bridge.monitor.alerts import Alert, Alerter, LogSink, TelegramSink, sinks_from_settings
from tests.monitor.audit import AuditGuard
from tests.monitor.telegram_receiver import TelegramReceiver

TOKEN = "123456:TEST-token"
CHAT = "-100777"


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Clock:
    """A clock the test moves by hand, so window logic is checked without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def telegram_alerter(receiver: TelegramReceiver, *, window: float = 600.0, **kw: object) -> Alerter:
    sink = TelegramSink(TOKEN, CHAT, api_base=receiver.base_url, timeout=10.0)
    return Alerter([sink], window=window, backoff_initial=0.05, backoff_max=0.2, **kw)  # type: ignore[arg-type]


async def test_alert_reaches_telegram_as_bot_api_send_message(telegram: TelegramReceiver) -> None:
    alerter = telegram_alerter(telegram)
    alerter.start()
    sent_before = metric("bridge_alerts_sent_total", sink="telegram", severity="critical")
    try:
        assert alerter.submit(Alert("creds_deleted", "critical", "creds.json vanished; restored", session="acme"))
        [msg] = await telegram.wait_for(1)
    finally:
        await alerter.aclose()
    assert msg.token == TOKEN
    assert msg.chat_id == CHAT
    assert "creds_deleted" in msg.text and "acme" in msg.text and "CRITICAL" in msg.text
    assert metric("bridge_alerts_sent_total", sink="telegram", severity="critical") == sent_before + 1


async def test_repeats_inside_the_window_are_sent_once_per_kind_and_session(telegram: TelegramReceiver) -> None:
    clock = Clock()
    alerter = telegram_alerter(telegram, clock=clock)
    alerter.start()
    try:
        accepted = [alerter.submit(Alert("stuck_reconnecting", "warning", "still reconnecting", session="a"))
                    for _ in range(5)]
        assert accepted == [True, False, False, False, False]
        assert alerter.submit(Alert("stuck_reconnecting", "warning", "still reconnecting", session="b"))
        assert alerter.submit(Alert("qr_waiting", "warning", "QR not scanned", session="a"))
        assert await alerter.drain(30)
        clock.now += 601
        assert alerter.submit(Alert("stuck_reconnecting", "warning", "still reconnecting", session="a"))
        messages = await telegram.wait_for(4)
        assert await alerter.drain(30)
    finally:
        await alerter.aclose()
    assert len(telegram.messages) == 4
    assert alerter.stats.suppressed == 4
    assert "suppressed_repeats: 4" in messages[-1].text


async def test_a_more_severe_alert_of_the_same_kind_is_not_suppressed(telegram: TelegramReceiver) -> None:
    alerter = telegram_alerter(telegram)
    alerter.start()
    try:
        assert alerter.submit(Alert("disk_low", "warning", "disk below 512 MB"))
        assert not alerter.submit(Alert("disk_low", "warning", "disk below 512 MB"))
        assert alerter.submit(Alert("disk_low", "critical", "disk below 50 MB"))
        assert not alerter.submit(Alert("disk_low", "critical", "disk below 40 MB"))
        await telegram.wait_for(2)
        assert await alerter.drain(30)
    finally:
        await alerter.aclose()
    assert [("CRITICAL" in m.text) for m in telegram.messages] == [False, True]


async def test_the_end_of_a_condition_always_goes_through_and_the_next_episode_is_heard(
    telegram: TelegramReceiver,
) -> None:
    alerter = telegram_alerter(telegram)
    alerter.start()
    try:
        assert alerter.submit(Alert("disk_low", "warning", "disk below 512 MB"))
        assert alerter.submit(Alert("disk_low", "info", "space is back", extra={"resolved": True}))
        assert alerter.submit(Alert("disk_low", "warning", "disk below 512 MB again"))
        assert not alerter.submit(Alert("disk_low", "warning", "still below"))
        await telegram.wait_for(3)
        assert await alerter.drain(30)
    finally:
        await alerter.aclose()
    assert ["space is back" in m.text for m in telegram.messages] == [False, True, False]


async def test_failed_sends_are_retried_with_backoff_and_counted(telegram: TelegramReceiver) -> None:
    telegram.fail_next = 2
    failed_before = metric("bridge_alerts_failed_total", sink="telegram")
    alerter = telegram_alerter(telegram)
    alerter.start()
    try:
        alerter.submit(Alert("banned", "critical", "account banned", session="s1"))
        await telegram.wait_for(1)
        assert await alerter.drain(30)
    finally:
        await alerter.aclose()
    assert telegram.requests == 3
    assert len(telegram.messages) == 1
    assert alerter.stats.failed_attempts == 2 and alerter.stats.sent == 1
    assert metric("bridge_alerts_failed_total", sink="telegram") == failed_before + 2


async def test_telegram_flood_control_retry_after_is_honoured(telegram: TelegramReceiver) -> None:
    telegram.fail_next, telegram.fail_status, telegram.retry_after = 1, 429, 1
    alerter = telegram_alerter(telegram)
    alerter.start()
    try:
        alerter.submit(Alert("logged_out", "critical", "logged out", session="s1"))
        await telegram.wait_for(1)
    finally:
        await alerter.aclose()
    assert telegram.requests == 2
    # The backoff cap is 0.2 s; the server's hint makes the retry wait a whole second.
    assert alerter.policy.next_attempt_at(1, created_at=0.0, now=0.0, retry_after=1.0) == 1.0


async def test_unreachable_telegram_is_given_up_after_max_attempts_without_leaking_the_token() -> None:
    sink = TelegramSink(TOKEN, CHAT, api_base="http://127.0.0.1:9", timeout=5.0)
    alerter = Alerter([sink], window=60, max_attempts=3, backoff_initial=0.01, backoff_max=0.05)
    alerter.start()
    try:
        alerter.submit(Alert("folder_removed", "critical", "gone", session="s"))
        assert await alerter.drain(60)
    finally:
        await alerter.aclose()
    assert alerter.stats.failed_attempts == 3 and alerter.stats.given_up == 1 and alerter.stats.sent == 0
    with pytest.raises(Exception) as info:
        await sink.send(Alert("x", "info", "y"))
    await sink.aclose()
    assert TOKEN not in str(info.value)


async def test_submit_never_waits_for_a_hanging_sink(
    telegram: TelegramReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    telegram.hang = asyncio.Event()
    sink = TelegramSink(TOKEN, CHAT, api_base=telegram.base_url, timeout=120.0)
    alerter = Alerter([LogSink(), sink], window=600, queue_size=10)
    alerter.start()
    caplog.set_level(logging.INFO, logger="bridge.alerts")
    try:
        for i in range(30):
            # Submitting is synchronous: it returns although Telegram has answered nothing.
            assert alerter.submit(Alert(f"kind{i}", "warning", f"alert {i}", session="s"))
            for _ in range(200):  # let the log worker catch up, as alerts come one by one in life
                if sum("ALERT kind" in r.getMessage() for r in caplog.records) > i:
                    break
                await asyncio.sleep(0.01)
        assert telegram.messages == []
        assert sum("ALERT kind" in r.getMessage() for r in caplog.records) == 30
        assert alerter.stats.dropped == 30 - 10  # the backlog holds 10, the one in flight included
        telegram.hang.set()
        await telegram.wait_for(10)
        assert await alerter.drain(60)
    finally:
        telegram.hang.set()
        await alerter.aclose()
    assert len(telegram.messages) == 10


async def test_alerter_routes_alert_events_from_the_bus(telegram: TelegramReceiver) -> None:
    bus = EventBus()
    settings = Settings(
        telegram_token=TOKEN, telegram_chat_id=CHAT, telegram_api=telegram.base_url, alert_window=600
    )
    sinks = sinks_from_settings(settings)
    assert [s.name for s in sinks] == ["log", "telegram"]
    alerter = Alerter.from_settings(settings, sinks)
    alerter.start()
    consumer = asyncio.create_task(alerter.consume(bus))
    try:
        await asyncio.sleep(0)
        bus.publish("s1", "state", {"state": "open"})
        bus.alert("s1", "failed", "critical", "runtime crash loop", exits=5)
        bus.alert("s1", "failed", "critical", "runtime crash loop", exits=6)
        [msg] = await telegram.wait_for(1)
        assert await alerter.drain(30)
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
        await alerter.aclose()
    assert "exits: 5" in msg.text and len(telegram.messages) == 1


def test_without_a_token_only_the_log_sink_is_configured() -> None:
    assert [s.name for s in sinks_from_settings(Settings(telegram_token="", telegram_chat_id=""))] == ["log"]


def test_the_audit_hook_refuses_deletion_under_the_guarded_root(tmp_path: Path, audit_guard: AuditGuard) -> None:
    victim = tmp_path / "auth" / "s1" / "creds.json"
    victim.parent.mkdir(parents=True)
    victim.write_text("{}")
    with pytest.raises(PermissionError):
        os.remove(victim)
    with pytest.raises(PermissionError):
        victim.open("w")
    assert victim.exists() and audit_guard.violations
    audit_guard.violations.clear()  # the hook worked; this test's own attempts are not a failure
    # Another process is outside the hook: that is how the suite plays the accident.
    subprocess.run(["rm", "-rf", str(victim.parent)], check=True)
    assert not victim.parent.exists()
