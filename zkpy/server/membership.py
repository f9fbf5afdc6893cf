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

from dataclasses import dataclass, field

from ..zab.quorum import QuorumConfig
from .config import (
    PARTICIPANT, ConfigError, iter_properties, normalize_key, parse_membership_lines,
)


@dataclass
class Membership:
    """An ensemble's members (ServerSpec by id), its groups and weights
    (hierarchical quorums) and the version of that configuration."""
    servers: dict
    groups: dict = field(default_factory=dict)
    weights: dict = field(default_factory=dict)
    version: int = 0

    @classmethod
    def of_config(cls, config) -> "Membership":
        return cls(dict(config.servers), dict(config.groups), dict(config.weights),
                   config.config_version)

    @classmethod
    def parse(cls, text, multi_address: bool = True) -> "Membership":
        """The membership a text of server.N, group.N, weight.N and version
        lines describes (/zookeeper/config's data, a dynamic config file,
        a reconfig's new member list).  ConfigError on anything else."""
        if isinstance(text, (bytes, bytearray)):
            text = text.decode("utf-8", "replace")
        lines, version = {}, 0
        for key, value in iter_properties(text):
            norm = normalize_key(key.strip())
            if norm == "version":
                try:
                    version = int(value.strip(), 16)
                except ValueError:
                    raise ConfigError(f"version {value!r} is not hexadecimal",
                                      key="version") from None
            elif norm.startswith(("server.", "group.", "weight.")):
                lines[norm] = (key, value)
            else:
                raise ConfigError(f"unrecognised parameter {key!r}", key=key)
        servers, groups, weights = parse_membership_lines(lines, multi_address)
        return cls(servers, groups, weights, version)

    @property
    def voters(self) -> list:
        return [sid for sid, s in self.servers.items() if not s.is_observer]

    def quorum(self) -> QuorumConfig:
        return QuorumConfig.of(self.voters,
                               [sid for sid, s in self.servers.items() if s.is_observer],
                               self.groups, self.weights, self.version)

    def text(self) -> str:
        return membership_text(self)

    # membership_text reads these names, as it reads a ServerConfig's
    @property
    def config_version(self) -> int:
        return self.version


def read_config(text):
    """The QuorumConfig a membership text describes, or None if it describes
    none (zkpy.zab.peer asks this of reconfigurations and of its peers'
    configurations)."""
    try:
        return Membership.parse(text).quorum()
    except ConfigError:
        return None


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
