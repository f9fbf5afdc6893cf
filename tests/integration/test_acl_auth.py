"""ACLs and authentication: world, auth, digest, ip and super; NoAuth per
operation, InvalidACL, AuthFailed, getACL redaction, aversion, whoAmI."""

import base64
import hashlib

import pytest
from kazoo.exceptions import (
    AuthFailedError,
    BadVersionError,
    InvalidACLError,
    NoAuthError,
)
from kazoo.security import (
    ACL,
    CREATOR_ALL_ACL,
    OPEN_ACL_UNSAFE,
    READ_ACL_UNSAFE,
    Id,
    Permissions,
    make_acl,
    make_digest_acl,
    make_digest_acl_credential,
)

from zkpy.protocol.errors import Err
from zkpy.protocol.opcodes import Op
from zkpy.protocol.records import ACL as RawACL
from zkpy.protocol.records import AuthPacket, CreateRequest, PathWatchRequest, SetACLRequest

from zkpy.rawclient import RawClient

P = Permissions


def digest(user, password):
    h = hashlib.sha1(f"{user}:{password}".encode()).digest()
    return f"{user}:{base64.b64encode(h).decode()}"


def acl_tuples(acls):
    return sorted((a.perms, a.id.scheme, a.id.id) for a in acls)


@pytest.fixture
def alice(shared_server, make_client):
    return make_client(shared_server.hosts, auth_data=[("digest", "alice:secret")])


@pytest.fixture
def bob(shared_server, make_client):
    return make_client(shared_server.hosts, auth_data=[("digest", "bob:other")])


def test_digest_matches_the_reference_hash():
    assert make_digest_acl_credential("alice", "secret") == digest("alice", "secret")


def test_world_anyone_is_open(zk, zk2, base):
    zk.create(base + "/w", b"v", acl=OPEN_ACL_UNSAFE)
    assert zk2.get(base + "/w")[0] == b"v"
    zk2.set(base + "/w", b"w")
    zk2.delete(base + "/w")


def test_digest_acl(alice, bob, zk, base):
    p = base + "/d"
    alice.create(p, b"mine", acl=[make_digest_acl("alice", "secret", all=True)])
    assert alice.get(p)[0] == b"mine"
    for client in (bob, zk):
        with pytest.raises(NoAuthError):
            client.get(p)
        with pytest.raises(NoAuthError):
            client.set(p, b"x")
        with pytest.raises(NoAuthError):
            client.get_children(p)
        with pytest.raises(NoAuthError):
            client.create(p + "/child")
        with pytest.raises(NoAuthError):
            client.get_acls(p)
        with pytest.raises(NoAuthError):
            client.set_acls(p, OPEN_ACL_UNSAFE)
    # A second session authenticating with the same credentials gets in.
    zk.add_auth("digest", "alice:secret")
    assert zk.get(p)[0] == b"mine"


def test_wrong_password_gets_no_access(make_client, shared_server, alice, base):
    p = base + "/d"
    alice.create(p, acl=[make_digest_acl("alice", "secret", all=True)])
    mallory = make_client(shared_server.hosts, auth_data=[("digest", "alice:guess")])
    with pytest.raises(NoAuthError):
        mallory.get(p)


def test_auth_scheme_expands_to_the_connections_ids(alice, zk, base):
    p = base + "/c"
    alice.add_auth("digest", "alice2:pw")
    alice.create(p, acl=CREATOR_ALL_ACL)
    acls, _ = alice.get_acls(p)
    assert acl_tuples(acls) == sorted([(31, "digest", digest("alice", "secret")),
                                       (31, "digest", digest("alice2", "pw"))])
    with pytest.raises(NoAuthError):
        zk.get(p)


def test_auth_scheme_without_authentication_is_invalid_acl(zk, base):
    with pytest.raises(InvalidACLError):
        zk.create(base + "/c", acl=CREATOR_ALL_ACL)
    zk.add_auth("ip", "")  # ip ids do not count as authenticated
    with pytest.raises(InvalidACLError):
        zk.create(base + "/c", acl=CREATOR_ALL_ACL)
    assert zk.exists(base + "/c") is None


