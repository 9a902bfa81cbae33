"""Clock sanity: this machine's clock against the HTTP `Date` of the WhatsApp host.

TLS certificate checks, message timestamps, snapshot ids and every "older than" rule of the
bridge read the wall clock; a clock minutes off makes WhatsApp's server reject the login or makes
snapshots look stale. The reference is the server the sessions connect to (BRIDGE_WA_URL, its
scheme mapped to http/https): its HTTP answer carries a `Date` header. The header has a one-second
resolution and the request takes time, so the skew is measured against the middle of the request
and only more than SKEW_WARN seconds counts. When the host cannot be reached, the check is
skipped with the reason (no internet is not a clock problem).
"""

from __future__ import annotations

import email.utils
import time
import urllib.error
import urllib.parse
import urllib.request
from email.message import Message

from bridge.config import Settings
from bridge.doctor.result import CheckResult, error, ok, skipped, warning

NAME = "clock"
SKEW_WARN = 30.0
SKEW_ERROR = 300.0
_SCHEMES = {"wss": "https", "ws": "http", "https": "https", "http": "http"}


def reference_url(wa_url: str) -> str | None:
    """`https://host[:port]/` for the WebSocket URL the sessions use, None if it has no host."""
    parts = urllib.parse.urlsplit(wa_url)
    scheme = _SCHEMES.get(parts.scheme)
    if scheme is None or not parts.netloc:
        return None
    return f"{scheme}://{parts.netloc}/"


def _server_date(url: str, timeout: float) -> tuple[float, float]:
    """(server time from `Date`, local time in the middle of the request). Raises OSError/ValueError."""
    request = urllib.request.Request(url, method="HEAD")
    started = time.time()
    headers: Message
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            headers = response.headers
    except urllib.error.HTTPError as exc:  # any answer carries a Date
        headers = exc.headers
    middle = (started + time.time()) / 2
    value = headers.get("Date")
    if not value:
        raise ValueError(f"{url} answered without a Date header")
    return email.utils.parsedate_to_datetime(value).timestamp(), middle


def check(settings: Settings, timeout: float) -> CheckResult:
    """See the module docstring."""
    url = reference_url(settings.wa_url)
    if url is None:
        return skipped(NAME, f"BRIDGE_WA_URL {settings.wa_url!r} names no host to compare with")
    try:
        server, local = _server_date(url, timeout)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return skipped(NAME, f"cannot read the time of {url} ({reason}); check the clock with `timedatectl`",
                       reference=url)
    skew = local - server
    details = {"reference": url, "skew_seconds": round(skew, 1)}
    direction = "ahead of" if skew > 0 else "behind"
    said = f"this machine's clock is {abs(skew):.0f} s {direction} {url}"
    fix = "enable time synchronisation (systemd-timesyncd, chrony or ntpd) and check `timedatectl`"
    if abs(skew) > SKEW_ERROR:
        return error(NAME, said, fix, **details)
    if abs(skew) > SKEW_WARN:
        return warning(NAME, said, fix, **details)
    return ok(NAME, f"within {max(1.0, abs(skew)):.0f} s of {url}", **details)
