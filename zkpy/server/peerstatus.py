"""What the AdminServer's ensemble commands (leader, zabstate, observers)
say about an ensemble member's ZAB peer, read in one place: the peer's core
(zkpy.zab.peer) changes on its own schedule, and only this module looks
inside it."""

from dataclasses import dataclass

from ..zab.peer import FOLLOWING, LEADING, LOOKING, OBSERVING


@dataclass
class PeerStatus:
    my_id: int
    is_leader: bool
    leader_id: int
    leader_ip: str
    quorum_address: str
    election_address: str
    client_address: str
    voting: bool
    zab_state: str          # QuorumPeer.ZabState, lower case
    synced_observers: int
    state: str              # LOOKING, LEADING, FOLLOWING, OBSERVING
    proposal_sizes: tuple   # a leader's last, min, max proposal size


def _address(host: str, port) -> str:
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port if port is not None else -1}"


def peer_status(peer) -> PeerStatus | None:
    """The status of peer (a QuorumPeer), or None for a standalone server."""
    core = getattr(peer, "core", None)
    if core is None:
        return None
    c = peer.config
    me = c.servers.get(peer.my_id)
    role = core.role
    leader_id = core.leader_id if core.leader_id is not None else -1
    leader = c.servers.get(leader_id)
    if role == LOOKING:
        zab_state = "election"
    elif core.serving:
        zab_state = "broadcast"
    else:
        zab_state = "synchronization"
    counts = core.learner_counts() if role == LEADING else {}
    client = ""
    if me is not None and me.client_port is not None:
        client = _address(me.client_host or "0.0.0.0", me.client_port)
    elif c.client_port is not None:
        client = _address(c.client_port_address or "0.0.0.0", c.client_port)
    return PeerStatus(
        my_id=peer.my_id,
        is_leader=role == LEADING,
        leader_id=leader_id,
        leader_ip=leader.host if leader is not None and role in (LEADING, FOLLOWING, OBSERVING)
        else "",
        quorum_address=_address(me.host, me.quorum_port) if me else "",
        election_address=_address(me.host, me.election_port) if me else "",
        client_address=client,
        voting=me is not None and not me.is_observer,
        zab_state=zab_state,
        synced_observers=counts.get("synced_observers", 0),
        state=role,
        proposal_sizes=tuple(peer.port.proposal_sizes) if peer.port is not None else (-1, -1, -1),
    )
