"""JAAS login configuration files, as ZooKeeper users write them.

    Server {
        org.apache.zookeeper.server.auth.DigestLoginModule required
        user_super="adminsecret"
        user_bob="bobsecret";
    };
    QuorumServer {
        com.sun.security.auth.module.Krb5LoginModule required
        useKeyTab=true keyTab="/etc/zk/zk.keytab" storeKey=true
        principal="zookeeper/zk1.example.org@EXAMPLE.ORG";
    };

The grammar is the JDK's (sun.security.provider.ConfigFile): sections
``Name { entries };``; an entry is a login module class, a control flag
(required, requisite, sufficient, optional; any case) and ``key=value``
options, ended by ``;``.  Values are double-quoted strings (with the
StreamTokenizer escapes: \\" \\\\ \\n \\t ...) or bare words.  ``//`` and
``/* */`` comments, as in Java; we also take ``#`` line comments.  A
section named twice is an error, as in Java; an option named twice keeps
the last value.  ``${...}`` property expansion is not done.

The sections ZooKeeper reads: ``Server`` (or sasl.serverconfig) for client
SASL, ``QuorumServer`` and ``QuorumLearner`` (quorum.auth.*.saslLoginContext)
for quorum SASL, ``Client`` on the client side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..server.config import ConfigError

__all__ = [
    "DIGEST_LOGIN_MODULE",
    "KRB5_LOGIN_MODULE",
    "LoginModule",
    "JaasConfig",
    "JaasSyntaxError",
    "KerberosLogin",
    "parse_jaas",
    "load_jaas",
]

DIGEST_LOGIN_MODULE = "org.apache.zookeeper.server.auth.DigestLoginModule"
KRB5_LOGIN_MODULE = "com.sun.security.auth.module.Krb5LoginModule"
_FLAGS = ("required", "requisite", "sufficient", "optional")
JAAS_KEY = "java.security.auth.login.config"


class JaasSyntaxError(ValueError):
    def __init__(self, message: str, line: int):
        super().__init__(f"line {line}: {message}")
        self.line = line


@dataclass(frozen=True)
class LoginModule:
    class_name: str
    flag: str
    options: dict[str, str] = field(default_factory=dict)

    @property
    def is_digest(self) -> bool:
        return self.class_name == DIGEST_LOGIN_MODULE

    @property
    def is_kerberos(self) -> bool:
        return self.class_name == KRB5_LOGIN_MODULE


@dataclass(frozen=True)
class KerberosLogin:
    """The Krb5LoginModule options that matter to a server or quorum peer."""

    principal: str | None
    keytab: str | None
    use_keytab: bool
    store_key: bool
    use_ticket_cache: bool


@dataclass
class JaasConfig:
    sections: dict[str, tuple[LoginModule, ...]]
    source: str = "jaas.conf"

    def section(self, name: str, key: str = JAAS_KEY) -> tuple[LoginModule, ...]:
        """The entries of a section; ConfigError naming ``key`` if absent or empty."""
        entries = self.sections.get(name)
        if not entries:
            raise ConfigError(
                f"no JAAS configuration section named '{name}' in {self.source}", key=key
            )
        return entries

    def has(self, name: str) -> bool:
        return bool(self.sections.get(name))

    @staticmethod
    def digest_credentials(entries, *, digest_modules_only: bool = False) -> dict[str, str]:
        """user_NAME="password" options -> {NAME: password}.

        SaslServerCallbackHandler (client SASL) reads them from every entry of
        the section; SaslQuorumServerCallbackHandler only from DigestLoginModule
        entries (``digest_modules_only``)."""
        out: dict[str, str] = {}
        for entry in entries:
            if digest_modules_only and not entry.is_digest:
                continue
            for k, v in entry.options.items():
                if k.startswith("user_"):
                    out[k[len("user_"):]] = v
        return out

    @staticmethod
    def digest_login(entries, key: str = JAAS_KEY) -> tuple[str, str]:
        """(username, password) of a DigestLoginModule entry: what a quorum
        learner (or a client) authenticates with."""
        for entry in entries:
            if entry.is_digest and "username" in entry.options:
                return entry.options["username"], entry.options.get("password", "")
        raise ConfigError(
            "the JAAS section has no DigestLoginModule with a username option", key=key
        )

    @staticmethod
    def kerberos_login(entries, key: str = JAAS_KEY, *, check_keytab: bool = True) -> KerberosLogin | None:
        """The Krb5LoginModule entry, or None.  A keytab that is named but
        cannot be read is a ConfigError (ZooKeeper's login fails at startup)."""
        for entry in entries:
            if not entry.is_kerberos:
                continue
            o = entry.options

            def flag(name: str) -> bool:
                return o.get(name, "false").lower() == "true"

            keytab = o.get("keyTab")
            use_keytab = flag("useKeyTab")
            if check_keytab and use_keytab:
                if not keytab:
                    raise ConfigError("Krb5LoginModule has useKeyTab=true but no keyTab", key=key)
                try:
                    with open(keytab, "rb"):
                        pass
                except OSError as e:
                    raise ConfigError(
                        f"cannot read keyTab {keytab} ({e.strerror or e})", key=key
                    ) from None
            return KerberosLogin(
                principal=o.get("principal"),
                keytab=keytab,
                use_keytab=use_keytab,
                store_key=flag("storeKey"),
                use_ticket_cache=flag("useTicketCache"),
            )
        return None


def load_jaas(path: str | Path, key: str = JAAS_KEY) -> JaasConfig:
    """Read and parse a JAAS file; ConfigError naming ``key`` on any problem."""
    try:
        text = Path(path).read_bytes().decode("utf-8", "replace")
    except OSError as e:
        raise ConfigError(f"cannot read {path} ({e.strerror or e})", key=key) from None
    try:
        return parse_jaas(text, source=str(path))
    except JaasSyntaxError as e:
        raise ConfigError(f"{path}: {e}", key=key) from None


# --- tokenizer and parser ---------------------------------------------------------------------

_WORD_EXTRA = set("$_-*.:/@")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "a": "\a", "v": "\v"}


