"""Every ZooKeeper key zkpy accepts beyond its typed core (config.py,
"ZooKeeper's remaining keys"): parsed and checked as ZooKeeper 3.8 parses and
checks it, and either given its behaviour (a ServerConfig field), listed as
having no effect (inert_keys, logged at startup), or warned about when its
value asks for a behaviour zkpy does not have."""

import pytest

from tests.unit.test_config import cfg, error
from zkpy.server.config import _INERT_KEYS, _UNIMPLEMENTED_KEYS

# --- keys with a behaviour ---------------------------------------------------------------


def test_defaults_are_zookeepers():
    c = cfg()
    assert c.large_request_max_bytes == 100 * 1024 * 1024
    assert c.large_request_threshold == -1
    assert c.snap_size_limit_kb == 4194304          # 4 GB
    assert c.txn_log_size_limit_kb == -1
    assert c.quorum_listen_on_all_ips is False
    assert c.connect_to_learner_master_limit == 0   # initLimit
    assert (c.jvm_pause_monitor, c.jvm_pause_info_threshold_ms, c.jvm_pause_warn_threshold_ms,
            c.jvm_pause_sleep_time_ms) == (False, 1000, 10000, 500)
    assert c.outstanding_handshake_limit == -1
    assert c.enable_eager_acl_check is False
    assert c.inert_keys == [] and c.warnings == [] and c.unknown_keys == []


@pytest.mark.parametrize("line, field, value", [
    ("largeRequestMaxBytes=5000", "large_request_max_bytes", 5000),
    ("zookeeper.largeRequestMaxBytes=0x1000", "large_request_max_bytes", 4096),
    ("largeRequestThreshold=1000", "large_request_threshold", 1000),
    ("largeRequestThreshold=-1", "large_request_threshold", -1),
    ("snapSizeLimitInKb=64", "snap_size_limit_kb", 64),
    ("snapSizeLimitInKb=8589934592", "snap_size_limit_kb", 8589934592),   # Long.getLong
    ("snapSizeLimitInKb=-1", "snap_size_limit_kb", -1),
    ("txnLogSizeLimitInKb=0x10", "txn_log_size_limit_kb", 16),
    ("quorumListenOnAllIPs=true", "quorum_listen_on_all_ips", True),
    ("quorumListenOnAllIPs=FALSE", "quorum_listen_on_all_ips", False),
    ("connectToLearnerMasterLimit=7", "connect_to_learner_master_limit", 7),
    ("jvm.pause.monitor=true", "jvm_pause_monitor", True),
    ("jvm.pause.info-threshold.ms=50", "jvm_pause_info_threshold_ms", 50),
    ("jvm.pause.warn-threshold.ms=20000000000", "jvm_pause_warn_threshold_ms", 20000000000),
    ("jvm.pause.sleep.time.ms=100", "jvm_pause_sleep_time_ms", 100),
    ("netty.server.outstandingHandshake.limit=0x20", "outstanding_handshake_limit", 32),
    ("enableEagerACLCheck=true", "enable_eager_acl_check", True),
    ("enableEagerACLCheck=TRUE", "enable_eager_acl_check", True),
    # Boolean.getBoolean: anything but "true" is false, as in ZooKeeper.
    ("enableEagerACLCheck=yes", "enable_eager_acl_check", False),
])
def test_keys_with_a_behaviour_are_parsed(line, field, value):
    c = cfg(line)
    assert getattr(c, field) == value
    assert c.unknown_keys == [] and c.inert_keys == []


@pytest.mark.parametrize("line", [
    "largeRequestMaxBytes=lots",
    "largeRequestThreshold=1.5",
    "snapSizeLimitInKb=4GB",
    "txnLogSizeLimitInKb=",
    "quorumListenOnAllIPs=yes",                 # QuorumPeerConfig.parseBoolean
    "connectToLearnerMasterLimit=0x10",         # Integer.parseInt: decimal only
    "jvm.pause.monitor=on",
    "jvm.pause.info-threshold.ms=1s",
    "jvm.pause.warn-threshold.ms=0x10",         # Long.parseLong
    "jvm.pause.sleep.time.ms=-",
    "netty.server.outstandingHandshake.limit=many",
    "largeRequestMaxBytes=4294967296",          # beyond an int
])
def test_a_bad_value_names_its_key(line):
    key = line.split("=")[0]
    message = error(line)
    assert f": {key}: " in message


