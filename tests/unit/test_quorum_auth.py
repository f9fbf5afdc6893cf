"""Quorum SASL on a peer link (zkpy/zab/quorum_auth.py): the exchange without
I/O under every mix of quorum.auth.* settings, as SaslQuorumAuthLearner and
SaslQuorumAuthServer decide, and two real PeerTransports on loopback."""

import asyncio
import logging

import pytest

from zkpy.security.sasl import QuorumAuthLearner, QuorumAuthServer
from zkpy.server.config import ConfigError, parse_config
from zkpy.testing import free_port
from zkpy.zab.messages import Ping
from zkpy.zab.quorum_auth import (
    _HEAD, LET_THROUGH, MAGIC, NO_AUTH, LinkHandshake, QuorumLinkAuth, Refused, auth_frame,
)
from zkpy.zab.transport import PeerTransport

CREDS = {"zk": "quorumsecret"}


def settings(kind: str, password: str = "quorumsecret"):
    """(server, learner) of a peer: 'off' (no enableSasl), 'enabled' (no
    require), 'learner' (learnerRequireSasl), 'both' (and serverRequireSasl)."""
    if kind == "off":
        return None, None
    return (QuorumAuthServer(CREDS, kind == "both"),
            QuorumAuthLearner("zk", password, kind in ("learner", "both")))


def frames(data: list[bytes]):
    for f in data:
        _, magic, status, sid = _HEAD.unpack_from(f)
        assert magic == MAGIC
        yield status, sid, f[_HEAD.size:]


def run(dialer, listener):
    """Shuttle frames until both ends settle: (outcome, the two handshakes,
    the statuses each sent).  outcome: 'linked', or {end: why} for each end
    that refused (what the first to refuse sends still reaches the other)."""
    d = LinkHandshake(*dialer, my_id=3, dialer=True)
    li = LinkHandshake(*listener, my_id=1, dialer=False)
    sent = {"dialer": [], "listener": []}
    ends = {"dialer": d, "listener": li}
    other = {"dialer": "listener", "listener": "dialer"}
    refused = {}
    d.start()
    pending = [("dialer", d.take())]
    while pending:
        frm, out = pending.pop(0)
        to = other[frm]
        for status, sid, token in frames(out):
            sent[frm].append(status)
            if to in refused:
                break
            try:
                ends[to].receive(status, sid, token)
            except Refused as e:
                refused[to] = str(e)
            reply = ends[to].take()
            if reply:
                pending.append((to, reply))
    if refused:
        return refused, d, li, sent
    assert d.done and li.done
    return "linked", d, li, sent


@pytest.mark.parametrize("dialer,listener,linked", [
    ("off", "off", True),
    ("off", "enabled", True),          # the transition: nobody authenticates yet
    ("enabled", "enabled", True),
    ("enabled", "off", True),
    ("learner", "learner", True),      # both authenticate; neither insists
    ("learner", "both", True),
    ("both", "both", True),
    ("off", "both", False),            # the listener requires it of the dialler
    ("both", "off", False),            # the dialler's packet is not understood
    ("learner", "off", False),
    ("enabled", "both", False),        # enabled but not authenticating
    ("both", "enabled", False),        # the listener (as learner) does not authenticate
    ("both", "learner", True),
])
def test_acceptance_rules(dialer, listener, linked):
    outcome, d, li, _ = run(settings(dialer), settings(listener))
    assert (outcome == "linked") == linked, outcome
    if linked:
        # Who authenticated to whom: a learner that requires SASL.
        assert (li.authenticated_as == "zk") == (dialer in ("learner", "both"))
        assert (d.authenticated_as == "zk") == (listener in ("learner", "both"))
        assert d.peer_id == 1 and li.peer_id == 3


def test_a_wrong_password_is_refused_whoever_checks():
    # The dialler's QuorumLearner password is wrong: the listener answers
    # ERROR, and the dialler gives up, even when the listener would keep it.
    for listener in ("learner", "both", "enabled"):
        outcome, _, _, sent = run(settings("both", password="nope"), settings(listener))
        assert "wrong password" in outcome["listener"]
        assert "authentication failed against the peer" in outcome["dialer"]
        assert sent["listener"][-1] == -1
    # The listener's password is wrong: the dialler refuses it on its turn.
    outcome, _, _, sent = run(settings("both"), settings("both", password="nope"))
    assert "wrong password" in outcome["dialer"]
    assert "authentication failed against the peer" in outcome["listener"]
    assert sent["dialer"][-1] == -1


