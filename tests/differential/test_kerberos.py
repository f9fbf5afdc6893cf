"""SASL with Kerberos (GSSAPI) end to end, compared with Apache ZooKeeper.

A real MIT KDC runs on loopback in a throw-away realm (tests/support/kdc.py);
the test makes the server's keytab (zookeeper/localhost) and the clients'
(alice, and zkcli/client.example, a principal with a host part).  Apache
ZooKeeper 3.8 and zkpy get the same zoo.cfg keys and the same JAAS file (a
Server section with Krb5LoginModule, keyTab and principal); Apache reads
the realm from -Djava.security.krb5.conf, zkpy through MIT Kerberos from
KRB5_CONFIG.  The clients are kazoo (its SASL is pure-sasl, GSSAPI through
pykerberos and the credential cache kinit fills) and a GSSAPI exchange of
the `gssapi` package on RawClient; what each saw -- ACLs, the identity in
getACL of an `auth` ACL and in whoAmI -- must be the same on both servers.
"""

from __future__ import annotations

import contextlib
import struct

import pytest
from kazoo.client import KazooClient
from kazoo.protocol.serialization import int_struct, read_string
from kazoo.security import make_acl

from tests.support.kdc import REALM, kdc_in_environment
from zkpy.protocol.errors import Err
from zkpy.protocol.opcodes import Op
from zkpy.protocol.records import SASLRequest
from zkpy.rawclient import RawClient
from zkpy.testing import ZkpyServer
from zkpy.testing.apache import ApacheZooKeeper, require_apache

SASL_PROVIDER = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"
SERVER_PRINCIPAL = f"zookeeper/localhost@{REALM}"


@pytest.fixture(scope="module")
def kdc(tmp_path_factory):
    require_apache()
    directory = tmp_path_factory.mktemp("kdc")
    with kdc_in_environment(directory) as k:
        k.keytabs = {
            "server": k.add_principal("zookeeper/localhost", directory / "zk.keytab"),
            "alice": k.add_principal("alice", directory / "alice.keytab"),
            "zkcli/client.example": k.add_principal("zkcli/client.example",
                                                    directory / "zkcli.keytab"),
        }
        k.jaas = directory / "jaas.conf"
        k.jaas.write_text(f"""
Server {{
    com.sun.security.auth.module.Krb5LoginModule required
    useKeyTab=true
    keyTab="{k.keytabs['server']}"
    storeKey=true
    useTicketCache=false
    principal="{SERVER_PRINCIPAL}";
}};
""")
        yield k


@contextlib.contextmanager
def servers(kdc, **extra):
    """(name, port) of an Apache ZooKeeper and a zkpy given the same keys."""
    cfg = {"java.security.auth.login.config": str(kdc.jaas), "authProvider.1": SASL_PROVIDER,
           **{k: str(v) for k, v in extra.items()}}
    jvm = [f"-Djava.security.auth.login.config={kdc.jaas}",
           f"-Djava.security.krb5.conf={kdc.krb5_conf}"]
    with ApacheZooKeeper(extra_cfg=cfg, jvm_args=jvm) as apache, ZkpyServer(config=cfg) as zkpy:
        yield [("apache", apache.port), ("zkpy", zkpy.port)]


def both(targets, scenario):
    results = [scenario(port) for _, port in targets]
    assert results[0] == results[1], f"apache: {results[0]}\nzkpy:   {results[1]}"
    return results[0]


def outcome(fn) -> str:
    try:
        return repr(fn())
    except Exception as e:  # the kind of failure is what is compared
        return type(e).__name__


class WhoAmI:
    """whoAmI (opcode 107) for kazoo, which has no call of its own for it."""

    type = Op.WHO_AM_I

    def serialize(self):
        return b""

    @classmethod
    def deserialize(cls, data, offset):
        count = int_struct.unpack_from(data, offset)[0]
        offset += int_struct.size
        out = []
        for _ in range(max(count, 0)):
            scheme, offset = read_string(data, offset)
            user, offset = read_string(data, offset)
            out.append((scheme, user))
        return out


def whoami(zk: KazooClient):
    """The ids, sorted: their order is a known difference (ZooKeeper lists
    them in ConcurrentHashMap order; docs/compatibility.md)."""
    result = zk.handler.async_result()
    zk._call(WhoAmI(), result)
    return sorted(result.get(timeout=10))


def kerberos_client(kdc, port, principal) -> KazooClient:
    """kazoo as `principal`, from the credential cache kinit fills.  The
    connect string names localhost: the client asks for zookeeper/localhost."""
    kdc.kinit(principal, kdc.keytabs[principal])
    zk = KazooClient(hosts=f"localhost:{port}", timeout=10,
                     sasl_options={"mechanism": "GSSAPI", "service": "zookeeper"})
    zk.start(timeout=15)
    return zk


def acl_ids(zk, path):
    return [(a.perms, a.id.scheme, a.id.id) for a in zk.get_acls(path)[0]]


