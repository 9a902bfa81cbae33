"""API exposure: a bind address others can reach needs API keys (the API reads QR codes and sends).

The bridge itself refuses to start on a non-loopback BRIDGE_HOST without BRIDGE_API_KEYS
(`bridge.app.check_bind`); the doctor says so before a deploy fails. Short keys are a warning:
anyone who can reach the port can guess them.
"""

from __future__ import annotations

from bridge.app import check_bind, is_loopback
from bridge.config import Settings
from bridge.doctor.result import CheckResult, error, ok, warning
from bridge.errors import ConfigError

NAME = "api"
MIN_KEY_CHARS = 16


def check(settings: Settings, timeout: float) -> CheckResult:
    """See the module docstring."""
    del timeout
    where = f"{settings.host}:{settings.port}"
    try:
        check_bind(settings)
    except ConfigError as exc:
        return error(NAME, str(exc), "set BRIDGE_API_KEYS (comma-separated, long random strings) or bind "
                     "BRIDGE_HOST=127.0.0.1 behind a reverse proxy", host=settings.host)
    short = sum(1 for key in settings.api_keys if len(key) < MIN_KEY_CHARS)
    details = {"host": settings.host, "port": settings.port, "keys": len(settings.api_keys),
               "metrics_public": settings.metrics_public}
    if short:
        return warning(NAME, f"{short} of {len(settings.api_keys)} API key(s) shorter than {MIN_KEY_CHARS} characters",
                       "use long random keys, e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`",
                       **details)
    if is_loopback(settings.host):
        keys = f"{len(settings.api_keys)} API key(s)" if settings.api_keys else "no API key (anyone on this machine)"
        return ok(NAME, f"API on loopback {where}, {keys}", **details)
    return ok(NAME, f"API on {where} with {len(settings.api_keys)} API key(s); put TLS in front of it", **details)
