"""Kerberos principal names as ZooKeeper's KerberosName reads them, and the
SASL authorization id ZooKeeper records for an authenticated client.

A principal is ``service[/host]@REALM``; a name without '@' is taken whole
as the service name (that is how DIGEST-MD5 user names pass through here).
The short name follows the ``auth_to_local`` rules of
``zookeeper.security.auth_to_local`` (default ``DEFAULT``: strip the realm
when it is the default realm, fail otherwise).

:func:`sasl_authorized_id` is SaslServerCallbackHandler.handleAuthorizeCallback:
short name, then ``/host`` unless kerberos.removeHostFromPrincipal, then
``@realm`` unless kerberos.removeRealmFromPrincipal.  When no rule applies
ZooKeeper logs the error and keeps the id the mechanism proposed (the
client's authorization id), and so do we.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "KerberosName",
    "NoMatchingRule",
    "parse_rules",
    "short_name",
    "sasl_authorized_id",
    "default_realm",
]

_NAME = re.compile(r"([^/@]*)(/([^/@]*))?@([^/@]*)")
_RULE = re.compile(
    r"\s*((DEFAULT)|(RULE:\[(\d*):([^\]]*)](\(([^)]*)\))?(s/([^/]*)/([^/]*)/(g)?)?))"
)
_PARAM = re.compile(r"([^$]*)(\$(\d*))?")
_NON_SIMPLE = re.compile(r"[/@]")


class NoMatchingRule(Exception):
    """No auth_to_local rule gives a short name (Java's IOException subclasses)."""


@dataclass(frozen=True)
class KerberosName:
    service: str
    host: str | None = None
    realm: str | None = None

    @classmethod
    def parse(cls, name: str) -> "KerberosName":
        """Raises ValueError for a name with '@' that is not service[/host]@realm."""
        m = _NAME.fullmatch(name)
        if m is None:
            if "@" in name:
                raise ValueError(f"malformed Kerberos name: {name}")
            return cls(name)
        return cls(m.group(1), m.group(3), m.group(4))

    def __str__(self) -> str:
        out = self.service
        if self.host is not None:
            out += "/" + self.host
        if self.realm is not None:
            out += "@" + self.realm
        return out


@dataclass(frozen=True)
class _Rule:
    is_default: bool
    components: int = 0
    format: str = ""
    match: re.Pattern | None = None
    from_pattern: re.Pattern | None = None
    to_pattern: str = ""
    repeat: bool = False

    def apply(self, params: list[str], realm_default: str) -> str | None:
        result = None
        if self.is_default:
            if params[0] == realm_default:
                result = params[1]
        elif len(params) - 1 == self.components:
            base = _replace_parameters(self.format, params)
            if self.match is None or self.match.fullmatch(base):
                if self.from_pattern is None:
                    result = base
                else:
                    count = 0 if self.repeat else 1
                    result = self.from_pattern.sub(self.to_pattern, base, count=count)
        if result is not None and _NON_SIMPLE.search(result):
            raise NoMatchingRule(f"non-simple name {result} after auth_to_local rule")
        return result


def _replace_parameters(fmt: str, params: list[str]) -> str:
    out = []
    start = 0
    while start < len(fmt):
        m = _PARAM.match(fmt, start)
        if m is None or m.end() == start:
            break
        out.append(m.group(1))
        if m.group(3) is not None:
            if not m.group(3):
                raise NoMatchingRule(f"bad format in username mapping in {fmt}")
            num = int(m.group(3))
            if num > len(params) - 1:
                raise NoMatchingRule(f"index {num} from {fmt} is outside 0..{len(params) - 1}")
            out.append(params[num])
        start = m.end()
    return "".join(out)


def _java_replacement(to: str) -> str:
    # Java's replacement syntax: $n is a group, \x a literal x.
    out = []
    i = 0
    while i < len(to):
        c = to[i]
        if c == "\\" and i + 1 < len(to):
            out.append(to[i + 1].replace("\\", "\\\\"))
            i += 2
        elif c == "$" and i + 1 < len(to) and to[i + 1].isdigit():
            j = i + 1
            while j < len(to) and to[j].isdigit():
                j += 1
            out.append(f"\\g<{to[i + 1:j]}>")
            i = j
        else:
            out.append("\\\\" if c == "\\" else c)
            i += 1
    return "".join(out)


def parse_rules(text: str) -> tuple[_Rule, ...]:
    """Parse auth_to_local rules; ValueError names the bad remainder."""
    rules = []
    remaining = text.strip()
    while remaining:
        m = _RULE.match(remaining)
        if m is None:
            raise ValueError(f"invalid auth_to_local rule: {remaining}")
        if m.group(2) is not None:
            rules.append(_Rule(is_default=True))
        else:
            try:
                rules.append(_Rule(
                    is_default=False,
                    components=int(m.group(4)),
                    format=m.group(5),
                    match=re.compile(m.group(7)) if m.group(7) is not None else None,
                    from_pattern=re.compile(m.group(9)) if m.group(9) is not None else None,
                    to_pattern=_java_replacement(m.group(10) or ""),
                    repeat=m.group(11) == "g",
                ))
            except (re.error, ValueError) as e:
                raise ValueError(f"invalid auth_to_local rule: {remaining} ({e})") from None
        remaining = remaining[m.end():]
    return tuple(rules)


def default_realm(krb5_conf: str | None = None) -> str:
    """[libdefaults] default_realm of the krb5.conf that MIT Kerberos reads
    (KRB5_CONFIG, else /etc/krb5.conf); '' when there is none, as in
    ZooKeeper without a Kerberos configuration."""
    paths = [krb5_conf] if krb5_conf else (
        os.environ.get("KRB5_CONFIG", "").split(":") if os.environ.get("KRB5_CONFIG")
        else ["/etc/krb5.conf"]
    )
    for path in paths:
        try:
            text = Path(path).read_text(errors="replace")
        except OSError:
            continue
        section = None
        for line in text.splitlines():
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1].strip()
                continue
            if section == "libdefaults" and "=" in line:
                key, _, value = line.partition("=")
                if key.strip() == "default_realm":
                    return value.strip()
    return ""


def short_name(name: KerberosName, rules, realm_default: str) -> str:
    """KerberosName.getShortName; raises NoMatchingRule."""
    if name.host is None:
        if name.realm is None:
            return name.service
        params = [name.realm, name.service]
    else:
        params = [name.realm, name.service, name.host]
    for rule in rules:
        result = rule.apply(params, realm_default)
        if result is not None:
            return result
    raise NoMatchingRule(f"no rules applied to {name}")


def sasl_authorized_id(
    authentication_id: str,
    proposed_id: str,
    *,
    remove_host: bool = False,
    remove_realm: bool = False,
    rules=None,
    realm_default: str | None = None,
) -> str:
    """The id recorded under the ``sasl`` scheme after a successful exchange.

    ``proposed_id`` is what the mechanism would authorize (the client's
    authzid, or the authentication id when it sent none); ZooKeeper falls
    back to it when the auth_to_local rules give no short name.  A malformed
    name raises ValueError (ZooKeeper lets that escape and drops the
    connection).
    """
    name = KerberosName.parse(authentication_id)
    if rules is None:
        rules = parse_rules("DEFAULT")
    if realm_default is None:
        realm_default = default_realm()
    try:
        out = short_name(name, rules, realm_default)
    except NoMatchingRule:
        return proposed_id
    if not remove_host and name.host is not None:
        out += "/" + name.host
    if not remove_realm and name.realm is not None:
        out += "@" + name.realm
    return out
