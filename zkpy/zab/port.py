"""What the server's roles may ask of an ensemble member's ZAB peer: the port
between the client pipeline and consensus.

A role sends application messages (zkpy.zab.messages) to the leader or to a
learner and asks the leader's peer where its proposals stand.  Each call
that makes the peer send something ends with `process`, the driver's
function that carries out the peer's effects (the asyncio shell's, or the
simulation's).  The port also keeps the leader's proposal sizes (ZooKeeper's
BufferStats), which the driver learns as it encodes proposals.

The leader's txns are proposed once per pass of the event loop: those its
server logs in one pass (the writes of one read from a client, or of one
batch forwarded by a follower) go to each follower as one message, which the
follower logs as one batch and acknowledges with one ACK.  Likewise the
writes a learner forwards in one pass go to the leader as one message.  Per
txn that saves a message's encoding, decoding and handling on every peer."""

from .messages import ForwardRequests
from .peer import ESTABLISHED, FOLLOWING, LEADING, OBSERVING


class ZabPort:
    def __init__(self, core, process, call_soon):
        """core: the ZabPeer; process(): carry out its pending effects;
        call_soon(fn): run fn once the event loop's current pass is done."""
        self.core = core
        self.process = process
        self.call_soon = call_soon
        self.proposing = []     # the leader's txns of this pass, not proposed yet
        self.forwarding = []    # a learner's ForwardRequests of this pass, not sent yet
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
        if self.forwarding:
            self._forward_pass()    # what was forwarded before msg goes first
        core = self.core
        if core.leader_id is not None and core.role in (FOLLOWING, OBSERVING):
            core.send_app(core.leader_id, msg)
            self.process()

    def forward(self, msg):
        """Send a ForwardRequest to the leader with the others of this pass
        (in order with every other message to_leader sends)."""
        if not self.forwarding:
            self.call_soon(self._forward_pass)
        self.forwarding.append(msg)

    def _forward_pass(self):
        msgs, self.forwarding = self.forwarding, []
        if msgs:
            self.to_leader(msgs[0] if len(msgs) == 1 else ForwardRequests(tuple(msgs)))

    def send_app_after_commits(self, to, msg):
        """Send msg to `to` once everything proposed so far is committed
        (how the leader answers a learner's sync)."""
        self.core.send_app_after_commits(to, msg)
        self.process()

    # --- the leader's proposals -------------------------------------------------------------

    def propose(self, txn):
        """Propose a txn of the leader's server (its zxid follows the last
        one's) with the others of this pass."""
        if not self.proposing:
            self.call_soon(self._propose_pass)
        self.proposing.append(txn)

    def _propose_pass(self):
        txns, self.proposing = self.proposing, []
        core = self.core
        # (Nothing left if they were proposed early, see _propose_gathered.)
        # A leader that stepped down in this pass proposes nothing: its
        # server, now looking, has forgotten the requests these answer.
        if txns and core.role == LEADING and core.phase == ESTABLISHED:
            core.propose_all(txns)
            self.process()

    def _propose_gathered(self):
        """What is asked of the proposals below counts every txn prepped so
        far: a sync must cover the writes prepped before it, and a
        reconfiguration must see one prepped before it as pending."""
        if self.proposing:
            self._propose_pass()

    @property
    def last_proposed(self) -> int:
        """The zxid of the leader's last proposal (a sync waits for it)."""
        self._propose_gathered()
        return self.core.last_proposed

    def next_zxid(self) -> int:
        self._propose_gathered()
        return self.core.next_zxid()

    @property
    def config_text(self) -> bytes:
        """The membership in force, as the peer knows it (its text)."""
        self._propose_gathered()
        return self.core.config_text

    def reconfig_pending(self) -> bool:
        """Is a reconfiguration proposed and not yet committed?"""
        self._propose_gathered()
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
