"""Every message that crosses a peer link, and every effect a ZabPeer asks
its driver to carry out, as named types.

Three families:

  * ZAB messages (peer to peer): election, discovery, synchronisation and
    broadcast.  See zkpy.zab.peer for who sends what when.
  * Application messages, carried inside App: what the servers of an
    ensemble say to each other about clients (a follower forwarding a write,
    a new session, a revalidation, touches, a sync) -- see zkpy.server.roles.
  * Effects (peer to driver, never on the wire): send, log, apply, ...

Nothing here knows about bytes.  The transport (zkpy.zab.transport) puts a
message on the wire as a msgpack array [tag, field, field, ...] with
to_wire() and reads it back with from_wire(); a txn travels as its own
packed encoding, the bytes its log record holds.  Tags are this module's
alone: peers talk to peers of the same zkpy version.

Messages are plain slotted dataclasses: cheaper to make than a NamedTuple
(a proposal, its sends and its effects are made for every write), and a
misspelt field is an error at once rather than a wrong index."""

from dataclasses import dataclass, field, fields

# --- the wire registry ----------------------------------------------------------------------

_BY_TAG: dict = {}
_TO_WIRE: dict = {}     # class -> function(msg) -> (tag, field, ...)
_FROM_WIRE: dict = {}   # tag -> function(items) -> msg


def _compile(name, source, env):
    """A small function made from source: a message is put on the wire and
    read back once per hop (a proposal, an ack, a commit for every write), and
    a function that names its fields outright is several times cheaper than
    a generic loop over them (the same trick dataclasses use for __init__)."""
    namespace = dict(env)
    exec(source, namespace)   # noqa: S102 - source built here from field names only
    return namespace[name]


def message(tag: int):
    """Make cls a slotted dataclass that travels on peer links under tag."""
    def wrap(cls):
        cls = dataclass(slots=True)(cls)
        if tag in _BY_TAG:
            raise ValueError(f"tag {tag} is taken by {_BY_TAG[tag].__name__}")
        cls.TAG = tag
        _BY_TAG[tag] = cls
        names = [f.name for f in fields(cls)]
        _TO_WIRE[cls] = _compile(
            "to_wire", f"def to_wire(m): return ({tag}, {''.join(f'm.{n}, ' for n in names)})",
            {})
        if "_from_wire" in cls.__dict__:
            _FROM_WIRE[tag] = lambda items, read=cls._from_wire: read(items[1:])
        else:
            args = ", ".join(f"items[{i}]" for i in range(1, len(names) + 1))
            _FROM_WIRE[tag] = _compile("from_wire", f"def from_wire(items): return cls({args})",
                                       {"cls": cls})
        return cls
    return wrap


def to_wire(msg):
    """The msgpack-ready form of a message: (tag, fields...).  Also the
    packer's `default`, so a message inside a message (an App's payload) is
    turned into its own array as the packer meets it."""
    make = _TO_WIRE.get(msg.__class__)
    if make is None:
        raise TypeError(f"not a peer message: {type(msg).__name__}")
    return make(msg)


def from_wire(items):
    """The message whose wire form is items (a sequence [tag, fields...])."""
    read = _FROM_WIRE.get(items[0]) if items else None
    if read is None:
        raise ValueError(f"unknown peer message {items[:1]!r}")
    return read(items)


# --- transport -------------------------------------------------------------------------------

@message(1)
class Hello:
    """The first frame on a new link: who dialled."""
    peer_id: int


# --- election --------------------------------------------------------------------------------

@message(10)
class Vote:
    """A peer's vote (epoch, zxid, leader) in election round `round`, and its
    own state: LOOKING, or FOLLOWING/LEADING/OBSERVING once it has decided.
    config: the membership the sender has committed (its text, version
    included), so that a peer that missed a reconfiguration learns it."""
    epoch: int
    zxid: int
    leader: int
    round: int
    state: str
    config: bytes = None


# --- discovery and synchronisation -------------------------------------------------------------

@message(20)
class FollowerInfo:
    """A learner to the leader it chose.  attempt tells answers to different
    FOLLOWERINFOs apart (they are resent until one is answered)."""
    accepted_epoch: int
    last_zxid: int
    observer: bool
    attempt: int


@message(21)
class LeaderInfo:
    """The leader's answer: the epoch it proposes."""
    new_epoch: int
    attempt: int


@message(22)
class AckEpoch:
    """A learner accepts the new epoch and says what history it holds."""
    current_epoch: int
    last_zxid: int


# Kinds of Sync.
DIFF = "DIFF"     # the txns after the learner's last zxid
TRUNC = "TRUNC"   # drop what is after zxid first, then the txns
SNAP = "SNAP"     # the whole tree at zxid (in `snapshot`), then the txns


@message(23)
class Sync:
    """Brings a learner to the leader's history.  Txns up to `settled` are
    the leader's committed history, later ones are proposals.  A SNAP's
    snapshot bytes travel in the same frame; the driver keeps them aside
    (the state machine never sees them: snapshot is None there)."""
    kind: str
    zxid: int
    txns: list
    settled: int
    snapshot: bytes = None

    @classmethod
    def _from_wire(cls, items):
        kind, zxid, txns, settled, snapshot = items
        return cls(kind, zxid, list(txns), settled, snapshot)


