"""An ensemble member that serves nobody: its peer is looking for a leader,
or is syncing with one.  Its clients are closed when it starts, and the
requests they were waiting for are forgotten.

With readonlymode.enabled, a peer that has been looking for
max(2000 ms, tickTime) -- cut off from its quorum -- starts serving
read-only clients (QuorumPeer's roZkMgr), until it finds a leader."""

from .base import Role
from .read_only import ReadOnlyRole


class LookingRole(Role):
    mode = "looking"

    def __init__(self, server, read_only_at=None):
        """read_only_at: the monotonic ms at which to serve read-only clients
        (None: never, say because a leader has been found)."""
        super().__init__(server)
        self.read_only_at = read_only_at

    def enter(self):
        self.server.close_connections()
        self.server.waiting.clear()

    def tick(self, now_ms):
        if self.read_only_at is not None and now_ms >= self.read_only_at:
            self.server.set_role(ReadOnlyRole(self.server))

    def monitor_values(self) -> list:
        return [("peer_state", "looking - election"),
                ("quorum_size", len(self.server.config.participants))]


def read_only_grace_ms(config) -> int:
    """How long a looking peer waits before it serves read-only clients."""
    return max(2000, config.tick_time)