def test_ip_acl(zk, base):
    zk.create(base + "/ip", b"v", acl=[make_acl("ip", "127.0.0.1", all=True)])
    assert zk.get(base + "/ip")[0] == b"v"
    zk.create(base + "/net", b"v", acl=[make_acl("ip", "127.0.0.0/8", all=True)])
    assert zk.get(base + "/net")[0] == b"v"
    zk.create(base + "/other", b"v", acl=[make_acl("ip", "10.0.0.0/8", all=True)])
    with pytest.raises(NoAuthError):
        zk.get(base + "/other")


@pytest.mark.zkpy_only  # IPv6 ip ACLs are 3.10; ZooKeeper 3.8 and 3.9 answer InvalidACL
def test_ipv6_acl(zk, base):
    zk.create(base + "/v6", b"v", acl=[make_acl("ip", "::1/128", all=True)])
    with pytest.raises(NoAuthError):
        zk.get(base + "/v6")  # IPv4 never matches IPv6


@pytest.mark.zkpy_only  # exists checks READ from ZooKeeper 3.8.4 / 3.9.2 on; 3.8.0 does not
def test_exists_needs_read_on_an_existing_node(alice, zk, base):
    p = base + "/d"
    alice.create(p, b"mine", acl=[make_digest_acl("alice", "secret", all=True)])
    with pytest.raises(NoAuthError):
        zk.exists(p)
    assert alice.exists(p) is not None
    assert zk.exists(p + "/missing") is None  # NoNode, not NoAuth


@pytest.mark.parametrize("acl", [
    [ACL(31, Id("world", "someone"))],
    [ACL(31, Id("digest", "nocolon"))],
    [ACL(31, Id("digest", "a:b:c"))],
    [ACL(31, Id("ip", "999.1.1.1"))],
    [ACL(31, Id("ip", "127.0.0.1/33"))],
    [ACL(31, Id("ip", "not an ip"))],
    [ACL(31, Id("foo", "bar"))],
    [ACL(31, Id("super", ""))],
    [ACL(31, Id("world", "anyone")), ACL(31, Id("foo", "bar"))],
])
def test_invalid_acls(zk, base, acl):
    with pytest.raises(InvalidACLError):
        zk.create(base + "/bad", acl=acl)
    with pytest.raises(InvalidACLError):
        zk.set_acls(base, acl)
    assert zk.exists(base + "/bad") is None


def test_null_and_empty_acls_are_invalid(hosts, base):
    with RawClient.open(hosts) as c:
        assert c.request(
            Op.CREATE, CreateRequest(base + "/n", b"", None, 0))[0].err == Err.INVALID_ACL
        assert c.request(
            Op.CREATE, CreateRequest(base + "/n", b"", [], 0))[0].err == Err.INVALID_ACL
        assert c.request(Op.SET_ACL, SetACLRequest(base, [], -1))[0].err == Err.INVALID_ACL
        assert c.request(Op.SET_ACL, SetACLRequest(base, None, -1))[0].err == Err.INVALID_ACL
        assert c.request(Op.EXISTS, PathWatchRequest(base + "/n", False))[0].err == Err.NO_NODE


def test_invalid_acl_comes_before_no_node(hosts, base):
    with RawClient.open(hosts) as c:
        req = CreateRequest(base + "/missing/child", b"", [], 0)
        assert c.request(Op.CREATE, req)[0].err == Err.INVALID_ACL


def test_duplicate_entries_are_removed_and_zero_perms_kept(zk, base):
    acl = [ACL(31, Id("world", "anyone")), ACL(31, Id("world", "anyone")), ACL(0, Id("ip", "10.1.1.1"))]
    zk.create(base + "/dup", acl=acl)
    acls, _ = zk.get_acls(base + "/dup")
    assert acl_tuples(acls) == [(0, "ip", "10.1.1.1"), (31, "world", "anyone")]


@pytest.mark.parametrize("perms, allowed", [
    (P.READ, {"get", "children", "getacl"}),
    (P.WRITE, {"set"}),
    (P.CREATE, {"create"}),
    (P.DELETE, {"delete"}),
    (P.ADMIN, {"setacl", "getacl"}),
    (0, set()),
])
def test_permission_needed_by_each_operation(zk, base, perms, allowed):
    p = base + "/n"
    zk.create(p, b"", acl=[ACL(P.ALL, Id("world", "anyone"))])
    zk.create(p + "/victim")
    zk.set_acls(p, [ACL(perms, Id("world", "anyone"))])
    ops = {
        "get": lambda: zk.get(p),
        "children": lambda: zk.get_children(p),
        "set": lambda: zk.set(p, b"x"),
        "create": lambda: zk.create(p + "/new"),
        "delete": lambda: zk.delete(p + "/victim"),
        "getacl": lambda: zk.get_acls(p),
        "setacl": lambda: zk.set_acls(p, [ACL(perms, Id("world", "anyone"))]),
    }
    for name, op in ops.items():
        if name in allowed:
            op()
        else:
            with pytest.raises(NoAuthError):
                op()


