"""ACLs: the fix-up ZooKeeper applies to a create or setACL, permission checks,
and the digest scheme's hashing."""

import base64
import hashlib
import ipaddress
import re

from ..protocol.errors import Err, KeeperError
from ..protocol.records import ACL

# Schemes whose ids count as "authenticated" for the auth scheme.
AUTHENTICATED_SCHEMES = frozenset({"digest", "sasl", "x509"})


def digest_id(user_password: str, alg: str = "sha1") -> str:
    """'user:password' -> 'user:base64(sha1(user:password))', as
    DigestAuthenticationProvider.generateDigest does."""
    user = user_password.split(":", 1)[0]
    h = hashlib.new(alg.lower().replace("-", ""), user_password.encode("utf-8")).digest()
    return f"{user}:{base64.b64encode(h).decode()}"


def _valid_digest_id(id_: str) -> bool:
    # Java's "user:hash".split(":") drops trailing empty strings; it must give 2 parts.
    parts = id_.split(":")
    while parts and parts[-1] == "":
        parts.pop()
    return len(parts) == 2


_JAVA_INT = re.compile(r"[+-]?[0-9]+")


def _java_int(text: str):
    """Integer.parseInt's reading of text (a sign, ASCII digits), else None."""
    return int(text) if _JAVA_INT.fullmatch(text) else None


def _parse_address(addr: str):
    """An IPv4 address as IPAuthenticationProvider reads it: four dot-separated
    Integer.parseInt numbers in 0..255 (so "010.0.0.1" and "+1.2.3.4" pass);
    IPv6 (an extension: ZooKeeper 3.8 knows only IPv4) as Python reads it."""
    if ":" in addr:
        try:
            return ipaddress.IPv6Address(addr)
        except ValueError:
            return None
    parts = [_java_int(p) for p in addr.split(".")]
    if len(parts) != 4 or any(v is None or not 0 <= v <= 255 for v in parts):
        return None
    return ipaddress.IPv4Address(bytes(parts))


def parse_ip_spec(spec: str):
    """An ip ACL id: an address with an optional /bits.  None if invalid."""
    addr, slash, bits = spec.partition("/")
    ip = _parse_address(addr)
    if ip is None:
        return None
    width = ip.max_prefixlen
    if slash:  # "10.0.0.0/" is invalid: Integer.parseInt("") fails in ZooKeeper
        n = _java_int(bits)
        if n is None or n < 0 or n > width:
            return None
    else:
        n = width
    return ip, n


def ip_matches(spec: str, address: str) -> bool:
    parsed = parse_ip_spec(spec)
    if parsed is None:
        return False
    net_ip, bits = parsed
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if ip.version != net_ip.version:
        return False
    shift = ip.max_prefixlen - bits
    return (int(ip) >> shift) == (int(net_ip) >> shift)


_BUILT_IN = frozenset({"world", "auth", "digest", "ip"})

class FixedAcls:
    """The fixed-up ACL lists of one set of schemes, for lists without the
    auth scheme (whose result depends on nobody's ids): clients send the
    same few lists over and over.  By the list's entries, and the last list
    asked about by identity: the decoder hands the same list object for the
    same bytes (records.read_acls), and nothing changes it afterwards, so
    the usual create finds its fixup without hashing the list again."""
    __slots__ = ("by_entries", "last_given", "last_fixed")

    def __init__(self):
        self.by_entries: dict = {}
        self.last_given = self.last_fixed = None


_FIXED = FixedAcls()
_FIXED_MAX = 4096


def fixup_acl(acls, auth_ids, providers=None) -> tuple:
    """Validate and expand an ACL list for create/setACL (InvalidACL on failure).
    auth_ids: the (scheme, id) pairs the connection holds.  providers: the
    server's registered schemes (zkpy.server.client_security.ClientSecurity:
    ``schemes``, ``valid_id(scheme, id)``, its own ``acl_cache``, a
    FixedAcls); without it, world, digest and ip are the schemes there are."""
    if not acls:
        raise KeeperError(Err.INVALID_ACL)
    cache = _FIXED if providers is None else providers.acl_cache
    if acls is cache.last_given:
        return cache.last_fixed
    by_entries = cache.by_entries
    try:
        key = tuple(acls)
        fixed = by_entries.get(key)
    except TypeError:  # lists inside: not from the decoder
        key = fixed = None
    if fixed is None:
        fixed = _fixup(acls, auth_ids, providers)
        if key is None or len(by_entries) >= _FIXED_MAX or any(a[1] == "auth" for a in acls):
            return fixed
        by_entries[key] = fixed
    cache.last_given, cache.last_fixed = acls, fixed
    return fixed


def _fixup(acls, auth_ids, providers) -> tuple:
    out = []
    add = out.append
    # ZooKeeper drops duplicates from the list as given, before expanding the
    # auth scheme (so an expansion may repeat an entry given explicitly).
    unique = []
    for a in acls:
        a = ACL(*a)
        if a not in unique:
            unique.append(a)

    for a in unique:
        scheme, id_ = a.scheme, a.id
        if scheme == "world" and id_ == "anyone":
            add(ACL(a.perms, scheme, id_))
        elif scheme == "auth":
            granted = False
            for s, i in auth_ids:
                if s in AUTHENTICATED_SCHEMES:
                    add(ACL(a.perms, s, i))
                    granted = True
            if not granted:
                raise KeeperError(Err.INVALID_ACL)
        elif scheme == "digest" and id_ is not None and _valid_digest_id(id_) and \
                (providers is None or "digest" in providers.schemes):
            add(ACL(a.perms, scheme, id_))
        elif scheme == "ip" and id_ is not None and parse_ip_spec(id_) is not None:
            add(ACL(a.perms, scheme, id_))
        elif providers is not None and id_ is not None and scheme not in _BUILT_IN and \
                providers.valid_id(scheme, id_):
            add(ACL(a.perms, scheme, id_))
        else:
            raise KeeperError(Err.INVALID_ACL)
    return tuple(out)


# What world:anyone may do on each (interned) ACL: the common case, decided
# without looking at the connection's ids.
_WORLD_PERMS: dict = {}


def _world_perms(acl) -> int:
    perms = 0
    for a in acl:
        if a.scheme == "world" and a.id == "anyone":
            perms |= a.perms
    if len(_WORLD_PERMS) < _FIXED_MAX:
        _WORLD_PERMS[acl] = perms
    return perms


def check_acl(acl, perm: int, auth_ids, skip_acl: bool = False, sasl_any=None) -> bool:
    """True if a connection holding auth_ids may do perm on a node with acl.
    sasl_any: zookeeper.letAnySaslUserDoX, the sasl ACL id that every
    SASL-authenticated connection matches."""
    if skip_acl or not acl:
        return True
    world = _WORLD_PERMS.get(acl) if type(acl) is tuple else 0
    if world is None:
        world = _world_perms(acl)
    if world & perm:
        return True
    for scheme, _ in auth_ids:
        if scheme == "super":
            return True
    for a in acl:
        if not (a.perms & perm):
            continue
        if a.scheme == "world" and a.id == "anyone":
            return True
        for scheme, id_ in auth_ids:
            if scheme != a.scheme:
                continue
            if scheme == "ip":
                if ip_matches(a.id, id_):
                    return True
            elif id_ == a.id:
                return True
            elif scheme == "sasl" and (id_ == "super" or a.id == sasl_any):
                # SASLAuthenticationProvider.matches
                return True
    return False