@pytest.mark.parametrize("value", ["0", "-1", "-100"])
def test_a_large_request_maximum_below_one_keeps_the_default(value):
    # ZooKeeperServer.setLargeRequestMaxBytes: warns and keeps the default.
    c = cfg(f"largeRequestMaxBytes={value}")
    assert c.large_request_max_bytes == 100 * 1024 * 1024
    assert c.warnings == [f"largeRequestMaxBytes={value} is not positive; using 104857600"]


@pytest.mark.parametrize("value", ["0", "-2", "-100"])
def test_a_large_request_threshold_of_0_or_below_minus_1_is_off(value):
    # ZooKeeperServer.setLargeRequestThreshold: warns and sets -1.
    c = cfg(f"largeRequestThreshold={value}")
    assert c.large_request_threshold == -1
    assert c.warnings == [f"largeRequestThreshold={value} should be -1 or positive; using -1"]


def test_the_pause_monitor_needs_a_positive_sleep():
    # JvmPauseMonitor's thread dies on a negative sleep and spins on 0.
    assert ": jvm.pause.sleep.time.ms: must be at least 1" in \
        error("jvm.pause.monitor=true", "jvm.pause.sleep.time.ms=0")
    assert cfg("jvm.pause.sleep.time.ms=0").jvm_pause_sleep_time_ms == 0   # monitor off


def test_only_zookeepers_sleep_time_key():
    # ZooKeeper's key is jvm.pause.sleep.time.ms; other spellings are not its.
    c = cfg("jvm.pause.sleep-time.ms=100")
    assert c.unknown_keys == ["jvm.pause.sleep-time.ms"]
    assert c.jvm_pause_sleep_time_ms == 500


# --- keys without effect -------------------------------------------------------------------

INERT_SAMPLES = {
    "maxResponseCacheSize": "400",
    "maxGetChildrenResponseCacheSize": "0x100",
    "commitLogCount": "1000",
    "flushDelay": "10",
    "maxWriteQueuePollTime": "3",
    "maxBatchSize": "500",
    "closeSessionTxn.enabled": "false",
    "intBufferStartingSizeBytes": "32",
    "request_throttler.shutdownTimeout": "5000",
    "nio.numSelectorThreads": "2",
    "nio.numWorkerThreads": "0",
    "nio.directBufferBytes": "0",
    "nio.shutdownTimeout": "5000",
    "watchManagerName": "org.apache.zookeeper.server.watch.WatchManagerOptimized",
    "jute.maxbuffer.extrasize": "2048",
    "fips-mode": "true",
    "learner.asyncSending": "true",
    "learner.closeSocketAsync": "true",
    "leader.closeSocketAsync": "true",
    "leader.ackLoggingFrequency": "1000",
    "netty.advancedFlowControl.enabled": "true",
    "netty.server.earlyDropSecureConnectionHandshakes": "true",
    "kerberos.minReLoginTimeMs": "60000",
    "version": "100000000",
    "ssl.crl": "false",
    "ssl.ocsp": "false",
    "ssl.quorum.crl": "false",
    "ssl.quorum.ocsp": "false",
}


def test_every_inert_key_has_a_sample():
    assert set(INERT_SAMPLES) == set(_INERT_KEYS)


@pytest.mark.parametrize("key", sorted(INERT_SAMPLES))
def test_inert_keys_are_listed_for_the_startup_line(key):
    c = cfg(f"{key}={INERT_SAMPLES[key]}")
    assert c.inert_keys == [key]
    assert c.unknown_keys == [] and c.warnings == []
    assert c.extra == {key: INERT_SAMPLES[key]}


def test_inert_keys_keep_their_spelling():
    c = cfg("zookeeper.flushDelay=5", "nio.numWorkerThreads=4")
    assert c.inert_keys == ["zookeeper.flushDelay", "nio.numWorkerThreads"]


