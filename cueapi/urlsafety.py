"""Outbound URL safety (SERVER.md §4.5.4, DESIGN.md §3.12).

`validate_url` checks a URL when it is saved (cue callbacks, on_failure webhooks, the alert
webhook URL). `resolve_safe_address` is for delivery: it resolves the host once, checks every
address, and returns the one to connect to, so the address checked is the address used.
Only globally routable unicast addresses are allowed unless CUEAPI_ALLOW_PRIVATE_URLS is
true; link-local and cloud-metadata addresses are refused always. An IPv6 address that
carries an IPv4 address (mapped, compatible, NAT64, 6to4, Teredo) is judged by that too.

One exception: this server's own echo sink (`{BASE_URL}/v1/echo/<token>`, what `cueapi
quickstart` uses) is allowed wherever the server runs, since it calls nothing but itself.
"""

import ipaddress
import re
import socket
from urllib.parse import urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _networks(*cidrs):
    return [ipaddress.ip_network(n) for n in cidrs]


# Not globally routable, though `is_global` says so on Python 3.11 (newer Pythons agree on
# most): IETF protocol assignments (incl. 192.0.0.9 and .10), deprecated site-local, local-use
# NAT64, 6to4 (deprecated; could reach any IPv4 address through a relay), documentation.
NOT_GLOBAL_NETWORKS = _networks("192.0.0.0/24", "fec0::/10", "64:ff9b:1::/48", "2002::/16", "3fff::/20")
# Link-local and the cloud metadata services (AWS, AWS over IPv6, Alibaba): refused even when
# private addresses are allowed.
ALWAYS_BLOCKED_NETWORKS = _networks(
    "169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32",
)
# IPv6 prefixes whose last 32 bits are an IPv4 address that the connection ends up at.
IPV4_IN_LOW_BITS_NETWORKS = _networks("::/96", "64:ff9b::/96", "64:ff9b:1::/48")
BLOCKED_HOSTNAMES = {"localhost", "metadata.google.internal", "metadata.internal"}
ALWAYS_BLOCKED_HOSTNAMES = {"metadata.google.internal", "metadata.internal"}


# How to allow a handler on this machine or the local network (shown with each refusal).
PRIVATE_URLS_HINT = ("; to call handlers on localhost or a private network (local development), "
                     "set CUEAPI_ALLOW_PRIVATE_URLS=true")
ECHO_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


class UnsafeURL(ValueError):
    """The URL may not be called; the message says why (shown to the user)."""


def _allow_private():
    return settings.CUEAPI_ALLOW_PRIVATE_URLS


def embedded_ipv4(ip: IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries: IPv4-mapped, IPv4-compatible, NAT64
    (64:ff9b::/96, 64:ff9b:1::/48 with a /96 prefix), 6to4, Teredo (server and client)."""
    if ip.version == 4:
        return []
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if ip.teredo is not None:
        return list(ip.teredo)
    if any(ip in net for net in IPV4_IN_LOW_BITS_NETWORKS):
        return [ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)]
    return []


def _in(ip, networks):
    return any(ip.version == net.version and ip in net for net in networks)


def _is_public(ip):
    return ip.is_global and not ip.is_multicast and not _in(ip, NOT_GLOBAL_NETWORKS)


def address_is_always_blocked(address: str) -> bool:
    """Link-local, cloud metadata or not an address: refused even with private URLs allowed
    (the IPv6 address and every IPv4 address it carries are judged)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return True
    return any(_in(each, ALWAYS_BLOCKED_NETWORKS) for each in [ip, *embedded_ipv4(ip)])


def address_is_blocked(address: str) -> bool:
    """Whether a resolved address may not be connected to (the IPv6 address and every IPv4
    address it carries must each pass)."""
    if address_is_always_blocked(address):
        return True
    if _allow_private():
        return False
    ip = ipaddress.ip_address(address)
    return not all(_is_public(each) for each in [ip, *embedded_ipv4(ip)])


def hostname_is_always_blocked(hostname):
    return hostname.lower().rstrip(".") in ALWAYS_BLOCKED_HOSTNAMES


def hostname_is_blocked(hostname):
    names = ALWAYS_BLOCKED_HOSTNAMES if _allow_private() else BLOCKED_HOSTNAMES
    return hostname.lower().rstrip(".") in names


def resolve(hostname, port):
    infos = socket.getaddrinfo(hostname, port, type=socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


def _default_port(parts):
    return parts.port or (443 if parts.scheme == "https" else 80)


def parse(url):
    """(scheme, hostname, port) of an http(s) URL, or UnsafeURL."""
    try:
        parts = urlsplit(url)
        parts.port  # a bad port raises ValueError here
    except ValueError:
        raise UnsafeURL("Invalid URL format") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeURL("URL must use http:// or https://")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UnsafeURL("Credentials in callback URLs are not allowed")
    if not parts.hostname:
        raise UnsafeURL("URL must have a hostname")
    return parts.scheme, parts.hostname, _default_port(parts)


def is_own_echo_sink(url: str) -> bool:
    """Whether `url` is exactly `{BASE_URL}/v1/echo/<token>`: the same scheme, host and port
    as BASE_URL (on loopback, localhost and 127.0.0.1 and ::1 are one host), that path and
    nothing else (no dot segments, query or credentials that could lead elsewhere)."""
    try:
        parts, own = urlsplit(url), urlsplit(settings.BASE_URL)
        port, own_port = _default_port(parts), _default_port(own)
    except ValueError:
        return False
    prefix = own.path.rstrip("/") + "/v1/echo/"
    if (parts.scheme != own.scheme or port != own_port or parts.query or parts.fragment
            or "@" in parts.netloc or not parts.path.startswith(prefix)
            or not ECHO_TOKEN.fullmatch(parts.path[len(prefix):])):
        return False
    host, own_host = (parts.hostname or "").rstrip("."), (own.hostname or "").rstrip(".")
    return host == own_host or (host in LOOPBACK_NAMES and own_host in LOOPBACK_NAMES)


def validate_url(url):
    """Raise UnsafeURL (with the reference's messages) unless `url` may be saved."""
    _, hostname, port = parse(url)
    if is_own_echo_sink(url):
        return
    # The hint only where allowing private URLs would help (never for metadata or link-local).
    if hostname_is_blocked(hostname):
        hint = "" if hostname_is_always_blocked(hostname) else PRIVATE_URLS_HINT
        raise UnsafeURL(f"Blocked hostname: {hostname}{hint}")
    try:
        addresses = resolve(hostname, port)
    except (OSError, UnicodeError):
        raise UnsafeURL(f"Cannot resolve hostname: {hostname}") from None
    if not addresses or any(address_is_blocked(a) for a in addresses):
        always = not addresses or any(address_is_always_blocked(a) for a in addresses)
        hint = "" if always else PRIVATE_URLS_HINT
        raise UnsafeURL(f"Callback URL resolves to blocked address range{hint}")


def resolve_safe_address(url):
    """(hostname, port, address) to connect to for `url`, or UnsafeURL.

    Every resolved address must be allowed (an attacker's DNS may answer differently next
    time); the first one is returned and must be the one connected to.
    """
    _, hostname, port = parse(url)
    blocked = UnsafeURL("Callback URL resolved to blocked IP")
    own_echo_sink = is_own_echo_sink(url)
    if hostname_is_blocked(hostname) and not own_echo_sink:
        raise blocked
    try:
        addresses = resolve(hostname, port)
    except (OSError, UnicodeError):
        raise blocked from None
    if not addresses or (not own_echo_sink and any(address_is_blocked(a) for a in addresses)):
        raise blocked
    return hostname, port, addresses[0]