def test_refusals_say_why():
    outcome, *_ = run(settings("off"), settings("both"))
    assert "learner not trying to authenticate and authentication is required" in \
        outcome["listener"]
    assert "quorum.auth.learnerRequireSasl is false" in outcome["dialer"]
    outcome, *_ = run(settings("learner"), settings("off"))
    assert "quorum.auth.enableSasl is false here" in outcome["listener"]
    assert "dialer" in outcome


def test_unexpected_frames_are_refused():
    li = LinkHandshake(*settings("both"), my_id=1, dialer=False)
    li.start()
    with pytest.raises(Refused):
        li.receive(LET_THROUGH, 3, b"")
    d = LinkHandshake(*settings("both"), my_id=3, dialer=True)
    d.start()
    with pytest.raises(Refused):
        d.receive(NO_AUTH, 1, b"")
    # a server never sends SUCCESS without a check
    d = LinkHandshake(*settings("off"), my_id=3, dialer=True)
    d.start()
    with pytest.raises(Refused):
        d.receive(1, 1, b"")


def test_learner_credentials_on_the_wire_are_not_the_password():
    _, d, li, _ = run(settings("both"), settings("both"))
    d2 = LinkHandshake(*settings("both"), my_id=3, dialer=True)
    d2.start()
    assert b"quorumsecret" not in b"".join(d2.take())


def test_authorize_as_quorum_server_callback_handler():
    server = QuorumAuthServer(CREDS, True, frozenset({"zk1.example", "zk2.example"}))
    assert server.authorize("zk", "zk") == "zk"
    assert server.authorize("zk/zk1.example@R", "zk/zk1.example@R")
    with pytest.raises(ValueError):
        server.authorize("zk/other.example@R", "zk/other.example@R")
    with pytest.raises(ValueError):
        server.authorize("zk", "admin")


def test_from_config(tmp_path):
    jaas = tmp_path / "jaas.conf"
    jaas.write_text('QuorumServer { org.apache.zookeeper.server.auth.DigestLoginModule '
                    'required user_zk="pw"; };\n'
                    'QuorumLearner { org.apache.zookeeper.server.auth.DigestLoginModule '
                    'required username="zk" password="pw"; };\n')
    (tmp_path / "myid").write_text("1\n")
    base = (f"dataDir={tmp_path}\njava.security.auth.login.config={jaas}\n"
            "initLimit=5\nsyncLimit=2\n"
            "server.1=127.0.0.1:2888:3888\nserver.2=zk2.example:2888:3888\n")
    off = QuorumLinkAuth.from_config(parse_config(base))
    assert off.server is None and off.learner is None
    on = QuorumLinkAuth.from_config(parse_config(
        base + "quorum.auth.enableSasl=true\nquorum.auth.learnerRequireSasl=true\n"))
    assert on.learner.require and not on.server.require
    with pytest.raises(ValueError):
        on.server.authorize("zk/zk3.example@R", "zk/zk3.example@R")
    assert on.server.authorize("zk/zk2.example@R", "zk/zk2.example@R")
    with pytest.raises(ConfigError) as info:
        QuorumLinkAuth.from_config(parse_config(
            base + "quorum.auth.enableSasl=true\nquorum.auth.learner.saslLoginContext=Nope\n"))
    assert info.value.key == "quorum.auth.learner.saslLoginContext"


# --- over loopback ------------------------------------------------------------------------------

class Pair:
    def __init__(self, auth1, auth2):
        self.auth = {1: auth1, 2: auth2}
        self.got = {1: [], 2: []}
        self.t = {}

    async def __aenter__(self):
        ports = {1: free_port(), 2: free_port()}
        addresses = {i: ("127.0.0.1", p) for i, p in ports.items()}
        for i in (1, 2):
            self.t[i] = PeerTransport(
                i, addresses, lambda frm, msg, i=i: self.got[i].append((frm, msg)),
                lambda peer: None, retry_s=0.02, auth=self.auth[i])
            await self.t[i].start()
        return self

    async def __aexit__(self, *exc):
        for t in self.t.values():
            await t.stop()

    async def until(self, cond, timeout=10):
        deadline = asyncio.get_running_loop().time() + timeout
        while not cond():
            assert asyncio.get_running_loop().time() < deadline, "timed out"
            await asyncio.sleep(0.005)


def link_auth(my_id, kind, password="quorumsecret"):
    return QuorumLinkAuth(my_id, *settings(kind, password))