@pytest.mark.parametrize("line, why", [
    # ZooKeeperServer's static initialiser throws: the server does not start.
    ("intBufferStartingSizeBytes=31", "must be at least 32"),
    # NIOServerCnxnFactory.configure throws.
    ("nio.numSelectorThreads=0", "must be at least 1"),
    # WatchManagerFactory cannot instantiate the class.
    ("watchManagerName=org.example.Watches", "unknown watch manager"),
    # Revocation checks zkpy does not make must not pass quietly.
    ("ssl.crl=true", "not supported"),
    ("ssl.quorum.ocsp=TRUE", "not supported"),
    # Numbers are numbers (ZooKeeper would fall back to the default).
    ("maxBatchSize=big", "expected an integer"),
    ("flushDelay=1.5", "expected an integer"),
    ("nio.directBufferBytes=64k", "expected an integer"),
])
def test_inert_keys_are_still_checked(line, why):
    key = line.split("=")[0]
    message = error(line)
    assert f": {key}: " in message and why in message


# --- keys with a behaviour zkpy does not have ------------------------------------------------

@pytest.mark.parametrize("line, says", [
    ("observerMasterPort=2191", "observers sync from the leader"),
    ("oraclePath=/var/zk/oracle", "needs both voters"),
    ("requireKerberosConfig=true", "Kerberos"),
    ("leader.maxConcurrentSnapSyncs=5", "any number of learners"),
    ("leader.maxConcurrentDiffSyncs=5", "any number of learners"),
    ("leader.maxTimeToWaitForEpoch=1000", "initLimit"),
    ("kerberos.canonicalizeHostNames=true", "as written"),
    ("audit.impl.class=org.example.Audit", "zkpy.audit"),
    ("ssl.context.supplier.class=org.example.Ctx", "ssl.*"),
    ("ssl.quorum.context.supplier.class=org.example.Ctx", "ssl.quorum.*"),
    ("ssl.allowReverseDnsLookup=true", "reverse"),
    ("ssl.quorum.allowReverseDnsLookup=true", "reverse"),
])
def test_unimplemented_behaviour_is_warned_about(line, says):
    c = cfg(line)
    assert len(c.warnings) == 1
    assert c.warnings[0].startswith(f"{line} is not implemented: ") and says in c.warnings[0]
    assert c.unknown_keys == [] and c.inert_keys == []


@pytest.mark.parametrize("line", [
    "observerMasterPort=0", "observerMasterPort=-1",
    "requireKerberosConfig=false", "kerberos.canonicalizeHostNames=false",
    "audit.impl.class=org.apache.zookeeper.audit.Slf4jAuditLogger",
    "ssl.allowReverseDnsLookup=false", "oraclePath=",
])
def test_no_warning_when_the_value_asks_for_nothing(line):
    c = cfg(line)
    assert c.warnings == [] and c.unknown_keys == [] and c.inert_keys == []


def test_every_unimplemented_key_is_tested():
    tested = {"observerMasterPort", "oraclePath", "requireKerberosConfig",
              "leader.maxConcurrentSnapSyncs", "leader.maxConcurrentDiffSyncs",
              "leader.maxTimeToWaitForEpoch", "kerberos.canonicalizeHostNames",
              "audit.impl.class", "ssl.context.supplier.class",
              "ssl.quorum.context.supplier.class", "ssl.allowReverseDnsLookup",
              "ssl.quorum.allowReverseDnsLookup"}
    assert tested == set(_UNIMPLEMENTED_KEYS)


@pytest.mark.parametrize("line", [
    "observerMasterPort=x",                      # Integer.parseInt
    "leader.maxConcurrentSnapSyncs=ten",
])
def test_unimplemented_keys_are_still_checked(line):
    assert f": {line.split('=')[0]}: " in error(line)


# --- prefixes ---------------------------------------------------------------------------------

@pytest.mark.parametrize("key", [
    "jvm.pause.foo", "learner.foo", "leader.foo", "netty.foo", "multiAddress.foo",
    "quorum.auth.foo", "ssl.foo", "ssl.quorum.foo", "kerberos.foo", "audit.foo",
    "enforce.auth.foo",
])
def test_a_key_zookeeper_does_not_read_is_unknown_whatever_its_prefix(key):
    # Reported as not a known key (a typo, most likely), not taken quietly.
    c = cfg(f"{key}=1")
    assert c.unknown_keys == [key]


@pytest.mark.parametrize("key", ["authProvider.7", "superUser", "superUser.2"])
def test_keys_taken_under_any_suffix(key):
    c = cfg(f"{key}=x")
    assert c.unknown_keys == [] and c.inert_keys == []
