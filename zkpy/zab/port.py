"""What the server's roles may ask of an ensemble member's ZAB peer: the port
between the client pipeline and consensus.

A role sends application messages (zkpy.zab.messages) to the leader or to a
learner and asks the leader's peer where its proposals stand.  Each call
that makes the peer send something ends with `process`, the driver's
function that carries out the peer's effects (the asyncio shell's, or the
simulation's).  The port also keeps the leader's proposal sizes (ZooKeeper's
BufferStats), which the driver learns as it encodes proposals."""

from .peer import FOLLOWING, OBSERVING


class ZabPort:
    def __init__(self, core, process):
        """core: the ZabPeer; process(): carry out its pending effects."""
        self.core = core
        self.process = process
        self.proposal_sizes = [-1, -1, -1]   # last, min, max; -1 until one

    @property
    def my_id(self) -> int:
        return self.core.id

    # --- application messages ---------------------------------------------------------------

    def send_app(self, to, msg):
        self.core.send_app(to, msg)
        self.process()

    def to_leader(self, msg):
        """Send msg to the leader this learner follows (dropped if none: the
        peer is looking, and its clients are being closed)."""
        core = self.core
        if core.leader_id is not None and core.role in (FOLLOWING, OBSERVING):
            core.send_app(core.leader_id, msg)
            self.process()

    def send_app_after_commits(self, to, msg):
        """Send msg to `to` once everything proposed so far is committed
        (how the leader answers a learner's sync)."""
        self.core.send_app_after_commits(to, msg)
        self.process()

    # --- the leader's proposals -------------------------------------------------------------

    @property
    def last_proposed(self) -> int:
        """The zxid of the leader's last proposal (a sync waits for it)."""
        return self.core.last_proposed

    def next_zxid(self) -> int:
        return self.core.next_zxid()

    @property
    def config_text(self) -> bytes:
        """The membership in force, as the peer knows it (its text)."""
        return self.core.config_text

    def reconfig_pending(self) -> bool:
        """Is a reconfiguration proposed and not yet committed?"""
        return self.core.next_quorum is not None

    def synced_voters(self) -> set:
        """The leader and the followers connected and synced with it."""
        return self.core.synced_followers() | {self.core.id}

    def held_app_messages(self) -> int:
        return self.core.held_app_messages()

    def learner_counts(self) -> dict:
        return self.core.learner_counts()

    def note_proposal_size(self, size: int):
        last, lo, hi = self.proposal_sizes
        self.proposal_sizes = [size, size if lo < 0 else min(lo, size), max(hi, size)]

    def reset_proposal_sizes(self):
        self.proposal_sizes = [-1, -1, -1]
