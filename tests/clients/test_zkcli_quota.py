"""zkCli.sh's quota commands (setquota -n/-b/-N/-B, listquota, delquota)
and the writes they govern, run as one scripted session against Apache
ZooKeeper 3.8 and against zkpy: every command must print the same.  Once
with the default configuration (limits are recorded, never enforced), once
with enforceQuota=true (hard limits refuse writes with QuotaExceeded)."""

from __future__ import annotations

import pytest

from zkpy.testing.apache import ApacheZooKeeper, require_apache

from .test_zkcli import run_zkcli

Q = "/q"
LIMITS = "/zookeeper/quota/q/zookeeper_limits"
STATS = "/zookeeper/quota/q/zookeeper_stats"
LONG = "x" * 70

STEPS = [
    ("mk", f"create {Q}"),
    ("mk_a", f"create {Q}/a data1"),
    ("setquota_n", f"setquota -n 3 {Q}"),
    ("listquota_1", f"listquota {Q}"),
    ("get_limits", f"get {LIMITS}"),
    ("get_stats", f"get {STATS}"),
    ("mk_b", f"create {Q}/b 12345"),
    ("mk_c", f"create {Q}/c x"),
    ("mk_d", f"create {Q}/d y"),            # over the soft count limit
    ("listquota_2", f"listquota {Q}"),
    ("setquota_b", f"setquota -b 10 {Q}"),  # on an existing quota: warnings
    ("setquota_N", f"setquota -N 6 {Q}"),
    ("setquota_B", f"setquota -B 40 {Q}"),
    ("listquota_3", f"listquota {Q}"),
    ("set_a", f"set {Q}/a longer-data-here"),
    ("delete_b", f"delete {Q}/b"),
    ("mk_e", f"create {Q}/e {'e' * 40}"),   # over the hard byte limit
    ("mk_f", f"create {Q}/f"),
    ("mk_g", f"create {Q}/g"),
    ("mk_h", f"create {Q}/h"),              # over the hard count limit
    ("set_long", f"set {Q}/a {LONG}"),
    ("set_long_bad_version", f"set -v 99 {Q}/a {LONG}"),
    ("listquota_4", f"listquota {Q}"),
    ("setquota_child", f"setquota -n 5 {Q}/a"),
    ("mk_q2", "create /q2"),
    ("mk_q2x", "create /q2/x"),
    ("setquota_q2x", "setquota -n 5 /q2/x"),
    ("setquota_parent", "setquota -n 5 /q2"),
    ("setquota_missing", "setquota -n 1 /missing"),
    ("setquota_zero", f"setquota -n 0 {Q}"),
    ("setquota_negative", f"setquota -b -1 {Q}"),
    ("setquota_nan", f"setquota -n abc {Q}"),
    ("setquota_under_quota", "setquota -n 2 /zookeeper/quota/x"),
    ("listquota_missing", "listquota /nope"),
    ("delquota_missing", "delquota /nope"),
    ("delquota_n", f"delquota -n {Q}"),
    ("listquota_5", f"listquota {Q}"),
    ("delquota_B", f"delquota -B {Q}"),
    ("listquota_6", f"listquota {Q}"),
    ("delquota_all", f"delquota {Q}"),
    ("listquota_7", f"listquota {Q}"),
    ("ls_quota_1", "ls -R /zookeeper/quota"),
    ("setquota_again", f"setquota -n 2 {Q}"),
    ("deleteall", f"deleteall {Q}"),
    ("listquota_gone", f"listquota {Q}"),   # the quota outlives its node
    ("ls_quota_2", "ls -R /zookeeper/quota"),
    ("mk_again", f"create {Q}"),
    ("mk_again_x", f"create {Q}/x abc"),
    ("listquota_again", f"listquota {Q}"),
    ("delquota_q2x", "delquota /q2/x"),
    ("delquota_q", f"delquota {Q}"),
    ("ls_quota_3", "ls -R /zookeeper/quota"),
    ("deleteall_q", f"deleteall {Q}"),
    ("deleteall_q2", "deleteall /q2"),
]


@pytest.fixture(scope="module", params=["default", "enforceQuota"])
def transcripts(request):
    """{"apache": Transcript, "zkpy": Transcript} of STEPS on a fresh pair."""
    require_apache()
    from zkpy.testing import ZkpyServer

    cfg = {"enforceQuota": "true"} if request.param == "enforceQuota" else {}
    out = {"config": request.param}
    with ApacheZooKeeper(extra_cfg=cfg) as zk:
        out["apache"] = run_zkcli(zk.hosts, STEPS)
        out["apache_refusals"] = _refusals(zk.four_letter_word("mntr"))
    with ZkpyServer(config=cfg) as zp:
        out["zkpy"] = run_zkcli(zp.hosts, STEPS)
        out["zkpy_refusals"] = _refusals(zp.four_letter("mntr"))
    return out


def _refusals(mntr: str) -> dict:
    """mntr's quota_exceeded_error_per_namespace counters: {namespace: n}."""
    suffix = "_quota_exceeded_error_per_namespace"
    out = {}
    for line in mntr.splitlines():
        key, _, value = line.partition("\t")
        if key.endswith(suffix):
            out[key[len("zk_"):-len(suffix)]] = int(value)
    return out


def test_hard_limit_refusals_counted(transcripts):
    """Each write refused by a hard limit is counted under the top name of
    its path, as ZooKeeper's ServerMetrics does."""
    assert transcripts["zkpy_refusals"] == transcripts["apache_refusals"]
    if transcripts["config"] == "enforceQuota":
        assert transcripts["zkpy_refusals"].get("q", 0) >= 3
    else:
        assert transcripts["zkpy_refusals"] == {}


@pytest.mark.parametrize("key", [k for k, _ in STEPS])
def test_same_output(transcripts, key):
    a, z = transcripts["apache"][key], transcripts["zkpy"][key]
    assert (z.out, z.err) == (a.out, a.err), (
        f"{key} ({transcripts['config']}): {a.cmd!r}\n  apache: {a}\n  zkpy:   {z}")


def test_what_was_compared(transcripts):
    """A few of the lines compared, spelled out (they are Apache ZooKeeper's)."""
    t = transcripts["zkpy"]
    enforcing = transcripts["config"] == "enforceQuota"
    assert t["listquota_1"].out == [
        "Output quota for /q count=3,bytes=-1=;byteHardLimit=-1;countHardLimit=-1",
        "Output stat for /q count=2,bytes=5"]
    assert t["get_stats"].out == ["count=2,bytes=5"]        # counted by the server
    assert t["listquota_3"].out[0] == \
        "Output quota for /q count=3,bytes=10=;byteHardLimit=40;countHardLimit=6"
    exceeded = ["Quota has exceeded : /q/h"] if enforcing else ["Created /q/h"]
    assert t["mk_h"].err == exceeded
    # QuotaExceeded comes before the version check
    assert t["set_long_bad_version"].err == (
        ["Quota has exceeded : /q/a"] if enforcing else ["version No is not valid : /q/a"])
    assert t["listquota_gone"].out == [
        "Output quota for /q count=2,bytes=-1=;byteHardLimit=-1;countHardLimit=-1",
        "Output stat for /q count=0,bytes=0"]