def _tokens(text: str):
    """Yield (kind, value, line): kind is 'word', 'string' or a punctuation char."""
    i, n, line = 0, len(text), 1
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif text.startswith("//", i) or c == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise JaasSyntaxError("unterminated /* comment", line)
            line += text.count("\n", i, end)
            i = end + 2
        elif c in "\"'":
            quote, start_line = c, line
            i += 1
            out = []
            while True:
                if i >= n or text[i] == "\n":
                    raise JaasSyntaxError("unterminated quoted string", start_line)
                ch = text[i]
                if ch == quote:
                    i += 1
                    break
                if ch == "\\" and i + 1 < n:
                    nxt = text[i + 1]
                    if nxt in "01234567":
                        j = i + 1
                        while j < n and j < i + 4 and text[j] in "01234567":
                            j += 1
                        out.append(chr(int(text[i + 1:j], 8) & 0xFF))
                        i = j
                        continue
                    out.append(_ESCAPES.get(nxt, nxt))
                    i += 2
                    continue
                out.append(ch)
                i += 1
            yield "string", "".join(out), start_line
        elif c.isalnum() or c in _WORD_EXTRA:
            start = i
            while i < n and (text[i].isalnum() or text[i] in _WORD_EXTRA):
                i += 1
            yield "word", text[start:i], line
        else:
            yield c, c, line
            i += 1


def parse_jaas(text: str, source: str = "jaas.conf") -> JaasConfig:
    toks = list(_tokens(text))
    pos = 0
    last_line = toks[-1][2] if toks else 1

    def peek():
        return toks[pos] if pos < len(toks) else ("eof", "", last_line)

    def take(kind: str, what: str):
        nonlocal pos
        tok = peek()
        if tok[0] != kind:
            raise JaasSyntaxError(f"expected {what}, found {tok[1] or 'end of file'!r}", tok[2])
        pos += 1
        return tok

    sections: dict[str, tuple[LoginModule, ...]] = {}
    while peek()[0] != "eof":
        kind, name, line = peek()
        if kind not in ("word", "string"):
            raise JaasSyntaxError(f"expected a section name, found {name!r}", line)
        pos += 1
        if name in sections:
            raise JaasSyntaxError(f"section {name!r} is defined twice", line)
        take("{", "'{'")
        entries = []
        while peek()[0] != "}":
            kind, class_name, line = peek()
            if kind != "word":
                raise JaasSyntaxError(f"expected a login module class, found {class_name!r}", line)
            pos += 1
            _, flag, fline = take("word", "a control flag")
            if flag.lower() not in _FLAGS:
                raise JaasSyntaxError(f"invalid control flag {flag!r}", fline)
            options: dict[str, str] = {}
            while peek()[0] != ";":
                _, key, kline = take("word", "an option name or ';'")
                take("=", f"'=' after {key!r}")
                vkind, value, vline = peek()
                if vkind not in ("word", "string"):
                    raise JaasSyntaxError(f"expected a value for {key!r}", vline)
                pos += 1
                options[key] = value
            take(";", "';'")
            entries.append(LoginModule(class_name, flag.lower(), options))
        take("}", "'}'")
        take(";", "';' after '}'")
        sections[name] = tuple(entries)
    return JaasConfig(sections, source)
