"""Fetch a media file from a client's http(s) URL, with a size and a time limit, refusing
addresses inside the bridge's network (SSRF guard).

Why the guard: the bridge runs next to things a tenant must not reach through it (cloud metadata
at 169.254.169.254, admin ports on localhost, the private LAN). Every host is resolved first and
every address it resolves to must be public; the connection is then made to those checked
addresses only (a resolver that filters, so a second DNS answer cannot swap in a private one).
Redirects are followed by hand (at most `MAX_REDIRECTS`) and each target is checked the same way.
`media_fetch_allow_private` lifts the guard for trusted networks and tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from bridge.media.errors import MediaFetchFailed, MediaTooLarge, MediaUrlRefused
from bridge.media.kinds import human
from bridge.media.spool import write_stream

MAX_REDIRECTS = 5
CHUNK = 1 << 16


def refused_address(address: str) -> str | None:
    """Why `address` may not be fetched (loopback, private, link-local...), or None when public."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    for flag, why in (("is_loopback", "loopback"), ("is_private", "private"), ("is_link_local", "link-local"),
                      ("is_multicast", "multicast"), ("is_reserved", "reserved"), ("is_unspecified", "unspecified")):
        if getattr(ip, flag):
            return f"{address} is a {why} address"
    return None


Policy = Callable[[str], str | None]
"""Why an address may not be fetched, or None; `refused_address` in production."""


class GuardedResolver(AbstractResolver):
    """Resolves like the system, then refuses the whole answer if any address is refused."""

    def __init__(self, refuse: Policy) -> None:
        self._loop = asyncio.get_running_loop()
        self._refuse = refuse

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        try:
            infos = await self._loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, family=family)
        except OSError as exc:
            raise MediaFetchFailed(f"cannot resolve {host}: {exc}; check the URL") from None
        results: list[ResolveResult] = []
        for fam, _, proto, _, sockaddr in infos:
            address = str(sockaddr[0])
            why = self._refuse(address)
            if why:
                raise MediaUrlRefused(f"{host} resolves to {why}; media URLs must point at public addresses")
            results.append(ResolveResult(hostname=host, host=address, port=int(sockaddr[1]), family=fam,
                                         proto=proto, flags=socket.AI_NUMERICHOST))
        return results

    async def close(self) -> None:
        return None


def check_url(url: str, refuse: Policy | None) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MediaUrlRefused(f"{url[:200]!r} is not an http(s) URL with a host; give an http:// or https:// URL")
    if refuse is None:
        return
    try:
        why = refuse(str(ipaddress.ip_address(parts.hostname)))
    except ValueError:
        return  # a name: checked after resolution
    if why:
        raise MediaUrlRefused(f"{why}; media URLs must point at public addresses")


@contextlib.asynccontextmanager
async def guarded_get(url: str, *, seconds: float, refuse: Policy | None = refused_address,
                      what: str = "the file") -> AsyncIterator[aiohttp.ClientResponse]:
    """GET `url` following redirects by hand, each target checked; yields the final 200 response
    (its `url` is where it ended). `refuse=None` lifts the guard (`media_fetch_allow_private`)."""
    connector: Any = aiohttp.TCPConnector(resolver=None if refuse is None else GuardedResolver(refuse))
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=seconds)) as http:
            for _ in range(MAX_REDIRECTS + 1):
                check_url(url, refuse)
                async with http.get(url, allow_redirects=False) as response:
                    if response.status in (301, 302, 303, 307, 308) and "Location" in response.headers:
                        url = urljoin(url, response.headers["Location"])
                        continue
                    if response.status != 200:
                        raise MediaFetchFailed(f"{url[:200]} answered HTTP {response.status}; give a URL that serves "
                                               f"{what}")
                    yield response
                    return
            raise MediaFetchFailed(f"more than {MAX_REDIRECTS} redirects; give the final URL of {what}")
    except TimeoutError:
        raise MediaFetchFailed(f"the URL did not deliver {what} within {seconds:g} s") from None
    except aiohttp.ClientError as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, (MediaUrlRefused, MediaFetchFailed)):
            raise cause from None
        raise MediaFetchFailed(f"cannot fetch the URL: {exc}") from None


async def fetch_to_file(url: str, path: Path, *, limit: int, seconds: float, refuse: Policy | None = refused_address
                        ) -> tuple[int, str | None]:
    """Download `url` into `path` (at most `limit` bytes); returns (size, the server's Content-Type).
    `refuse=None` lifts the guard (`media_fetch_allow_private`)."""
    async with guarded_get(url, seconds=seconds, refuse=refuse) as response:
        if response.content_length is not None and response.content_length > limit:
            raise MediaTooLarge(f"the file at the URL is {human(response.content_length)}, over "
                                f"{human(limit)}, WhatsApp's limit; send a smaller file")
        size = await write_stream(_body(response), path, limit, "the file at the URL")
        return size, response.headers.get("Content-Type")


async def fetch_head(url: str, *, limit: int, seconds: float, refuse: Policy | None = refused_address
                     ) -> tuple[bytes, str | None, str]:
    """At most the first `limit` bytes of `url` in memory (a page or a small image, never a file to
    send); returns (bytes, Content-Type, the final URL after redirects)."""
    async with guarded_get(url, seconds=seconds, refuse=refuse, what="a page") as response:
        data = bytearray()
        async for chunk in response.content.iter_chunked(CHUNK):
            data += chunk[: limit - len(data)]
            if len(data) >= limit:
                break
        return bytes(data), response.headers.get("Content-Type"), str(response.url)


async def _body(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    async for chunk in response.content.iter_chunked(CHUNK):
        yield chunk