@message(24)
class NewLeader:
    """Everything of the sync has been sent; ack once it is durable.
    config: the leader's latest membership (a reconfiguration it proposed
    and may not have committed yet included), which the learner takes too."""
    zxid: int
    config: bytes = None


@message(25)
class UpToDate:
    """The leader is established: the learner may serve clients."""


# --- broadcast ---------------------------------------------------------------------------------

@message(30)
class Proposal:
    txn: object


@message(36)
class Proposals:
    """Several proposals, in zxid order: what a leader proposed in one pass
    of its event loop travels as one message (one decode, one log batch,
    one ACK at the follower)."""
    txns: tuple


@message(31)
class Ack:
    """Every txn up to zxid is durable at the sender (or, for NEWLEADER's
    zxid, the sync is)."""
    zxid: int


@message(32)
class Commit:
    """Every proposal up to zxid is committed.  digest: the leader's tree
    digest once it has applied zxid (stamped as the commit goes out; None
    where the digest is off), which the learner compares with its own.
    leader: for the commit of a reconfiguration, the leader of the new
    configuration (ZooKeeper's COMMITANDACTIVATE); None otherwise."""
    zxid: int
    digest: int = None
    leader: int = None


@message(33)
class Inform:
    """A committed txn, for an observer (it got no proposal), with the
    leader's tree digest after it and, for a reconfiguration, the new
    configuration's leader (as Commit's)."""
    txn: object
    digest: int = None
    leader: int = None


@message(37)
class Informs:
    """Committed txns for an observer, in zxid order (those one commit of the
    leader covers, up to the next message held for that observer), with
    the leader's tree digest after the last of them and, for a
    reconfiguration that is the last, the new configuration's leader (as
    Inform's)."""
    txns: tuple
    digest: int = None
    leader: int = None


@message(34)
class Ping:
    pass


@message(35)
class App:
    """An application message between the servers (one of the types below)."""
    payload: object

    @classmethod
    def _from_wire(cls, items):
        return cls(from_wire(items[0]))


# --- application messages: followers and observers with their leader -------------------------

@message(50)
class ForwardRequest:
    """A learner's client wrote: the leader preps it (as if its own client's)
    and the learner answers when the txn (session_id, cxid) is applied."""
    session_id: int
    cxid: int
    op: int
    payload: bytes
    auth_ids: list


@message(57)
class ForwardRequests:
    """Several ForwardRequests, in the order the learner's clients sent them:
    the writes a learner forwards in one pass of its event loop."""
    requests: tuple

    @classmethod
    def _from_wire(cls, items):
        return cls(tuple(from_wire(r) for r in items[0]))


@message(51)
class CreateSession:
    """A learner's client asked for a new session (its id made by the learner)."""
    session_id: int
    timeout: int


@message(52)
class Revalidate:
    """May a client resume session_id through the sender?  token pairs the answer."""
    session_id: int
    timeout: int
    token: int


@message(53)
class Revalidated:
    token: int
    valid: bool


@message(54)
class Touch:
    """Sessions that showed signs of life at the sender since its last Touch."""
    session_ids: list = field(default_factory=list)

    @classmethod
    def _from_wire(cls, items):
        return cls(list(items[0]))


@message(55)
class SyncRequest:
    """A learner's client asked for sync."""
    session_id: int
    cxid: int


@message(56)
class Synced:
    """The leader's answer, once everything proposed before it is committed:
    the learner answers its client once it has applied up to zxid."""
    session_id: int
    cxid: int
    zxid: int


# --- effects: what a ZabPeer asks its driver to do, in order -----------------------------------

@dataclass(slots=True)
class Send:
    """Send msg to peer `to` over the FIFO link."""
    to: int
    msg: object


@dataclass(slots=True)
class Log:
    """Append txns to the log; report durability with ZabPeer.logged(zxid)."""
    txns: list


@dataclass(slots=True)
class Truncate:
    """Drop logged txns after zxid (the tree was never ahead of it)."""
    zxid: int


@dataclass(slots=True)
class InstallSnapshot:
    """Replace the tree and the log with the snapshot that came with the Sync
    for zxid."""
    zxid: int


@dataclass(slots=True)
class Apply:
    """Apply a committed txn to the tree (in zxid order)."""
    txn: object


@dataclass(slots=True)
class CheckDigest:
    """The txn zxid is applied: compare the tree's digest with the leader's."""
    zxid: int
    digest: int


@dataclass(slots=True)
class Epochs:
    """Persist both epochs before going on."""
    accepted: int
    current: int


@dataclass(slots=True)
class Reconfigured:
    """A new membership (its text, version included): seen in a proposal
    (committed False: ZooKeeper's zoo.cfg.dynamic.next) or now in force
    (committed True: the links, the dynamic config file, the client port
    follow it)."""
    config: bytes
    committed: bool


@dataclass(slots=True)
class RoleChanged:
    """The peer is now LOOKING, FOLLOWING, LEADING or OBSERVING."""
    role: str
    leader: int
    epoch: int


@dataclass(slots=True)
class Serving:
    """The peer may (True) or may no longer (False) serve clients."""
    serving: bool


@dataclass(slots=True)
class Deliver:
    """An application message from peer `frm` for the server."""
    frm: int
    payload: object
