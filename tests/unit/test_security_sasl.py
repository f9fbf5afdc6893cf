"""DIGEST-MD5 against pure-sasl (kazoo's SASL client) and the JDK's SaslClient,
JAAS parsing, Kerberos names, enforce.auth and the opcode 102 replies."""

from __future__ import annotations

import subprocess

import pytest
from puresasl.client import SASLClient

from tests.support import pki
from zkpy.protocol.errors import Err
from zkpy.security.jaas import JaasConfig, JaasSyntaxError, load_jaas, parse_jaas
from zkpy.security.kerberos_name import KerberosName, parse_rules, sasl_authorized_id
from zkpy.security.sasl import (
    QUORUM_ERROR,
    QUORUM_SUCCESS,
    AuthEnforcer,
    QuorumAuthLearner,
    QuorumAuthServer,
    SaslServerFactory,
    sasl_matches,
    sasl_reply_frame,
)
from zkpy.security.sasl_digest import DigestMD5Client, DigestMD5Server, SaslAuthFailed
from zkpy.server.config import ConfigError, parse_config

JAAS = """
/* the usual ZooKeeper JAAS file */
Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_super="adminsecret"
    user_bob="bobsecret"  // trailing comment
    user_eve="pa\\"ss";
};
QuorumServer {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_learner="quorumpw";
};
QuorumLearner {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    username="learner"
    password="quorumpw";
};
"""


def kazoo_exchange(server, username, password, *, service="zookeeper", host="zk-sasl-md5"):
    """Drive the server as kazoo's _authenticate_with_sasl drives ZooKeeper."""
    cli = SASLClient(host=host, service=service, mechanism="DIGEST-MD5",
                     username=username, password=password)
    challenge = None
    while not cli.complete:
        response = cli.process(challenge=challenge)
        if cli.complete and not response:
            break
        token, _ = server.step(response or b"")
        challenge = token
    return cli


def test_digest_md5_with_pure_sasl():
    server = DigestMD5Server({"bob": "bobsecret"})
    kazoo_exchange(server, "bob", "bobsecret")
    assert server.complete and server.authorization_id == "bob"


def test_digest_md5_wrong_password_and_unknown_user():
    with pytest.raises(SaslAuthFailed, match="mismatched response"):
        kazoo_exchange(DigestMD5Server({"bob": "bobsecret"}), "bob", "nope")
    with pytest.raises(SaslAuthFailed, match="password"):
        kazoo_exchange(DigestMD5Server({"bob": "bobsecret"}), "mallory", "x")


def test_digest_md5_wrong_service_is_a_mismatched_uri():
    with pytest.raises(SaslAuthFailed, match="URI"):
        kazoo_exchange(DigestMD5Server({"bob": "b"}), "bob", "b", host="localhost")


def test_first_challenge_is_the_jdk_one():
    server = DigestMD5Server({}, nonce=b"NONCE")
    challenge, complete = server.step(b"")
    assert challenge == b'realm="zk-sasl-md5",nonce="NONCE",charset=utf-8,algorithm=md5-sess'
    assert not complete


def test_tokens_after_completion_fail():
    server = DigestMD5Server({"bob": "b"})
    kazoo_exchange(server, "bob", "b")
    with pytest.raises(SaslAuthFailed):
        server.step(b"")


def test_own_client_with_authzid_and_latin1_password():
    server = DigestMD5Server({"jürgen": "pässwörd"}, authorize=lambda authn, authz: f"{authn}->{authz}")
    client = DigestMD5Client("jürgen", "pässwörd", authzid="other")
    token = client.initial_response()
    while not client.complete:
        challenge, done = server.step(token)
        token = client.step(challenge)
    assert server.authorization_id == "jürgen->other"


def test_super_password_overrides_a_known_super_user():
    server = DigestMD5Server({"super": "jaaspw"}, super_password="syspw")
    kazoo_exchange(server, "super", "syspw")
    with pytest.raises(SaslAuthFailed):
        kazoo_exchange(DigestMD5Server({"super": "jaaspw"}, super_password="syspw"),
                       "super", "jaaspw")


