"""Which hosts are private: the check of callback URLs at submission and of resolved addresses at delivery."""

from __future__ import annotations

import ipaddress
import re
import socket

_NUMERIC_V4_RE = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}\.?$", re.I)


def numeric_host(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a numeric host names, in every spelling a resolver accepts (decimal, octal, hex, short
    forms such as ``127.1``); None for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    if not _NUMERIC_V4_RE.match(host):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
    except OSError:
        return None


def is_private_host(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
        return True
    ip = numeric_host(host)
    return ip is not None and not ip.is_global
