"""The ensemble's membership as ZooKeeper writes it: the text of
/zookeeper/config, of the `conf` four-letter word's membership part and of a
dynamic config file (QuorumMaj and QuorumHierarchical's toString):

    server.1=10.0.0.1:2888:3888:participant;0.0.0.0:2181
    server.2=10.0.0.2:2888:3888|10.1.0.2:2888:3888:observer
    group.1=1:2            (hierarchical quorums only)
    weight.1=1
    version=100000000      (the config's version, in hex)

Servers, groups and weights come in id order (Java's HashMap of small Long
keys iterates so)."""

from .config import PARTICIPANT


def _host(host: str) -> str:
    """InetSocketAddress host as ZooKeeper prints it: IPv6 in brackets."""
    return f"[{host}]" if ":" in host else host


def server_line(spec) -> str:
    """QuorumServer.toString: every address (sorted by host, as ZooKeeper
    sorts them), the role, and the client address if the line gave one."""
    addresses = spec.addresses or ((spec.host, spec.quorum_port, spec.election_port),)
    quorum = sorted((h, q) for h, q, _ in addresses)
    election = sorted((h, e) for h, _, e in addresses)
    text = "|".join(f"{_host(h)}:{q}:{e}" for (h, q), (_, e) in zip(quorum, election))
    text += ":observer" if spec.is_observer else f":{PARTICIPANT}"
    if spec.client_port is not None:
        text += f";{_host(spec.client_host or '0.0.0.0')}:{spec.client_port}"
    return text


def membership_text(config, version: int | None = None) -> str:
    """The membership of config, ending with its version line (no newline)."""
    lines = [f"server.{sid}={server_line(spec)}" for sid, spec in sorted(config.servers.items())]
    if config.groups:
        for gid in sorted(config.groups):
            lines.append(f"group.{gid}=" + ":".join(map(str, sorted(config.groups[gid]))))
        participants = [sid for sid, s in config.servers.items() if not s.is_observer]
        weights = {sid: config.weights.get(sid, 1) for sid in participants}
        weights.update(config.weights)
        lines += [f"weight.{sid}={w}" for sid, w in sorted(weights.items())]
    version = config.config_version if version is None else version
    lines.append(f"version={version:x}")
    return "\n".join(lines)


def set_config_node(tree, text: str, version: int, now_wall_ms: int) -> None:
    """Put the membership in /zookeeper/config as ZooKeeper does when a peer
    takes a configuration (DataTree.processReconfig): the node's mzxid is the
    config's version, its version -1 (set without a txn)."""
    node = tree.nodes["/zookeeper/config"]
    node.data = text.encode()
    node.mzxid = version
    node.mtime = now_wall_ms
    node.version = -1