def test_get_acl_needs_read_or_admin(zk, base):
    zk.create(base + "/r", acl=READ_ACL_UNSAFE)
    acls, _ = zk.get_acls(base + "/r")
    assert acl_tuples(acls) == [(1, "world", "anyone")]


def test_get_acl_redacts_digests_without_admin(alice, zk, base):
    p = base + "/redact"
    acl = [ACL(P.READ, Id("world", "anyone")), make_digest_acl("alice", "secret", all=True)]
    alice.create(p, acl=acl)
    full = acl_tuples(alice.get_acls(p)[0])
    assert full == sorted([(1, "world", "anyone"), (31, "digest", digest("alice", "secret"))])
    redacted = acl_tuples(zk.get_acls(p)[0])
    assert redacted == sorted([(1, "world", "anyone"), (31, "digest", "alice:x")])


def test_set_acl_bumps_aversion_only(zk, base):
    p = base + "/av"
    _, s0 = zk.create(p, b"d", include_data=True)
    s1 = zk.set_acls(p, READ_ACL_UNSAFE + [ACL(P.ADMIN, Id("world", "anyone"))])
    assert s1.aversion == 1
    assert (s1.version, s1.mzxid, s1.mtime, s1.cversion) == (s0.version, s0.mzxid, s0.mtime, s0.cversion)
    with pytest.raises(BadVersionError):
        zk.set_acls(p, OPEN_ACL_UNSAFE, version=0)
    s2 = zk.set_acls(p, OPEN_ACL_UNSAFE, version=1)
    assert s2.aversion == 2
    assert zk.exists(p).aversion == 2


def test_set_acl_on_missing_node(zk, base):
    from kazoo.exceptions import NoNodeError
    with pytest.raises(NoNodeError):
        zk.set_acls(base + "/missing", OPEN_ACL_UNSAFE)


def test_zookeeper_config_is_read_only(zk):
    with pytest.raises(NoAuthError):
        zk.set("/zookeeper/config", b"x")
    with pytest.raises(NoAuthError):
        zk.create("/zookeeper/config/x")


# --- auth packets ----------------------------------------------------------------------------

def test_auth_reply_echoes_xid_with_zxid_zero(hosts):
    with RawClient.open(hosts) as c:
        hdr, body = c.request(Op.AUTH, AuthPacket(0, "digest", b"u:p"), xid=-4, raw=True)
        assert (hdr.xid, hdr.zxid, hdr.err) == (-4, 0, 0)
        assert body == b""
        hdr, _ = c.request(Op.AUTH, AuthPacket(0, "digest", b"u2:p"), xid=77)
        assert (hdr.xid, hdr.zxid, hdr.err) == (77, 0, 0)
        hdr, _ = c.request(Op.AUTH, AuthPacket(0, "ip", b""), xid=-4)
        assert (hdr.xid, hdr.zxid, hdr.err) == (-4, 0, 0)


@pytest.mark.parametrize("scheme", ["foo", "super", "world", "auth", "sasl"])
def test_unknown_auth_scheme_fails_and_closes(hosts, base, scheme, zk):
    with RawClient.open(hosts) as c:
        hdr, body = c.request(Op.AUTH, AuthPacket(0, scheme, b"x"), xid=-4, raw=True)
        assert (hdr.xid, hdr.zxid, hdr.err) == (-4, 0, Err.AUTH_FAILED)
        assert body == b""
        assert c.is_closed_by_server()
    assert zk.exists(base) is not None  # everyone else is fine


def test_kazoo_sees_auth_failed(make_client, hosts):
    c = make_client(hosts)
    with pytest.raises(AuthFailedError):
        c.add_auth("nonexistent", "x")


