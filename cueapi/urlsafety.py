"""Outbound URL safety (SERVER.md §4.5.4, DESIGN.md §3.12).

`validate_url` checks a URL when it is saved (cue callbacks, on_failure webhooks, the alert
webhook URL). `resolve_safe_address` is for delivery: it resolves the host once, checks every
address, and returns the one to connect to, so the address checked is the address used.
Loopback and private ranges are refused unless CUEAPI_ALLOW_PRIVATE_URLS is true; link-local
(cloud metadata) is refused always.
"""

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

BLOCKED_NETWORKS = [
    ipaddress.ip_network(n)
    for n in (
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "0.0.0.0/8",
        "100.64.0.0/10",
        "198.18.0.0/15",
        "::1/128",
        "::/128",
        "fc00::/7",
        "fe80::/10",
        "::ffff:0:0/96",
    )
]
ALWAYS_BLOCKED_NETWORKS = [ipaddress.ip_network(n) for n in ("169.254.0.0/16", "fe80::/10")]
BLOCKED_HOSTNAMES = {"localhost", "metadata.google.internal", "metadata.internal"}
ALWAYS_BLOCKED_HOSTNAMES = {"metadata.google.internal", "metadata.internal"}


class UnsafeURL(ValueError):
    """The URL may not be called; the message says why (shown to the user)."""


def _allow_private():
    return settings.CUEAPI_ALLOW_PRIVATE_URLS


def address_is_blocked(address):
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    networks = ALWAYS_BLOCKED_NETWORKS if _allow_private() else BLOCKED_NETWORKS
    return any(ip.version == net.version and ip in net for net in networks)


def hostname_is_blocked(hostname):
    names = ALWAYS_BLOCKED_HOSTNAMES if _allow_private() else BLOCKED_HOSTNAMES
    return hostname.lower().rstrip(".") in names


def resolve(hostname, port):
    infos = socket.getaddrinfo(hostname, port, type=socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


def parse(url):
    """(scheme, hostname, port) of an http(s) URL, or UnsafeURL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeURL("Invalid URL format") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeURL("URL must use http:// or https://")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UnsafeURL("Credentials in callback URLs are not allowed")
    if not parts.hostname:
        raise UnsafeURL("URL must have a hostname")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def validate_url(url):
    """Raise UnsafeURL (with the reference's messages) unless `url` may be saved."""
    _, hostname, port = parse(url)
    if hostname_is_blocked(hostname):
        raise UnsafeURL(f"Blocked hostname: {hostname}")
    try:
        addresses = resolve(hostname, port)
    except (OSError, UnicodeError):
        raise UnsafeURL(f"Cannot resolve hostname: {hostname}") from None
    if not addresses or any(address_is_blocked(a) for a in addresses):
        raise UnsafeURL("Callback URL resolves to blocked address range")


def resolve_safe_address(url):
    """(hostname, port, address) to connect to for `url`, or UnsafeURL.

    Every resolved address must be allowed (an attacker's DNS may answer differently next
    time); the first one is returned and must be the one connected to.
    """
    _, hostname, port = parse(url)
    blocked = UnsafeURL("Callback URL resolved to blocked IP")
    if hostname_is_blocked(hostname):
        raise blocked
    try:
        addresses = resolve(hostname, port)
    except (OSError, UnicodeError):
        raise blocked from None
    if not addresses or any(address_is_blocked(a) for a in addresses):
        raise blocked
    return hostname, port, addresses[0]