def test_kerberos_client_and_sasl_acls(kdc):
    with servers(kdc) as targets:
        def scenario(port):
            out = []
            alice = kerberos_client(kdc, port, "alice")
            anon = KazooClient(hosts=f"127.0.0.1:{port}", timeout=10)
            anon.start(timeout=15)
            try:
                out.append(outcome(lambda: whoami(alice)))
                out.append(outcome(lambda: alice.create(
                    "/alices", b"a", acl=[make_acl("sasl", f"alice@{REALM}", all=True)])))
                out.append(outcome(lambda: alice.get("/alices")[0]))
                out.append(outcome(lambda: anon.get("/alices")[0]))
                out.append(outcome(lambda: anon.set("/alices", b"x")))
                out.append(outcome(lambda: acl_ids(alice, "/alices")))
                # An `auth` ACL takes the connection's ids: its sasl id.
                out.append(outcome(lambda: alice.create(
                    "/auth", b"", acl=[make_acl("auth", "", read=True, write=True)])))
                out.append(outcome(lambda: acl_ids(alice, "/auth")))
                out.append(outcome(lambda: whoami(anon)))
            finally:
                alice.stop()
                anon.stop()
            return out

        transcript = both(targets, scenario)
    assert transcript[0] == repr([("ip", "127.0.0.1"), ("sasl", f"alice@{REALM}")])
    assert transcript[2] == repr(b"a") and transcript[3] == "NoAuthError"
    assert transcript[7] == repr([(3, "sasl", f"alice@{REALM}")])


@pytest.mark.parametrize("keys,expected", [
    ({}, f"zkcli/client.example@{REALM}"),
    ({"kerberos.removeHostFromPrincipal": "true"}, f"zkcli@{REALM}"),
    ({"kerberos.removeRealmFromPrincipal": "true"}, "zkcli/client.example"),
    ({"kerberos.removeHostFromPrincipal": "true",
      "kerberos.removeRealmFromPrincipal": "true"}, "zkcli"),
])
def test_principal_names_in_the_identity(kdc, keys, expected):
    with servers(kdc, **keys) as targets:
        def scenario(port):
            zk = kerberos_client(kdc, port, "zkcli/client.example")
            try:
                ids = whoami(zk)
                zk.create("/mine", b"", acl=[make_acl("auth", "", all=True)])
                acl = acl_ids(zk, "/mine")
                # The ACL names the identity the server settled on: it matches.
                zk.create("/named", b"n", acl=[make_acl("sasl", expected, all=True)])
                data = zk.get("/named")[0]
            finally:
                zk.stop()
            return ids, acl, data

        ids, acl, data = both(targets, scenario)
    assert ids == [("ip", "127.0.0.1"), ("sasl", expected)]
    assert acl == [(31, "sasl", expected)] and data == b"n"


def test_kerberos_super_user(kdc):
    with servers(kdc, **{"kerberos.removeRealmFromPrincipal": "true",
                         "superUser": "alice"}) as targets:
        def scenario(port):
            owner = kerberos_client(kdc, port, "zkcli/client.example")
            try:
                owner.create("/private", b"p", acl=[make_acl("auth", "", all=True)])
            finally:
                owner.stop()
            alice = kerberos_client(kdc, port, "alice")
            try:
                return [outcome(lambda: whoami(alice)),
                        outcome(lambda: alice.get("/private")[0])]
            finally:
                alice.stop()

        transcript = both(targets, scenario)
    assert transcript[1] == repr(b"p")


def gssapi_exchange(kdc, port, principal):
    """The JDK client's GSSAPI exchange on a raw connection: the context
    tokens, an empty token, then the answer to the server's security-layer
    offer.  Returns each reply's (err, whether it had a token) and whoAmI."""
    import gssapi

    kdc.kinit(principal, kdc.keytabs[principal])
    creds = gssapi.Credentials(usage="initiate")
    target = gssapi.Name("zookeeper@localhost", gssapi.NameType.hostbased_service)
    ctx = gssapi.SecurityContext(name=target, creds=creds, usage="initiate",
                                 flags=gssapi.RequirementFlag.mutual_authentication)
    steps = []
    with contextlib.closing(RawClient("127.0.0.1", port, timeout=10)) as c:
        c.connect()
        token = ctx.step(b"")
        while True:
            hdr, reply = c.request(Op.SASL, SASLRequest(token))
            steps.append((hdr.err, reply is not None))
            if hdr.err or (ctx.complete and reply is None):
                break
            if not ctx.complete:
                token = ctx.step(reply) or b""
            elif reply:
                offer = ctx.unwrap(reply).message
                steps.append(("offer", offer[0], struct.unpack(">I", b"\0" + offer[1:4])[0]))
                token = ctx.wrap(bytes([1]) + offer[1:4], False).message
            else:
                token = b""
        hdr, ids = c.request(Op.WHO_AM_I)
        steps.append((hdr.err, sorted(ids)))
    return steps


def test_gssapi_exchange_on_the_wire(kdc):
    with servers(kdc) as targets:
        steps = both(targets, lambda port: gssapi_exchange(kdc, port, "alice"))
    assert ("offer", 1, 65536) in steps
    assert steps[-2] == (0, False)          # the last SASL reply: no token
    assert steps[-1] == (0, [("ip", "127.0.0.1"), ("sasl", f"alice@{REALM}")])


def test_a_bad_gssapi_token_fails_alike(kdc):
    """A token that is not a Kerberos AP-REQ: AuthFailed, and the connection
    closes; another client is served."""
    with servers(kdc) as targets:
        def scenario(port):
            with contextlib.closing(RawClient("127.0.0.1", port, timeout=10)) as c:
                c.connect()
                hdr, token = c.request(Op.SASL, SASLRequest(b"\x60\x03not a token"))
                out = [(hdr.err, token is not None, c.is_closed_by_server(5))]
            alice = kerberos_client(kdc, port, "alice")
            try:
                out.append(outcome(lambda: whoami(alice)[1]))
            finally:
                alice.stop()
            return out

        transcript = both(targets, scenario)
    assert transcript[0][0] == Err.AUTH_FAILED and transcript[0][2]
    assert transcript[1] == repr(("sasl", f"alice@{REALM}"))
