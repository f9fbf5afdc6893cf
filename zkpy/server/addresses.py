"""Client addresses as Java prints them: `ip` auth ids, cons/stat/dump lines."""

import ipaddress


def java_ip(addr: str) -> str:
    """InetAddress.getHostAddress(): IPv4 as is; IPv6 uncompressed, without
    brackets or zone; an IPv4-mapped IPv6 address as its IPv4 address."""
    if ":" not in addr:
        return addr
    try:
        ip = ipaddress.ip_address(addr.split("%")[0])
    except ValueError:
        return addr
    if ip.version == 6:
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return ":".join(format(int(p, 16), "x") for p in ip.exploded.split(":"))
    return str(ip)


def java_peer(peer) -> str:
    """A (host, port) pair as InetSocketAddress.toString() prints it: /ip:port."""
    ip, port = peer
    return f"/{java_ip(ip)}:{port}"
