"""The roles a server plays (see base.Role): standalone, leader, follower,
observer, read-only, and looking (serving nobody).  An ensemble member's
server follows its ZAB peer: follow_peer() swaps the role when the peer's
state changes."""

from ...zab.messages import RoleChanged, Serving
from ...zab.peer import FOLLOWING, LEADING, LOOKING, OBSERVING
from .base import Role
from .leader import LeaderRole
from .learner import FollowerRole, ObserverRole
from .looking import LookingRole, read_only_grace_ms
from .read_only import ReadOnlyRole
from .standalone import StandaloneRole

__all__ = ["Role", "StandaloneRole", "LeaderRole", "FollowerRole", "ObserverRole",
           "ReadOnlyRole", "LookingRole", "follow_peer"]

_SERVING_ROLES = {LEADING: LeaderRole, FOLLOWING: FollowerRole, OBSERVING: ObserverRole}


def follow_peer(server, port, event) -> None:
    """Swap server's role after its peer's RoleChanged or Serving effect."""
    role = server.role
    if event.__class__ is Serving:
        if event.serving:
            server.set_role(_SERVING_ROLES[port.core.role](server, port))
        elif role.serving:
            server.set_role(LookingRole(server))
    elif event.__class__ is RoleChanged:
        if event.role == LOOKING:
            at = None
            if server.config.readonly_mode_enabled:
                at = server.clock.now_ms() + read_only_grace_ms(server.config)
            server.set_role(LookingRole(server, at))
        elif not isinstance(role, LookingRole) or role.read_only_at is not None:
            # A leader was found: no read-only server from now on.
            server.set_role(LookingRole(server))
