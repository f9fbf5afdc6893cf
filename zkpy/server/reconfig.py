"""The reconfig request (opcode 16) as an ensemble's leader preps it
(ZooKeeper 3.8's PrepRequestProcessor), checks in ZooKeeper's order:

    ReconfigDisabled     reconfigEnabled is false (zkserver.py, before all)
    SessionExpired/Moved the session (zkserver.py)
    Unimplemented        a standalone server (roles/standalone.py)
    ReconfigInProgress   a reconfiguration is proposed and not committed
    BadVersion           fromConfig is not -1 and not the last version seen
    BadArguments         new members that do not parse; an incremental change
                         of a hierarchical configuration; a joining server
                         without its client port, or with another's address;
                         too few participants left
    NewConfigNoQuorum    no quorum of the new configuration is connected and
                         synced with the leader
    NoAuth               no WRITE on /zookeeper/config (by default only a
                         super user: its ACL gives the world READ)

The txn sets /zookeeper/config's data to the new membership, whose version
is the txn's own zxid; ZAB puts it in force once a quorum of the old and of
the new configuration have it (zkpy/zab/peer.py)."""

from ..datatree.acl import check_acl
from ..protocol.errors import Err, KeeperError
from ..protocol.opcodes import Perms
from .config import ConfigError, normalize_key, parse_server_spec
from .membership import Membership

CONFIG_NODE = "/zookeeper/config"


def prep_reconfig(server, request, current: Membership, pending: bool, synced, zxid) -> bytes:
    """The new membership's text (the txn's data) for request, or KeeperError.
    synced: the ids of the servers connected and synced with the leader (the
    leader included); zxid: the zxid the txn will have."""
    rec = request.record
    if pending:
        raise KeeperError(Err.RECONFIG_IN_PROGRESS)
    if rec.cur_config_id != -1 and rec.cur_config_id != current.version:
        raise KeeperError(Err.BAD_VERSION)
    if rec.new_members is not None:
        new = _non_incremental(rec.new_members)
    else:
        new = _incremental(current, rec.joining, rec.leaving)
    new.version = zxid
    voters = new.voters
    if server.config.standalone_enabled and len(voters) < 2:
        raise KeeperError(Err.BAD_ARGUMENTS)   # "must include at least 2 followers"
    if not voters:
        raise KeeperError(Err.BAD_ARGUMENTS)
    if not new.quorum().is_quorum(synced):
        raise KeeperError(Err.NEW_CONFIG_NO_QUORUM)
    node = server.tree.nodes[CONFIG_NODE]
    if not check_acl(node.acl, Perms.WRITE, request.conn.auth_ids, server.skip_acl):
        raise KeeperError(Err.NO_AUTH)
    return new.text().encode()


def _non_incremental(members: str) -> Membership:
    # Either commas or newlines separate the servers.
    try:
        return Membership.parse(members.replace(",", "\n"))
    except ConfigError:
        raise KeeperError(Err.BAD_ARGUMENTS) from None


def _incremental(current: Membership, joining, leaving) -> Membership:
    if current.groups:
        # "Incremental reconfiguration requested but last configuration seen
        # has a non-majority quorum system"
        raise KeeperError(Err.BAD_ARGUMENTS)
    servers = dict(current.servers)
    try:
        for item in _items(leaving):
            servers.pop(int(item), None)
        for item in _items(joining):
            name, eq, spec = item.partition("=")
            if not eq or "=" in spec:
                raise KeeperError(Err.BAD_ARGUMENTS)     # "Wrong format of server string"
            sid = int(name[name.rfind(".") + 1:])
            joiner = parse_server_spec(sid, spec, normalize_key(name.strip()) or None, True)
            if joiner.client_port is None:
                # "each server should have at least 3 ports specified"
                raise KeeperError(Err.BAD_ARGUMENTS)
            for other in servers.values():
                if other.id != sid and _addresses(other) & _addresses(joiner):
                    raise KeeperError(Err.BAD_ARGUMENTS)   # "Reconfiguration failed"
            servers.pop(sid, None)
            servers[sid] = joiner
    except (ValueError, ConfigError):
        raise KeeperError(Err.BAD_ARGUMENTS) from None
    return Membership(dict(sorted(servers.items())))


def _items(text):
    return [s.strip() for s in text.split(",") if s.strip()] if text else []


def _addresses(spec) -> set:
    out = set()
    for host, quorum, election in spec.addresses or ((spec.host, spec.quorum_port,
                                                      spec.election_port),):
        out.add((host, quorum))
        out.add((host, election))
    if spec.client_port is not None and spec.client_host not in (None, "0.0.0.0"):
        out.add((spec.client_host, spec.client_port))
    return out
