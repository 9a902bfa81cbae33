"""Telegram alerts: when configured, the bot token works and the bot can see the chat.

Alerts are how an operator hears that a session was logged out or a folder restored; a wrong
token or chat id fails silently until the day it matters. The check calls the Bot API's `getMe`
and `getChat` (nothing is sent to the chat) with a short timeout. The token is part of the URL and
never appears in the output. Half a configuration (token without chat id or the reverse) is a
warning: alerts then go to the log only.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from bridge.config import Settings
from bridge.doctor.result import CheckResult, error, ok, skipped, warning

NAME = "telegram"


class _Unreachable(Exception):
    """The API did not answer (network, DNS, timeout)."""


def _call(settings: Settings, method: str, params: dict[str, str], timeout: float) -> tuple[int, dict[str, Any]]:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    url = f"{settings.telegram_api.rstrip('/')}/bot{settings.telegram_token}/{method}{query}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _Unreachable(str(reason).replace(settings.telegram_token, "<token>")) from None
    try:
        data = json.loads(body)
    except ValueError:
        data = {}
    return status, data if isinstance(data, dict) else {}


def check(settings: Settings, timeout: float) -> CheckResult:
    """See the module docstring."""
    token, chat = settings.telegram_token, settings.telegram_chat_id
    if not token and not chat:
        return skipped(NAME, "not configured (alerts go to the log only)")
    if not token or not chat:
        missing = "BRIDGE_TELEGRAM_CHAT_ID" if token else "BRIDGE_TELEGRAM_TOKEN"
        return warning(NAME, f"half configured: {missing} is empty, so alerts go to the log only",
                       f"set {missing}, or unset both")
    api = settings.telegram_api
    try:
        status, me = _call(settings, "getMe", {}, timeout)
        if status in (401, 404) or not me.get("ok"):
            return error(NAME, f"{api} rejected the bot token (HTTP {status}: {me.get('description', 'no reason')})",
                         "copy the token from @BotFather again into BRIDGE_TELEGRAM_TOKEN", api=api)
        status, found = _call(settings, "getChat", {"chat_id": chat}, timeout)
    except _Unreachable as exc:
        return warning(NAME, f"{api} unreachable within {timeout:g} s: {exc}",
                       "allow outgoing HTTPS to the Telegram API (or set BRIDGE_TELEGRAM_API to a reachable proxy); "
                       "alerts are retried, but only while the bridge runs", api=api)
    bot = me.get("result", {}).get("username", "?")
    if not found.get("ok"):
        return error(NAME, f"bot @{bot} cannot see chat {chat} (HTTP {status}: {found.get('description', '')})",
                     "send the bot a message from that chat (or add it to the group), then check "
                     "BRIDGE_TELEGRAM_CHAT_ID", api=api, bot=bot)
    return ok(NAME, f"bot @{bot} reaches chat {chat} via {api}", api=api, bot=bot)