async def test_link_after_the_exchange_carries_frames():
    async with Pair(link_auth(1, "both"), link_auth(2, "both")) as p:
        await p.until(lambda: 1 in p.t[2].links and 2 in p.t[1].links)
        p.t[2].send(1, Ping())
        p.t[1].send(2, Ping())
        await p.until(lambda: p.got[1] and p.got[2])
        assert p.got[1] == [(2, Ping())] and p.got[2] == [(1, Ping())]
        # The exchange is off the path: the transport talks to the link itself.
        assert p.t[1].links[2].transport.get_protocol() is p.t[1].links[2]


async def test_a_refused_peer_gets_no_link_and_is_logged_once(caplog):
    caplog.set_level(logging.DEBUG, logger="zkpy.zab")
    async with Pair(link_auth(1, "both"), link_auth(2, "both", password="wrong")) as p:
        await p.until(lambda: sum("refused" in r.getMessage() for r in caplog.records) >= 6)
        assert p.t[1].links == {} and p.t[2].links == {}
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        # once at each end, however often peer 2 dials again
        assert len(warnings) == 2, warnings
        assert any("failed to authenticate using SASL" in w for w in warnings)
        assert any("authentication failed against the peer" in w for w in warnings)


@pytest.mark.parametrize("section,key", [
    ("QuorumServer", "quorum.auth.server.saslLoginContext"),
    ("QuorumLearner", "quorum.auth.learner.saslLoginContext"),
])
def test_a_kerberos_quorum_section_without_a_key_stops_the_server(tmp_path, section, key):
    (tmp_path / "myid").write_text("1\n")
    sections = {
        "QuorumServer": 'org.apache.zookeeper.server.auth.DigestLoginModule required '
                        'user_zk="pw";',
        "QuorumLearner": 'org.apache.zookeeper.server.auth.DigestLoginModule required '
                         'username="zk" password="pw";',
    }
    sections[section] = ('com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true '
                         f'keyTab="{tmp_path}/missing.keytab" principal="zkquorum/localhost@R";')
    jaas = tmp_path / "jaas.conf"
    jaas.write_text("".join(f"{name} {{ {body} }};\n" for name, body in sections.items()))
    config = parse_config(
        f"dataDir={tmp_path}\njava.security.auth.login.config={jaas}\ninitLimit=5\n"
        "syncLimit=2\nserver.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2889:3889\n"
        "quorum.auth.enableSasl=true\n")
    with pytest.raises(ConfigError) as info:
        QuorumLinkAuth.from_config(config)
    assert info.value.key == key
    assert "missing.keytab" in str(info.value)


def test_kerberos_target_principal():
    class Initiator:
        realm = "EXAMPLE.ORG"

    def target(service_principal, host, server_realm=None):
        learner = QuorumAuthLearner("", "", True, initiator=Initiator(),
                                    service_principal=service_principal,
                                    server_realm=server_realm)
        return learner.target(host)

    # SecurityUtils.getServerPrincipal, then the learner's realm
    assert target("zkquorum/_HOST", "ZK1.Example.org") == "zkquorum/zk1.example.org@EXAMPLE.ORG"
    assert target("zkquorum/localhost", "zk1") == "zkquorum/localhost@EXAMPLE.ORG"
    # _HOST with a realm is not replaced, as in ZooKeeper
    assert target("zkquorum/_HOST@OTHER", "zk1") == "zkquorum/_HOST@OTHER"
    # zookeeper.server.realm names the server's realm
    assert target("zkquorum/_HOST", "zk1", "OTHER.ORG") == "zkquorum/zk1@OTHER.ORG"


def test_server_realm_is_a_key_not_a_server_line(tmp_path):
    for key in ("zookeeper.server.realm", "server.realm"):
        assert parse_config(f"dataDir={tmp_path}\n{key}=EXAMPLE.ORG"
                            ).kerberos_server_realm == "EXAMPLE.ORG"


def test_quorum_cnxn_threads_size_is_a_number(tmp_path):
    assert parse_config(f"dataDir={tmp_path}").quorum_cnxn_threads_size == 20
    assert parse_config(f"dataDir={tmp_path}\nquorum.cnxn.threads.size=40"
                        ).quorum_cnxn_threads_size == 40
    with pytest.raises(ConfigError) as info:
        parse_config(f"dataDir={tmp_path}\nquorum.cnxn.threads.size=many")
    assert info.value.key == "quorum.cnxn.threads.size"
