"""Referrer domain from a URL: the host, lower-case, without ``www.``; nothing else kept."""

from __future__ import annotations

from urllib.parse import urlsplit


def referrer_domain(url: str | None) -> str | None:
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme not in ("http", "https", "android-app") or not host:
        return None
    host = host.rstrip(".")
    if host.startswith("www."):
        host = host[4:]
    return host[:253] or None