_JAVA_CLIENT = """
import javax.security.sasl.*;
import javax.security.auth.callback.*;
import java.io.*;
import java.util.HexFormat;
public class DigestClient {
    public static void main(String[] a) throws Exception {
        final String user = a[0], pw = a[1];
        CallbackHandler h = cbs -> {
            for (Callback cb : cbs) {
                if (cb instanceof NameCallback) ((NameCallback) cb).setName(user);
                else if (cb instanceof PasswordCallback) ((PasswordCallback) cb).setPassword(pw.toCharArray());
                else if (cb instanceof RealmCallback) ((RealmCallback) cb).setText(((RealmCallback) cb).getDefaultText());
            }
        };
        SaslClient c = Sasl.createSaslClient(new String[]{"DIGEST-MD5"}, user, "zookeeper", "zk-sasl-md5", null, h);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        byte[] tok = c.hasInitialResponse() ? c.evaluateChallenge(new byte[0]) : new byte[0];
        System.out.println(HexFormat.of().formatHex(tok)); System.out.flush();
        while (!c.isComplete()) {
            String line = in.readLine();
            tok = c.evaluateChallenge(HexFormat.of().parseHex(line));
            System.out.println(tok == null ? "" : HexFormat.of().formatHex(tok)); System.out.flush();
        }
        System.out.println("COMPLETE");
    }
}
"""