def test_who_am_i(hosts):
    with RawClient.open(hosts) as c:
        hdr, infos = c.request(Op.WHO_AM_I)
        assert hdr.err == 0
        assert sorted(infos) == [("ip", "127.0.0.1")]
        c.request(Op.AUTH, AuthPacket(0, "digest", b"carol:pw"), xid=-4)
        c.request(Op.AUTH, AuthPacket(0, "digest", b"dave:pw"), xid=-4)
        c.request(Op.AUTH, AuthPacket(0, "digest", b"carol:pw"), xid=-4)  # again: no duplicate
        hdr, infos = c.request(Op.WHO_AM_I)
        assert sorted(infos) == [("digest", "carol"), ("digest", "dave"), ("ip", "127.0.0.1")]


# --- super -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def super_server():
    from tests.conftest import run_server
    with run_server({"DigestAuthenticationProvider.superDigest": digest("super", "hunter2")}) as srv:
        yield srv


def test_super_digest_bypasses_acls(super_server, make_client):
    alice = make_client(super_server.hosts, auth_data=[("digest", "alice:secret")])
    root = make_client(super_server.hosts, auth_data=[("digest", "super:hunter2")])
    nobody = make_client(super_server.hosts)
    alice.create("/private", b"p", acl=[make_digest_acl("alice", "secret", read=True, admin=True)])
    with pytest.raises(NoAuthError):
        nobody.get("/private")
    with pytest.raises(NoAuthError):
        alice.set("/private", b"x")
    assert root.get("/private")[0] == b"p"
    root.set("/private", b"by super")
    root.create("/private/kid")
    assert acl_tuples(root.get_acls("/private")[0]) == [(17, "digest", digest("alice", "secret"))]
    root.set_acls("/private", READ_ACL_UNSAFE)
    assert nobody.get("/private")[0] == b"by super"
    with pytest.raises(NoAuthError):
        nobody.set("/private", b"")
    # A wrong super password is just another digest id.
    fake = make_client(super_server.hosts, auth_data=[("digest", "super:wrong")])
    with pytest.raises(NoAuthError):
        fake.set("/private", b"")


def test_super_has_no_acl_entry_of_its_own(super_server, make_client):
    root = make_client(super_server.hosts, auth_data=[("digest", "super:hunter2")])
    root.create("/bysuper", acl=CREATOR_ALL_ACL)
    assert acl_tuples(root.get_acls("/bysuper")[0]) == [(31, "digest", digest("super", "hunter2"))]


def test_super_who_am_i(super_server):
    with RawClient.open(super_server.hosts) as c:
        c.request(Op.AUTH, AuthPacket(0, "digest", b"super:hunter2"), xid=-4)
        hdr, infos = c.request(Op.WHO_AM_I)
        assert ("digest", "super") in infos
        assert ("ip", "127.0.0.1") in infos


def test_super_can_write_zookeeper_config(super_server):
    with RawClient.open(super_server.hosts) as c:
        c.request(Op.AUTH, AuthPacket(0, "digest", b"super:hunter2"), xid=-4)
        assert c.request(Op.CREATE, CreateRequest("/zookeeper/config/sub", b"",
                                                  [RawACL(31, "world", "anyone")], 0))[0].err == 0
        assert c.request(Op.EXISTS, PathWatchRequest("/zookeeper/config/sub", False))[0].err == 0


@pytest.mark.parametrize("user, password", [("ünï", "pässwörd"), ("user", "pa:ss:word"), ("日本", "")])
def test_digest_of_unusual_credentials_matches_the_client_side_hash(make_client, hosts, base,
                                                                    user, password):
    owner = make_client(hosts, auth_data=[("digest", f"{user}:{password}")])
    owner.create(base + "/u", b"ok", acl=[make_digest_acl(user, password, all=True)])
    assert owner.get(base + "/u")[0] == b"ok"
    acls, _ = owner.get_acls(base + "/u")
    assert acl_tuples(acls) == [(31, "digest", digest(user, password))]


def test_digest_auth_without_a_colon_never_fails(hosts):
    with RawClient.open(hosts) as c:
        hdr, _ = c.request(Op.AUTH, AuthPacket(0, "digest", b"nocolon"), xid=-4)
        assert hdr.err == 0
        hdr, infos = c.request(Op.WHO_AM_I)
        assert ("digest", "nocolon") in infos
