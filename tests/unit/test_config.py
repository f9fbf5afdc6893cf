"""Tests for zkpy.server.config (zoo.cfg parsing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from zkpy.server.config import (
    ConfigError,
    ServerConfig,
    ServerSpec,
    load_config,
    normalize_key,
    parse_config,
    parse_properties,
    parse_server_spec,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def cfg(*lines: str, base_dir=None) -> ServerConfig:
    """Parse a config made of ``lines``, with dataDir supplied unless given."""
    text = "\n".join(lines)
    if not any(line.startswith(("dataDir", "zookeeper.dataDir")) for line in lines):
        text = "dataDir=/var/zk\n" + text
    return parse_config(text, base_dir)


def error(*lines: str, base_dir=None) -> str:
    with pytest.raises(ConfigError) as info:
        cfg(*lines, base_dir=base_dir)
    message = str(info.value)
    assert "\n" not in message
    return message


def quorum(tmp_path: Path, *extra: str, myid: str | None = "1") -> tuple[str, ...]:
    """Lines for a 3-member ensemble whose dataDir is tmp_path."""
    if myid is not None:
        (tmp_path / "myid").write_text(myid)
    return (
        f"dataDir={tmp_path}",
        "initLimit=10",
        "syncLimit=5",
        "server.1=zk1:2888:3888",
        "server.2=zk2:2888:3888",
        "server.3=zk3:2888:3888",
        *extra,
    )


def with_client_part(lines: tuple[str, ...], client: str) -> list[str]:
    """Add ';<client>' to server.1, the member whose myid quorum() writes."""
    return [line + f";{client}" if line.startswith("server.1=") else line for line in lines]


# --------------------------------------------------------------------------
# Java Properties syntax
# --------------------------------------------------------------------------


class TestProperties:
    @pytest.mark.parametrize(
        "line",
        ["k=v", "k v", "k:v", "k = v", "k : v", "k\tv", "  k=v  ", "\tk \t= \tv\t", "k  v", "k\fv"],
    )
    def test_separators_and_trimming(self, line):
        assert parse_properties(line) == {"k": "v"}

    def test_only_first_separator_counts(self):
        assert parse_properties("k==v") == {"k": "=v"}
        assert parse_properties("k = :v") == {"k": ":v"}
        assert parse_properties("server.1=h:2888:3888") == {"server.1": "h:2888:3888"}
        assert parse_properties("k v=w") == {"k": "v=w"}

    def test_key_without_value(self):
        assert parse_properties("k\nj=\nm :") == {"k": "", "j": "", "m": ""}

    def test_comments_and_blank_lines(self):
        text = "# comment\n! bang comment\n   # indented\n\n  \nk=v # not a comment\n"
        assert parse_properties(text) == {"k": "v # not a comment"}

    def test_line_endings(self):
        assert parse_properties("a=1\r\nb=2\rc=3\n") == {"a": "1", "b": "2", "c": "3"}

    def test_vertical_tab_is_not_a_line_break(self):
        # str.splitlines() would split here; Java does not.
        assert parse_properties("a=1\x0bb=2") == {"a": "1\x0bb=2"}

    def test_continuation(self):
        assert parse_properties("k=one,\\\n    two,\\\n\tthree\nz=1") == {
            "k": "one,two,three",
            "z": "1",
        }

    def test_continuation_with_crlf(self):
        assert parse_properties("k=a\\\r\n  b") == {"k": "ab"}

    def test_even_backslashes_do_not_continue(self):
        assert parse_properties("k=a\\\\\nz=1") == {"k": "a\\", "z": "1"}

    def test_continued_line_starting_with_hash_is_data(self):
        assert parse_properties("k=a\\\n#b") == {"k": "a#b"}

    def test_comment_ending_in_backslash_does_not_continue(self):
        assert parse_properties("# note \\\nk=v") == {"k": "v"}

    def test_backslash_at_end_of_file(self):
        assert parse_properties("k=v\\") == {"k": "v"}

    def test_empty_continuation_line_ends_logical_line(self):
        assert parse_properties("k=v\\\n\nz=1") == {"k": "v", "z": "1"}

    def test_escapes(self):
        props = parse_properties(r"k=a\\b\nc\td\re\ff\:g\=h\qi\#j\ k")
        assert props == {"k": "a\\b\nc\td\re\ff:g=hqi#j k"}

    def test_unicode_escapes(self):
        assert parse_properties(r"k=\u0041\u00e9\u20AC") == {"k": "Aé€"}
        # A UTF-16 surrogate pair is one character, as in a Java String.
        assert parse_properties(r"k=\uD83D\uDE00") == {"k": "\U0001F600"}

    @pytest.mark.parametrize("value", [r"\u12", r"\u12zz", r"\u"])
    def test_malformed_unicode_escape(self, value):
        with pytest.raises(ConfigError, match="malformed"):
            parse_properties("k=" + value)

    def test_escaped_separators_in_key(self):
        assert parse_properties(r"a\=b=c") == {"a=b": "c"}
        assert parse_properties(r"a\:b:c") == {"a:b": "c"}
        assert parse_properties(r"a\ b c") == {"a b": "c"}
        assert parse_properties(r"\#k=v") == {"#k": "v"}

    def test_escaped_trailing_space_is_still_trimmed(self):
        # Properties keeps it, ZooKeeper trims keys and values afterwards.
        assert parse_properties(r"k=v\ ") == {"k": "v"}

    def test_later_duplicate_wins(self):
        assert parse_properties("k=1\nk=2\nk 3") == {"k": "3"}


# --------------------------------------------------------------------------
# Defaults
# --------------------------------------------------------------------------


class TestDefaults:
    def test_minimal_config(self):
        c = parse_config("dataDir=/var/zk")
        assert c.data_dir == Path("/var/zk")
        assert c.data_log_dir == Path("/var/zk")
        assert c.tick_time == 3000
        assert c.init_limit is None and c.sync_limit is None
        assert c.client_port is None and c.client_port_address is None
        assert c.max_client_cnxns == 60
        assert c.min_session_timeout == 6000
        assert c.max_session_timeout == 60000
        assert c.autopurge_snap_retain_count == 3
        assert c.autopurge_purge_interval == 0
        assert c.snap_count == 100000
        assert c.pre_alloc_size_kb == 65536
        assert c.four_letter_whitelist == frozenset({"srvr"})
        assert c.admin_enable_server is True
        assert c.admin_server_port == 8080
        assert c.global_outstanding_limit == 1000
        assert c.standalone_enabled is True
        assert c.reconfig_enabled is False
        assert c.election_alg == 3
        assert c.sync_enabled is True
        assert c.peer_type == "participant"
        assert c.force_sync is True
        assert c.fsync_warning_threshold_ms == 1000
        assert c.extended_types_enabled is False
        assert c.skip_acl is False
        assert c.enforce_quota is False
        assert c.super_digest is None
        assert c.digest_enabled is True
        assert c.readonly_mode_enabled is False
        assert c.jute_maxbuffer == 0xFFFFF
        assert c.container_check_interval_ms == 60000
        assert c.container_max_per_minute == 10000
        assert c.container_max_never_used_interval_ms == 0
        assert c.sessionless_cnxn_timeout_ms == 10000
        assert c.max_cnxns == 0
        assert c.servers == {}
        assert c.my_id is None
        assert c.extra == {} and c.unknown_keys == [] and c.warnings == []
        assert c.is_standalone

    def test_session_timeouts_follow_tick_time(self):
        c = cfg("tickTime=2000")
        assert (c.min_session_timeout, c.max_session_timeout) == (4000, 40000)

    def test_explicit_session_timeouts(self):
        c = cfg("tickTime=2000", "minSessionTimeout=1000", "maxSessionTimeout=90000")
        assert (c.min_session_timeout, c.max_session_timeout) == (1000, 90000)

    def test_minus_one_session_timeout_means_default(self):
        c = cfg("tickTime=2000", "minSessionTimeout=-1", "maxSessionTimeout=-1")
        assert (c.min_session_timeout, c.max_session_timeout) == (4000, 40000)

    def test_direct_construction_fills_derived_defaults(self):
        c = ServerConfig(data_dir=Path("d"), tick_time=1000)
        assert c.data_log_dir == Path("d")
        assert (c.min_session_timeout, c.max_session_timeout) == (2000, 20000)

    def test_data_log_dir(self):
        assert cfg("dataLogDir=/fast/log").data_log_dir == Path("/fast/log")

    def test_relative_paths_stay_relative_without_base_dir(self):
        c = parse_config("dataDir=data\ndataLogDir=logs")
        assert c.data_dir == Path("data") and c.data_log_dir == Path("logs")

    def test_relative_paths_resolved_against_base_dir(self, tmp_path):
        c = parse_config("dataDir=data\ndataLogDir=/abs/logs", base_dir=tmp_path)
        assert c.data_dir == tmp_path / "data"
        assert c.data_log_dir == Path("/abs/logs")
        assert parse_config("dataDir=data", tmp_path).data_log_dir == tmp_path / "data"

    def test_typed_values(self):
        c = cfg(
            "clientPort=2181",
            "clientPortAddress=127.0.0.1",
            "maxClientCnxns=0",
            "autopurge.snapRetainCount=5",
            "autopurge.purgeInterval=24",
            "snapCount=5000",
            "preAllocSize=1024",
            "admin.enableServer=false",
            "admin.serverPort=9090",
            "globalOutstandingLimit=50",
            "reconfigEnabled=TRUE",
            "syncEnabled=false",
            "peerType=Observer",
            "fsync.warningthresholdms=50",
            "extendedTypesEnabled=true",
            "enforceQuota=True",
            "DigestAuthenticationProvider.superDigest=super:abc=",
            "digest.enabled=false",
            "jute.maxbuffer=4194304",
            "znode.container.checkIntervalMs=1000",
            "znode.container.maxPerMinute=5",
            "znode.container.maxNeverUsedIntervalMs=300000",
            "nio.sessionlessCnxnTimeout=2000",
            "maxCnxns=100",
            "clientPortListenBacklog=77",
        )
        assert c.client_port == 2181 and c.client_port_address == "127.0.0.1"
        assert c.client_port_listen_backlog == 77
        assert c.max_client_cnxns == 0
        assert c.autopurge_snap_retain_count == 5 and c.autopurge_purge_interval == 24
        assert c.snap_count == 5000 and c.pre_alloc_size_kb == 1024
        assert c.admin_enable_server is False and c.admin_server_port == 9090
        assert c.global_outstanding_limit == 50
        assert c.reconfig_enabled is True and c.sync_enabled is False
        assert c.peer_type == "observer"
        assert c.fsync_warning_threshold_ms == 50
        assert c.extended_types_enabled is True and c.enforce_quota is True
        assert c.super_digest == "super:abc="
        assert c.digest_enabled is False
        assert c.jute_maxbuffer == 4194304
        assert c.container_check_interval_ms == 1000
        assert c.container_max_per_minute == 5
        assert c.container_max_never_used_interval_ms == 300000
        assert c.sessionless_cnxn_timeout_ms == 2000
        assert c.max_cnxns == 100

    def test_listen_backlog_defaults_to_unset(self):
        assert cfg("clientPort=2181").client_port_listen_backlog == -1

    def test_ipv6_client_port_address_brackets_dropped(self):
        assert cfg("clientPort=2181", "clientPortAddress=[::1]").client_port_address == "::1"

    def test_client_port_zero_is_kept(self):
        assert cfg("clientPort=0").client_port == 0

    def test_system_property_integers_accept_java_decode_forms(self):
        c = cfg("jute.maxbuffer=0x200000", "snapCount=#10", "maxCnxns=010")
        assert c.jute_maxbuffer == 0x200000
        assert c.snap_count == 16
        assert c.max_cnxns == 8  # Integer.decode: a leading 0 means octal

    def test_clamped_minimums_with_warnings(self):
        c = cfg("autopurge.snapRetainCount=1", "snapCount=1")
        assert c.autopurge_snap_retain_count == 3
        assert c.snap_count == 2
        assert len(c.warnings) == 2
        assert "autopurge.snapRetainCount" in c.warnings[0]


class TestBooleans:
    @pytest.mark.parametrize(
        "value,expected",
        [("true", True), ("TRUE", True), ("yes", False), ("1", False), ("", False)],
    )
    def test_java_parse_boolean(self, value, expected):
        assert cfg(f"readonlymode.enabled={value}").readonly_mode_enabled is expected

    @pytest.mark.parametrize("key,field", [
        ("enforceQuota", "enforce_quota"),
        ("zookeeper.enforceQuota", "enforce_quota"),
        ("digest.enabled", "digest_enabled"),
        ("audit.enable", "audit_enable"),
        ("zookeeper.audit.enable", "audit_enable"),
    ])
    def test_operations_switches(self, key, field):
        # ZooKeeper reads these with Boolean.parseBoolean (so "yes" is
        # false); zkpy takes true/false in any case and refuses the rest.
        assert getattr(cfg(f"{key}=TRUE"), field) is True
        assert getattr(cfg(f"{key}=false"), field) is False
        for bad in ("yes", "1", "", "on"):
            with pytest.raises(ConfigError) as e:
                cfg(f"{key}={bad}")
            assert key in str(e.value)

    @pytest.mark.parametrize("key,field", [
        ("localSessionsEnabled", "local_sessions_enabled"),
        ("localSessionsUpgradingEnabled", "local_sessions_upgrading_enabled"),
    ])
    def test_local_sessions_switches(self, key, field):
        # QuorumPeerConfig.parseBoolean: true/false in any case, anything
        # else a ConfigException naming the key.
        assert getattr(cfg(f"{key}=True"), field) is True
        assert getattr(cfg(f"{key}=FALSE"), field) is False
        assert key not in cfg(f"{key}=true").extra
        for bad in ("yes", "1", "", "on"):
            with pytest.raises(ConfigError) as e:
                cfg(f"{key}={bad}")
            assert key in str(e.value)

    def test_local_sessions_defaults(self):
        # QuorumPeerConfig's defaults (QuorumPeer's own field says true for
        # upgrading, but the config always overwrites it).
        c = cfg()
        assert c.local_sessions_enabled is False
        assert c.local_sessions_upgrading_enabled is False

    def test_operations_defaults(self):
        c = cfg()
        assert c.enforce_quota is False and c.audit_enable is False
        assert c.digest_enabled is True and c.digest_auth_enabled is True

    def test_digest_log_keys_are_not_zookeeper_keys(self):
        # The digest history's interval and length are constants in ZooKeeper
        # 3.6-3.9 (DataTree.DIGEST_LOG_INTERVAL / DIGEST_LOG_LIMIT).
        c = cfg("digest.log.limit=5", "digest.log.interval=2")
        assert c.unknown_keys == ["digest.log.limit", "digest.log.interval"]

    @pytest.mark.parametrize(
        "value,expected", [("yes", True), ("true", False), ("Yes", False), ("no", False)]
    )
    def test_skip_acl_wants_yes(self, value, expected):
        assert cfg(f"skipACL={value}").skip_acl is expected

    @pytest.mark.parametrize(
        "value,expected", [("no", False), ("yes", True), ("false", True), ("NO", True)]
    )
    def test_force_sync_disabled_only_by_no(self, value, expected):
        assert cfg(f"forceSync={value}").force_sync is expected

    @pytest.mark.parametrize(
        "value,expected", [("false", False), ("False", True), ("no", True), ("true", True)]
    )
    def test_admin_server_disabled_only_by_false(self, value, expected):
        assert cfg(f"admin.enableServer={value}").admin_enable_server is expected

    @pytest.mark.parametrize("key", ["standaloneEnabled", "reconfigEnabled", "syncEnabled"])
    def test_quorum_peer_config_booleans_are_strict(self, key):
        message = error(f"{key}=yes", "server.1=a:1:2", "server.2=b:1:2")
        assert f": {key}: " in message and "'yes'" in message


# --------------------------------------------------------------------------
# 4lw whitelist
# --------------------------------------------------------------------------


class TestFourLetterWhitelist:
    def test_default_is_srvr(self):
        c = cfg()
        assert c.four_letter_whitelist == {"srvr"}
        assert c.four_letter_word_allowed("srvr")
        assert not c.four_letter_word_allowed("ruok")

    def test_list_is_trimmed_and_srvr_added(self):
        c = cfg("4lw.commands.whitelist= ruok , stat,,mntr ,")
        assert c.four_letter_whitelist == {"ruok", "stat", "mntr", "srvr"}

    def test_star_means_everything(self):
        c = cfg("4lw.commands.whitelist=stat, *")
        assert c.four_letter_whitelist == frozenset({"*"})
        assert c.four_letter_word_allowed("dump")

    def test_empty_list_still_has_srvr(self):
        assert cfg("4lw.commands.whitelist=").four_letter_whitelist == {"srvr"}

    def test_isro_added_in_readonly_mode(self):
        c = cfg("readonlymode.enabled=true", "4lw.commands.whitelist=ruok")
        assert c.four_letter_whitelist == {"ruok", "srvr", "isro"}
        assert cfg("readonlymode.enabled=true").four_letter_whitelist == {"srvr", "isro"}

    def test_prefixed_key(self):
        c = cfg("zookeeper.4lw.commands.whitelist=ruok")
        assert c.four_letter_whitelist == {"ruok", "srvr"}


# --------------------------------------------------------------------------
# The zookeeper. prefix rule, unknown and extra keys
# --------------------------------------------------------------------------


class TestKeys:
    def test_normalize_key(self):
        assert normalize_key("zookeeper.snapCount") == "snapCount"
        assert normalize_key("snapCount") == "snapCount"
        assert normalize_key("zookeeper.zookeeper.x") == "zookeeper.x"

    def test_prefix_accepted_for_every_key(self):
        c = parse_config(
            "zookeeper.dataDir=/d\nzookeeper.tickTime=1000\nzookeeper.skipACL=yes\n"
            "zookeeper.jute.maxbuffer=100\nzookeeper.server.1=h:1:2"
        )
        assert c.data_dir == Path("/d") and c.tick_time == 1000 and c.skip_acl
        assert c.jute_maxbuffer == 100
        assert 1 in c.servers

    def test_later_spelling_wins(self):
        assert cfg("snapCount=10", "zookeeper.snapCount=20").snap_count == 20
        assert cfg("zookeeper.snapCount=20", "snapCount=10").snap_count == 10

    def test_error_quotes_the_spelling_used(self):
        assert "zoo.cfg: zookeeper.tickTime: expected an integer, got 'x'" == error(
            "zookeeper.tickTime=x"
        )

    def test_keys_are_case_sensitive(self):
        c = cfg("ticktime=5")
        assert c.tick_time == 3000
        assert c.unknown_keys == ["ticktime"]

    def test_unknown_keys_collected_not_fatal(self):
        c = cfg("tickTme=2000", "zookeeper.fooBar=1")
        assert c.unknown_keys == ["tickTme", "zookeeper.fooBar"]
        assert c.extra == {"tickTme": "2000", "fooBar": "1"}

    def test_recognised_zookeeper_keys_go_to_extra_only(self):
        c = cfg(
            "observerMasterPort=2191",
            "authProvider.1=org.example.Auth",
        )
        assert c.unknown_keys == []
        assert c.extra["authProvider.1"] == "org.example.Auth"


# --------------------------------------------------------------------------
# Errors: one line, naming the key
# --------------------------------------------------------------------------


class TestErrors:
    def test_example_message(self):
        assert error("tickTime=abc") == "zoo.cfg: tickTime: expected an integer, got 'abc'"

    def test_error_attributes(self):
        with pytest.raises(ConfigError) as info:
            cfg("tickTime=abc")
        assert info.value.key == "tickTime" and info.value.source == "zoo.cfg"

    def test_custom_source(self):
        with pytest.raises(ConfigError, match=r"^conf/x\.cfg: tickTime: "):
            parse_config("dataDir=/d\ntickTime=abc", source="conf/x.cfg")

    def test_missing_data_dir(self):
        with pytest.raises(ConfigError) as info:
            parse_config("tickTime=2000")
        assert str(info.value) == "zoo.cfg: dataDir is not set"

    def test_empty_data_dir(self):
        assert "dataDir" in error("dataDir=")

    @pytest.mark.parametrize(
        "line,key",
        [
            ("tickTime=1.5", "tickTime"),
            ("tickTime=0x10", "tickTime"),  # parseInt is decimal only
            ("tickTime=1_000", "tickTime"),
            ("tickTime=", "tickTime"),
            ("tickTime=99999999999", "tickTime"),
            ("initLimit=ten", "initLimit"),
            ("syncLimit=five", "syncLimit"),
            ("clientPort=http", "clientPort"),
            ("clientPort=70000", "clientPort"),
            ("maxClientCnxns=lots", "maxClientCnxns"),
            ("minSessionTimeout=1s", "minSessionTimeout"),
            ("maxSessionTimeout=1m", "maxSessionTimeout"),
            ("minSessionTimeout=-5", "minSessionTimeout"),
            ("autopurge.snapRetainCount=x", "autopurge.snapRetainCount"),
            ("autopurge.purgeInterval=1h", "autopurge.purgeInterval"),
            ("snapCount=big", "snapCount"),
            ("preAllocSize=64M", "preAllocSize"),
            ("admin.serverPort=x", "admin.serverPort"),
            ("globalOutstandingLimit=x", "globalOutstandingLimit"),
            ("fsync.warningthresholdms=x", "fsync.warningthresholdms"),
            ("jute.maxbuffer=1MB", "jute.maxbuffer"),
            ("znode.container.checkIntervalMs=x", "znode.container.checkIntervalMs"),
            ("znode.container.maxPerMinute=x", "znode.container.maxPerMinute"),
            ("znode.container.maxNeverUsedIntervalMs=x", "znode.container.maxNeverUsedIntervalMs"),
            ("nio.sessionlessCnxnTimeout=x", "nio.sessionlessCnxnTimeout"),
            ("maxCnxns=x", "maxCnxns"),
            ("electionAlg=x", "electionAlg"),
        ],
    )
    def test_malformed_integers(self, line, key):
        assert error(line).startswith(f"zoo.cfg: {key}: ")

    @pytest.mark.parametrize("value", ["0", "-1"])
    def test_tick_time_must_be_positive(self, value):
        assert error(f"tickTime={value}").startswith("zoo.cfg: tickTime: must be a positive")

    def test_client_port_address_without_client_port(self):
        message = error("clientPortAddress=127.0.0.1")
        assert message.startswith("zoo.cfg: clientPortAddress: ")
        assert "clientPort is not set" in message

    def test_min_session_timeout_above_max(self):
        message = error("minSessionTimeout=5000", "maxSessionTimeout=4000")
        assert message.startswith("zoo.cfg: minSessionTimeout: ")
        assert "maxSessionTimeout" in message

    def test_default_min_above_explicit_max(self):
        # 2 * tickTime = 4000 > 3000, which ZooKeeper also rejects.
        assert "minSessionTimeout" in error("tickTime=2000", "maxSessionTimeout=3000")

    @pytest.mark.parametrize("value", ["0", "1", "2", "4"])
    def test_election_alg_must_be_3(self, value):
        assert error(f"electionAlg={value}").startswith("zoo.cfg: electionAlg: only 3")

    def test_election_alg_3_ok(self):
        assert cfg("electionAlg=3").election_alg == 3

    def test_bad_peer_type(self):
        assert error("peerType=leader").startswith("zoo.cfg: peerType: ")

    def test_hierarchical_quorum_errors(self):
        servers = ("server.1=h:1:2", "server.2=h:3:4", "server.3=h:5:6")
        assert error(*servers, "group.1=1:2").startswith("zoo.cfg: server.3: ")
        assert error(*servers, "group.1=1:2", "group.2=2:3").startswith(
            ("zoo.cfg: group.1: ", "zoo.cfg: group.2: "))
        assert error(*servers, "group.x=1:2:3").startswith("zoo.cfg: group.x: ")
        assert error(*servers, "group.1=1:2:3", "weight.1=heavy").startswith(
            "zoo.cfg: weight.1: ")

    def test_missing_dynamic_config_file(self):
        assert error("dynamicConfigFile=/x").startswith("zoo.cfg: dynamicConfigFile: ")

    def test_value_with_newline_still_one_line(self):
        message = error(r"tickTime=1\n2")
        assert "\n" not in message and "tickTime" in message


# --------------------------------------------------------------------------
# server.N
# --------------------------------------------------------------------------


class TestServerSpec:
    def test_basic(self):
        assert parse_server_spec(1, "zk1:2888:3888") == ServerSpec(1, "zk1", 2888, 3888)

    def test_roles_case_insensitive(self):
        assert parse_server_spec(2, "h:1:2:observer").role == "observer"
        assert parse_server_spec(2, "h:1:2:OBSERVER").is_observer
        assert parse_server_spec(2, "h:1:2:Participant").role == "participant"

    def test_client_port_only(self):
        spec = parse_server_spec(1, "h:2888:3888;2181")
        assert (spec.client_host, spec.client_port) == ("0.0.0.0", 2181)

    def test_client_host_and_port(self):
        spec = parse_server_spec(1, "h:2888:3888:participant;10.0.0.1:2181")
        assert spec.role == "participant"
        assert (spec.client_host, spec.client_port) == ("10.0.0.1", 2181)

    def test_no_client_part(self):
        spec = parse_server_spec(1, "h:2888:3888")
        assert spec.client_host is None and spec.client_port is None

    def test_ipv6(self):
        spec = parse_server_spec(1, "[::1]:2888:3888;[::1]:2181")
        assert spec.host == "::1" and spec.client_host == "::1"
        assert (spec.quorum_port, spec.election_port, spec.client_port) == (2888, 3888, 2181)

    def test_trailing_separators_ignored_like_java_split(self):
        assert parse_server_spec(1, "h:1:2:") == ServerSpec(1, "h", 1, 2)
        assert parse_server_spec(1, "h:1:2;").client_port is None

    @pytest.mark.parametrize(
        "value,fragment",
        [
            ("h:2888", "expected host:quorumPort:electionPort"),
            ("h", "expected host"),
            ("h:1:2:participant:x", "expected host"),
            ("h:1:2;3;4", "expected host"),
            ("h:x:3888", "expected an integer port, got 'x'"),
            ("h:2888:y", "expected an integer port, got 'y'"),
            ("h:2888:70000", "out of range"),
            ("h:0:3888", "out of range"),
            ("h:2888:2888", "must be different"),
            ("h:1:2:leader", "unknown role 'leader'"),
            (":1:2", "missing host"),
            ("h:1:2;a:b:c", "expected host"),
            ("h:1:2;x", "expected an integer port"),
            ("h:1:2|g:1:2", "multiAddress.enabled"),
            ("[::1:2888:3888", "no matching ']'"),
            ("[::1]", "no port"),
        ],
    )
    def test_malformed(self, value, fragment):
        with pytest.raises(ConfigError) as info:
            parse_server_spec(7, value)
        assert info.value.key == "server.7"
        assert fragment in str(info.value)

    def test_error_from_config_names_the_line(self):
        assert error("server.3=h:1").startswith("zoo.cfg: server.3: ")

    @pytest.mark.parametrize("key", ["server.x", "server.", "server.1.2", "server.-1"])
    def test_bad_server_id(self, key):
        assert error(f"{key}=h:1:2").startswith(f"zoo.cfg: {key}: ")

    def test_servers_in_config(self, tmp_path):
        c = cfg(*quorum(tmp_path, "server.4=zk4:2888:3888:observer"))
        assert sorted(c.servers) == [1, 2, 3, 4]
        assert c.servers[2] == ServerSpec(2, "zk2", 2888, 3888)
        assert c.servers[4].is_observer
        assert sorted(c.participants) == [1, 2, 3] and sorted(c.observers) == [4]


# --------------------------------------------------------------------------
# Standalone versus quorum, myid
# --------------------------------------------------------------------------


class TestQuorumMode:
    def test_no_servers_is_standalone(self):
        assert cfg().is_standalone

    def test_single_participant_is_standalone_with_warning(self, tmp_path):
        c = cfg(f"dataDir={tmp_path}", "server.1=a:2888:3888")
        assert c.is_standalone
        assert c.my_id is None  # myid is not read in standalone mode
        assert any("standalone" in w for w in c.warnings)

    def test_observer_without_participants(self):
        assert "observers" in error("server.1=a:1:2:observer")

    def test_observer_with_single_participant(self):
        assert "observers" in error("server.1=a:1:2", "server.2=b:1:2:observer")

    def test_standalone_disabled_without_servers(self):
        assert error("standaloneEnabled=false").startswith("zoo.cfg: standaloneEnabled: ")

    def test_standalone_disabled_single_server_is_quorum(self, tmp_path):
        (tmp_path / "myid").write_text("1\n")
        c = cfg(
            f"dataDir={tmp_path}", "standaloneEnabled=false", "initLimit=5", "syncLimit=2",
            "server.1=a:2888:3888",
        )
        assert not c.is_standalone and c.my_id == 1

    def test_three_servers(self, tmp_path):
        c = cfg(*quorum(tmp_path, myid="2\nignored second line\n"))
        assert not c.is_standalone
        assert c.my_id == 2
        assert (c.init_limit, c.sync_limit) == (10, 5)

    def test_myid_resolved_against_base_dir(self, tmp_path):
        (tmp_path / "data").mkdir()
        (tmp_path / "data" / "myid").write_text("3")
        lines = ["dataDir=data", "initLimit=1", "syncLimit=1"]
        lines += [f"server.{i}=h{i}:2888:3888" for i in (1, 2, 3)]
        c = parse_config("\n".join(lines), base_dir=tmp_path)
        assert c.my_id == 3

    def test_missing_myid(self, tmp_path):
        message = error(*quorum(tmp_path, myid=None))
        assert message.startswith("zoo.cfg: myid file is missing")
        assert str(tmp_path / "myid") in message

    @pytest.mark.parametrize("content", ["", "one", "1.0", "\n1"])
    def test_malformed_myid(self, tmp_path, content):
        message = error(*quorum(tmp_path, myid=content))
        assert message.startswith(f"{tmp_path / 'myid'}: expected an integer")

    def test_myid_not_in_server_list(self, tmp_path):
        assert "server.9" in error(*quorum(tmp_path, myid="9"))

    def test_myid_limit_with_extended_types(self, tmp_path):
        lines = [f"dataDir={tmp_path}", "initLimit=1", "syncLimit=1", "extendedTypesEnabled=true"]
        lines += ["server.255=a:1:2", "server.2=b:1:2"]
        (tmp_path / "myid").write_text("255")
        assert "254" in error(*lines)

    @pytest.mark.parametrize("missing", ["initLimit", "syncLimit"])
    def test_limits_required_in_quorum_mode(self, tmp_path, missing):
        lines = [line for line in quorum(tmp_path) if not line.startswith(missing)]
        assert error(*lines) == (
            f"zoo.cfg: {missing} is not set (it is required for a replicated ensemble)"
        )

    def test_limits_not_required_standalone(self):
        assert cfg().init_limit is None

    def test_peer_type_follows_server_line(self, tmp_path):
        lines = quorum(
            tmp_path, "server.4=zk4:2888:3888:observer", "peerType=participant", myid="4"
        )
        c = cfg(*lines)
        assert c.peer_type == "observer"
        assert any("peerType" in w for w in c.warnings)

    def test_client_address_from_own_server_line(self, tmp_path):
        lines = with_client_part(quorum(tmp_path), "127.0.0.1:2191")
        c = cfg(*lines)
        assert (c.client_port, c.client_port_address) == (2191, "127.0.0.1")

    def test_client_port_only_on_server_line_means_all_interfaces(self, tmp_path):
        lines = with_client_part(quorum(tmp_path), "2191")
        c = cfg(*lines, "clientPort=2191")
        assert (c.client_port, c.client_port_address) == (2191, None)

    def test_client_port_conflict(self, tmp_path):
        lines = with_client_part(quorum(tmp_path), "2191")
        assert error(*lines, "clientPort=2181").startswith("zoo.cfg: clientPort: ")

    def test_client_address_conflict(self, tmp_path):
        lines = with_client_part(quorum(tmp_path), "2191")
        message = error(*lines, "clientPort=2191", "clientPortAddress=10.0.0.1")
        assert message.startswith("zoo.cfg: clientPortAddress: ")


# --------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------


class TestLoadConfig:
    def test_missing_file(self, tmp_path):
        path = tmp_path / "nope.cfg"
        with pytest.raises(ConfigError) as info:
            load_config(path)
        assert str(info.value) == f"{path}: config file not found"

    def test_directory_is_not_a_config(self, tmp_path):
        with pytest.raises(ConfigError, match=str(tmp_path)):
            load_config(tmp_path)

    def test_errors_name_the_file(self, tmp_path):
        path = tmp_path / "zoo.cfg"
        path.write_text("dataDir=/d\ntickTime=abc\n")
        with pytest.raises(ConfigError) as info:
            load_config(path)
        assert str(info.value) == f"{path}: tickTime: expected an integer, got 'abc'"

    def test_utf8_bom_and_non_ascii(self, tmp_path):
        path = tmp_path / "zoo.cfg"
        path.write_bytes("\ufeffdataDir=/données\n".encode("utf-8"))
        assert load_config(path).data_dir == Path("/données")

    def test_latin1_fallback(self, tmp_path):
        path = tmp_path / "zoo.cfg"
        path.write_bytes("dataDir=/donn\xe9es\n".encode("latin-1"))
        assert load_config(path).data_dir == Path("/données")

    def test_base_dir(self, tmp_path):
        path = tmp_path / "zoo.cfg"
        path.write_text("dataDir=data\n")
        assert load_config(path).data_dir == Path("data")
        assert load_config(path, base_dir=tmp_path).data_dir == tmp_path / "data"

    def test_shipped_conf_zoo_cfg(self):
        c = load_config(REPO_ROOT / "conf" / "zoo.cfg")
        assert c.tick_time == 2000
        assert c.data_dir == Path("data")
        assert c.client_port == 2181
        assert c.four_letter_whitelist == frozenset({"*"})
        assert (c.min_session_timeout, c.max_session_timeout) == (4000, 40000)
        assert c.is_standalone
        assert c.unknown_keys == [] and c.warnings == []


# --------------------------------------------------------------------------
# The membership: hierarchical quorums, several addresses, dynamic files
# --------------------------------------------------------------------------


class TestMembership:
    SERVERS = ("server.1=h:1:2", "server.2=h:3:4", "server.3=h:5:6",
               "server.4=h:7:8:observer")

    @staticmethod
    def member(tmp_path, *lines):
        (tmp_path / "myid").write_text("1")
        return cfg(f"dataDir={tmp_path}", "initLimit=10", "syncLimit=5", *lines)

    def test_groups_and_weights(self, tmp_path):
        c = self.member(tmp_path, *self.SERVERS, "group.1=1:2", "group.2=3", "weight.1=3",
                        "weight.3=0")
        assert c.groups == {1: (1, 2), 2: (3,)}
        assert c.weights == {1: 3, 3: 0}

    def test_observers_need_no_group(self, tmp_path):
        assert self.member(tmp_path, *self.SERVERS, "group.1=1:2:3").groups == {1: (1, 2, 3)}

    def test_several_addresses_with_multi_address_enabled(self, tmp_path):
        c = self.member(tmp_path, "server.1=a:1:2|b:3:4;5", "server.2=h:3:4", "server.3=h:5:6",
                        "multiAddress.enabled=true")
        s = c.servers[1]
        assert (s.host, s.quorum_port, s.election_port) == ("a", 1, 2)
        assert s.quorum_addresses == (("a", 1), ("b", 3))
        assert c.servers[2].quorum_addresses == (("h", 3),)
        assert error("server.1=a:1:2|b:3:4", "server.2=h:3:4").startswith(
            "zoo.cfg: server.1: ")
        assert "roles" in error("server.1=a:1:2:observer|b:3:4:participant", "server.2=h:3:4",
                                "multiAddress.enabled=true")

    def test_dynamic_config_file(self, tmp_path):
        dyn = tmp_path / "zoo.cfg.dynamic.100000000"
        dyn.write_text("server.1=h:1:2;2181\nserver.2=h:3:4\nserver.3=h:5:6\ngroup.1=1:2:3\n")
        c = self.member(tmp_path, f"dynamicConfigFile={dyn}")
        assert sorted(c.servers) == [1, 2, 3] and c.servers[1].client_port == 2181
        assert c.groups == {1: (1, 2, 3)}
        assert c.config_version == 0x100000000
        assert c.dynamic_config_file == dyn

    def test_dynamic_config_file_errors(self, tmp_path):
        dyn = tmp_path / "zoo.cfg.dynamic.5"
        dyn.write_text("server.1=h:1:2\nversion=5\n")
        assert "version" in error(f"dynamicConfigFile={dyn}")
        dyn.write_text("server.1=h:1:2\ntickTime=5\n")
        assert "tickTime" in error(f"dynamicConfigFile={dyn}")
        dyn.write_text("server.1=h:1:2\n")
        assert error(f"dynamicConfigFile={dyn}", "server.2=h:3:4").startswith(
            "zoo.cfg: server.2: ")