def test_digest_md5_with_the_jdk_sasl_client(tmp_path):
    java = pki.require_tool("java")
    src = tmp_path / "DigestClient.java"
    src.write_text(_JAVA_CLIENT)
    proc = subprocess.Popen([java, str(src), "bob", "bobsecret"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    server = DigestMD5Server({"bob": "bobsecret"})
    try:
        while True:
            line = proc.stdout.readline().strip()
            if line == "COMPLETE" or not line and server.complete:
                break
            challenge, _ = server.step(bytes.fromhex(line))
            proc.stdin.write(challenge.hex() + "\n")
            proc.stdin.flush()
        assert proc.wait(60) == 0, proc.stderr.read()
    finally:
        proc.kill()
    assert server.complete and server.authorization_id == "bob"


# --- JAAS --------------------------------------------------------------------------------------


def test_jaas_parsing():
    cfg = parse_jaas(JAAS)
    assert set(cfg.sections) == {"Server", "QuorumServer", "QuorumLearner"}
    server = cfg.section("Server")
    assert server[0].flag == "required" and server[0].is_digest
    assert JaasConfig.digest_credentials(server) == {
        "super": "adminsecret", "bob": "bobsecret", "eve": 'pa"ss'}
    assert JaasConfig.digest_login(cfg.section("QuorumLearner")) == ("learner", "quorumpw")


@pytest.mark.parametrize("text", [
    "Server { x.Y required a=\"b\" }; ",  # no ';' after the entry
    "Server { x.Y mandatory; };",  # bad flag
    "Server { x.Y required a=\"b; };",  # unterminated string
    "Server { x.Y required; }; Server { x.Y required; };",  # twice
    "Server { x.Y required a=; };",
    "/* open comment",
])
def test_jaas_syntax_errors(text):
    with pytest.raises(JaasSyntaxError):
        parse_jaas(text)


def test_jaas_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_jaas(tmp_path / "missing.conf")
    assert info.value.key == "java.security.auth.login.config"
    (tmp_path / "j.conf").write_text(JAAS)
    cfg = load_jaas(tmp_path / "j.conf")
    with pytest.raises(ConfigError, match="'Client'"):
        cfg.section("Client")
    krb = parse_jaas('S { com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true '
                     f'keyTab="{tmp_path}/none.keytab" principal="zookeeper/h@R"; }};')
    with pytest.raises(ConfigError, match="keyTab"):
        JaasConfig.kerberos_login(krb.section("S"))


# --- Kerberos names ----------------------------------------------------------------------------


def test_kerberos_names():
    assert KerberosName.parse("zk/host@R") == KerberosName("zk", "host", "R")
    assert KerberosName.parse("bob") == KerberosName("bob")
    with pytest.raises(ValueError):
        KerberosName.parse("a@b@c")
    rules = parse_rules("DEFAULT")
    kw = dict(rules=rules, realm_default="EXAMPLE.COM")
    assert sasl_authorized_id("bob", "bob", **kw) == "bob"
    assert sasl_authorized_id("alice@EXAMPLE.COM", "x", **kw) == "alice@EXAMPLE.COM"
    assert sasl_authorized_id("alice@EXAMPLE.COM", "x", remove_realm=True, **kw) == "alice"
    assert sasl_authorized_id("cli/h1@EXAMPLE.COM", "x", remove_host=True, **kw) == \
        "cli@EXAMPLE.COM"
    assert sasl_authorized_id("cli/h1@EXAMPLE.COM", "x", remove_host=True, remove_realm=True,
                              **kw) == "cli"
    # another realm: DEFAULT gives no short name, ZooKeeper keeps the proposed id
    assert sasl_authorized_id("alice@OTHER", "alice@OTHER", remove_realm=True, **kw) == \
        "alice@OTHER"
    custom = parse_rules("RULE:[1:$1@$0](.*@OTHER)s/@.*// DEFAULT")
    assert sasl_authorized_id("alice@OTHER", "p", rules=custom, realm_default="X",
                              remove_realm=True) == "alice"
    with pytest.raises(ValueError):
        parse_rules("RULE:bogus")


# --- config, factory, replies, enforce.auth -----------------------------------------------------


def cfg(tmp_path, *lines):
    (tmp_path / "jaas.conf").write_text(JAAS)
    return parse_config("\n".join(("dataDir=/tmp/zk", f"java.security.auth.login.config="
                                   f"{tmp_path}/jaas.conf") + lines))


def run_session(session, username, password):
    cli = SASLClient(host="zk-sasl-md5", service="zookeeper", mechanism="DIGEST-MD5",
                     username=username, password=password)
    challenge, replies = None, []
    while not cli.complete:
        response = cli.process(challenge=challenge)
        if cli.complete and not response:
            break
        reply = session.handle(response or b"")
        replies.append(reply)
        if reply.err or reply.failure:
            break
        challenge = reply.token
    return replies


def test_session_success_and_super_users(tmp_path):
    factory = SaslServerFactory.from_config(cfg(tmp_path, "zookeeper.superUser=super"))
    assert factory.mechanism == "DIGEST-MD5"
    replies = run_session(factory.new_session(), "bob", "bobsecret")
    assert replies[-1].complete and replies[-1].auth_ids == [("sasl", "bob")]
    replies = run_session(factory.new_session(), "super", "adminsecret")
    assert replies[-1].auth_ids == [("sasl", "super"), ("super", "")]


def test_session_failures(tmp_path):
    factory = SaslServerFactory.from_config(cfg(tmp_path))
    last = run_session(factory.new_session(), "bob", "wrong")[-1]
    assert (last.err, last.token, last.close) == (Err.AUTH_FAILED, None, True)
    factory = SaslServerFactory.from_config(cfg(tmp_path, "allowSaslFailedClients=true"))
    last = run_session(factory.new_session(), "bob", "wrong")[-1]
    assert (last.err, last.token, last.close, last.auth_ids) == (0, None, False, [])
    factory = SaslServerFactory.from_config(cfg(
        tmp_path, "allowSaslFailedClients=true", "sessionRequireClientSASLAuth=true",
        "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider"))
    last = run_session(factory.new_session(), "bob", "wrong")[-1]
    assert (last.err, last.close) == (Err.SESSION_CLOSED_REQUIRE_SASL_AUTH, True)


def test_no_jaas_means_ok_with_a_null_token(tmp_path):
    config = parse_config("dataDir=/tmp/zk")
    assert SaslServerFactory.from_config(config) is None
    reply = SaslServerFactory.no_sasl_session().handle(b"anything")
    assert (reply.err, reply.token, reply.close) == (0, None, False)
    assert sasl_reply_frame(7, reply) == bytes.fromhex("00000014" "00000007" + "00" * 8 +
                                                       "00000000" "ffffffff")
    (tmp_path / "j.conf").write_text("Client { x.Y required; };")
    warnings = []
    config = parse_config(f"dataDir=/tmp/zk\njava.security.auth.login.config={tmp_path}/j.conf")
    assert SaslServerFactory.from_config(config, warnings) is None and warnings


def test_enforce_auth(tmp_path):
    base = "dataDir=/tmp/zk\n"
    with pytest.raises(ConfigError) as info:
        parse_config(base + "enforce.auth.enabled=true")
    assert info.value.key == "enforce.auth.enabled"
    with pytest.raises(ConfigError) as info:
        parse_config(base + "enforce.auth.enabled=true\nenforce.auth.schemes=sasl")
    assert info.value.key == "enforce.auth.schemes"  # no SASL provider registered
    with pytest.raises(ConfigError) as info:
        parse_config(base + "sessionRequireClientSASLAuth=true")
    assert info.value.key == "sessionRequireClientSASLAuth"
    e = AuthEnforcer.from_config(parse_config(
        base + "enforce.auth.enabled=true\nenforce.auth.schemes=digest, sasl\n"
        "authProvider.sasl=org.apache.zookeeper.server.auth.SASLAuthenticationProvider"))
    assert e.sasl_required and e.ERROR == -124
    assert not e.allows([("ip", "127.0.0.1")])
    assert e.allows([("ip", "127.0.0.1"), ("digest", "u:h")])
    assert AuthEnforcer.from_config(parse_config(base)).allows([])


def test_sasl_matches():
    assert sasl_matches("bob", "bob") and sasl_matches("super", "anyone")
    assert not sasl_matches("bob", "alice")
    assert sasl_matches("bob", "everyone", let_any_user_do_x="everyone")


def test_quorum_digest(tmp_path):
    config = cfg(tmp_path, "quorum.auth.enableSasl=true", "quorum.auth.learnerRequireSasl=true",
                 "quorum.auth.serverRequireSasl=true")
    server, learner = QuorumAuthServer.from_config(config), QuorumAuthLearner.from_config(config)
    assert server.require and learner.require
    exchange, client = server.new_exchange(), learner.new_client()
    token = client.initial_response()
    while True:
        status, challenge = exchange.handle(token)
        if status != 0:
            break
        token = client.step(challenge)
    assert status == QUORUM_SUCCESS and exchange.authenticated
    client.step(challenge)  # the learner checks rspauth
    assert client.complete
    # a learner with the wrong password
    bad = DigestMD5Client("learner", "nope", protocol="zookeeper-quorum",
                          server_name="zk-quorum-sasl-md5")
    exchange = server.new_exchange()
    status, challenge = exchange.handle(bad.initial_response())
    status, _ = exchange.handle(bad.step(challenge))
    assert status == QUORUM_ERROR


def test_quorum_sasl_config_rules(tmp_path):
    with pytest.raises(ConfigError) as info:
        cfg(tmp_path, "quorum.auth.serverRequireSasl=true")
    assert info.value.key == "quorum.auth.serverRequireSasl"
    with pytest.raises(ConfigError) as info:
        cfg(tmp_path, "quorum.auth.enableSasl=true", "quorum.auth.serverRequireSasl=true")
    assert info.value.key == "quorum.auth.serverRequireSasl"
    config = cfg(tmp_path, "quorum.auth.enableSasl=true",
                 "quorum.auth.server.saslLoginContext=Nope")
    with pytest.raises(ConfigError) as info:
        QuorumAuthServer.from_config(config)
    assert info.value.key == "quorum.auth.server.saslLoginContext"
