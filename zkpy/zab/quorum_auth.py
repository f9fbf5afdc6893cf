"""Quorum SASL on the peer links (quorum.auth.*): which peers may join,
settled before the first ZAB frame of a link.

ZooKeeper authenticates two kinds of connection between its peers: an
election connection (kept only when the larger server id dialled it; the
dialler is the learner, the other end the server) and a learner's
connection to its leader (the learner dials).  zkpy has one link per pair
of peers carrying both, dialled by the larger id, and any peer may come to
lead the other, so each link runs the exchange once in each direction:
first the dialler authenticates to the listener, then the listener to the
dialler.  Each direction follows SaslQuorumAuthLearner and
SaslQuorumAuthServer:

* the learner authenticates only with quorum.auth.learnerRequireSasl
  (ZooKeeper's learner then sends nothing; ours says it does not);
* the server refuses a learner that does not authenticate only with
  quorum.auth.serverRequireSasl, and lets it through otherwise (what an
  ensemble needs while SASL is being turned on, peer by peer);
* DIGEST-MD5 ("zookeeper-quorum", "zk-quorum-sasl-md5") with the learner's
  QuorumLearner username and password against the server's QuorumServer
  user_NAME entries; or GSSAPI when the sections log in with Krb5LoginModule:
  the learner, as its principal, asks for a ticket to
  quorum.auth.kerberos.servicePrincipal (service/_HOST takes the peer's host
  from its server.N line), and the server accepts it as its own principal
  and takes only a learner of a host of the ensemble.  A failure is an
  ERROR, after which the learner gives up, even when the server would have
  kept it;
* a peer without quorum.auth.enableSasl neither authenticates nor checks; a
  learner that tries to authenticate to it fails (in ZooKeeper its packet
  is not understood and the connection breaks).

A link refused in either direction is closed before the dialler's Hello:
that pair of peers can neither vote together nor follow one another.  Each
end logs why, at warning level once per peer address, then at debug.

Every zkpy peer runs this exchange on each link, with or without quorum
SASL (one more round trip when a link is made), so that peers with and
without it can share an ensemble.

Frames: a 4-byte length, then ZooKeeper's QUORUM_AUTH_MAGIC_NUMBER (8
bytes), a status (4), the sender's server id (8) and the token (the rest).
The statuses are ZooKeeper's (0 in progress, 1 success, -1 error) and two
of zkpy's: NO_AUTH (a learner that does not authenticate) and LET_THROUGH
(a server that accepts it so).

:class:`LinkHandshake` is the exchange without I/O; :class:`QuorumLinkAuth`
puts it on the event loop, in front of the transport's link protocol.
"""

from __future__ import annotations

import asyncio
import logging
import struct

from ..security.sasl import (
    QUORUM_ERROR,
    QUORUM_IN_PROGRESS,
    QUORUM_SUCCESS,
    QuorumAuthLearner,
    QuorumAuthServer,
)
from ..security.sasl_digest import SaslAuthFailed

log = logging.getLogger("zkpy.zab")

__all__ = ["QuorumLinkAuth", "LinkHandshake", "auth_frame", "MAGIC"]

# QuorumAuth.QUORUM_AUTH_MAGIC_NUMBER, -0xa0dbcafecafe1234L in Java (a long that wraps)
MAGIC = 0x5F2435013501EDCC
NO_AUTH, LET_THROUGH = 2, 3
_HEAD = struct.Struct(">IqiQ")       # length, magic, status, server id
_LEN = struct.Struct(">I")
MAX_FRAME = 65536                    # tokens are small (DIGEST-MD5: well under 4 KiB)
EXCHANGE_TIMEOUT_S = 10.0

_NAMES = {QUORUM_IN_PROGRESS: "IN_PROGRESS", QUORUM_SUCCESS: "SUCCESS", QUORUM_ERROR: "ERROR",
          NO_AUTH: "NO_AUTH", LET_THROUGH: "LET_THROUGH"}


def auth_frame(status: int, sid: int, token: bytes = b"") -> bytes:
    return _HEAD.pack(_HEAD.size - 4 + len(token), MAGIC, status, sid) + token


class Refused(Exception):
    """The link may not carry ZAB messages; the text says why."""


class LinkHandshake:
    """One link's exchange, both directions: frames in, frames out.

    start() once the connection is up, then receive() each frame of the
    other end; after each call, ``take()`` gives the frames to write.
    ``done`` once both directions are settled; Refused is raised (after the
    frames that tell the other end, if any, are queued) when the link must
    be closed."""

    def __init__(self, server: QuorumAuthServer | None, learner: QuorumAuthLearner | None,
                 my_id: int, dialer: bool, host_of=None):
        """host_of(server id): the host of that server's server.N line, or
        None; a Kerberos learner authenticates to the principal of the host
        it dialled, or of the dialler's line (quorum.auth.kerberos.servicePrincipal
        with _HOST)."""
        self._server = server
        self._learner = learner
        self._my_id = my_id
        self._host_of = host_of or (lambda sid: None)
        self.dialer = dialer
        self.peer_host = ""           # the host dialled, or the dialler's address
        self.done = False
        self.peer_id: int | None = None
        self.authenticated_as: str | None = None   # the other end's name, if it authenticated
        self._out: list[bytes] = []
        self._role = None             # "learner" or "server": the direction under way
        self._client = None           # our DigestMD5Client while we authenticate
        self._exchange = None         # the other end's QuorumExchange while it does

    def take(self) -> list[bytes]:
        out, self._out = self._out, []
        return out

    def _send(self, status: int, token: bytes = b"") -> None:
        self._out.append(auth_frame(status, self._my_id, token))

    def start(self) -> None:
        if self.dialer:
            self._open_as_learner()
        else:
            self._role = "server"

    def receive(self, status: int, sid: int, token: bytes) -> None:
        if self.done:
            raise Refused("a quorum auth frame after the exchange")
        if self.peer_id is None:
            self.peer_id = sid
        if self._role == "learner":
            self._as_learner(status, token)
        else:
            self._as_server(status, token)

    # --- we authenticate to the other end (SaslQuorumAuthLearner) ------------------------

    def _open_as_learner(self) -> None:
        self._role = "learner"
        learner = self._learner
        if learner is None or not learner.require:
            self._send(NO_AUTH)
            return
        host = self.peer_host
        if not self.dialer and self.peer_id is not None:
            host = self._host_of(self.peer_id) or host
        try:
            self._client = learner.new_client(host)
            self._send(QUORUM_IN_PROGRESS, self._client.initial_response())
        except SaslAuthFailed as e:
            raise Refused(f"cannot start authenticating to the peer: {e}") from None

    def _as_learner(self, status: int, token: bytes) -> None:
        client = self._client
        if status == QUORUM_ERROR:
            if client is None:
                raise Refused("the peer requires quorum SASL (quorum.auth.serverRequireSasl) "
                              "and this peer does not authenticate "
                              "(quorum.auth.learnerRequireSasl is false)")
            raise Refused("authentication failed against the peer (its QuorumServer section "
                          "does not accept our QuorumLearner credentials, or it has no quorum "
                          "SASL)")
        if client is None:
            if status != LET_THROUGH:
                raise Refused(f"unexpected {_NAMES.get(status, status)} from the peer")
        else:
            try:
                if status == QUORUM_IN_PROGRESS:
                    self._send(QUORUM_IN_PROGRESS, client.step(token) or b"")
                    return
                if status != QUORUM_SUCCESS:
                    raise Refused(f"unexpected {_NAMES.get(status, status)} from the peer")
                if client.step(token) is not None or not client.complete:
                    raise Refused("protocol error: a response after completion")
            except SaslAuthFailed as e:
                raise Refused(f"the peer's answer does not check out: {e}") from None
        self._settled()

    # --- the other end authenticates to us (SaslQuorumAuthServer) ------------------------

    def _as_server(self, status: int, token: bytes) -> None:
        server = self._server
        if self._exchange is None:
            if status == NO_AUTH:
                if server is not None and server.require:
                    self._send(QUORUM_ERROR)
                    raise Refused("learner not trying to authenticate and authentication is "
                                  "required (quorum.auth.serverRequireSasl)")
                self._send(LET_THROUGH)
                self._settled()
                return
            if status != QUORUM_IN_PROGRESS:
                raise Refused(f"unexpected {_NAMES.get(status, status)} from the peer")
            if server is None:
                self._send(QUORUM_ERROR)
                raise Refused("the peer authenticates, but quorum.auth.enableSasl is false here")
            self._exchange = server.new_exchange()
        elif status != QUORUM_IN_PROGRESS:
            raise Refused(f"unexpected {_NAMES.get(status, status)} from the peer")
        answer, challenge = self._exchange.handle(token)
        self._send(answer, challenge)
        if answer == QUORUM_ERROR:
            raise Refused(f"failed to authenticate using SASL: {self._exchange.failure}")
        if answer == QUORUM_SUCCESS:
            self.authenticated_as = self._exchange.authorization_id
            self._settled()

    # ---------------------------------------------------------------------------------------

    def _settled(self) -> None:
        """One direction is settled: the dialler's is first, the listener's second."""
        first = (self._role == "learner") == self.dialer
        if not first:
            self.done = True
        elif self.dialer:
            self._role = "server"
        else:
            self._open_as_learner()


class QuorumLinkAuth:
    """quorum.auth.* for the peer links, read (and checked) at startup."""

    def __init__(self, my_id: int, server: QuorumAuthServer | None = None,
                 learner: QuorumAuthLearner | None = None,
                 timeout_s: float = EXCHANGE_TIMEOUT_S, host_of=None):
        self.my_id = my_id
        self.server = server
        self.learner = learner
        self.host_of = host_of
        self.timeout_s = timeout_s
        self._logged: set[str] = set()
        self._pending: set[_AuthLink] = set()

    @classmethod
    def from_config(cls, config) -> "QuorumLinkAuth":
        """Without quorum.auth.enableSasl: a peer that neither authenticates
        nor checks (ZooKeeper's NullQuorumAuthServer/Learner)."""
        def host_of(sid):
            # config.servers follows the membership in force.
            spec = config.servers.get(sid)
            return spec.host if spec is not None else None

        return cls(config.my_id, QuorumAuthServer.from_config(config),
                   QuorumAuthLearner.from_config(config), host_of=host_of)

    def handshake(self, dialer: bool) -> LinkHandshake:
        return LinkHandshake(self.server, self.learner, self.my_id, dialer, self.host_of)

    def refused(self, address: str, why: str) -> None:
        if address not in self._logged:
            self._logged.add(address)
            log.warning("quorum SASL: link with %s refused: %s", address, why)
        else:
            log.debug("quorum SASL: link with %s refused: %s", address, why)

    # --- the two ends ------------------------------------------------------------------------

    def accepting_factory(self, loop, make_protocol):
        """A protocol factory for the listener: the exchange, then make_protocol()."""
        return lambda: _AuthLink(self, loop, make_protocol, dialer=False)

    async def dial(self, connect, make_protocol, host: str, port: int) -> None:
        """connect(factory, host, port) (plain or TLS), then the exchange; the
        link's protocol is connected only if both ends accept.  Raises
        OSError (ConnectionRefusedError) if they do not."""
        link = _AuthLink(self, asyncio.get_running_loop(), make_protocol, dialer=True,
                         address=f"{host}:{port}")
        link.shake.peer_host = host
        await connect(lambda: link, host, port)
        await link.verdict

    def close(self) -> None:
        """Drop the links still in their exchange (the transport stops)."""
        for link in list(self._pending):
            link.abandon()


class _AuthLink(asyncio.Protocol):
    """Runs the exchange on a new connection, then hands the connection to
    the link's own protocol (the transport is given the new protocol, so
    nothing of this stays on the path of ZAB frames)."""

    def __init__(self, auth: QuorumLinkAuth, loop, make_protocol, *, dialer: bool,
                 address: str | None = None):
        self.auth = auth
        self.loop = loop
        self.make_protocol = make_protocol
        self.address = address
        self.shake = auth.handshake(dialer)
        self.transport = None
        self.buf = bytearray()
        self.timer = None
        self.inner = None
        self.over = False
        self.verdict = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        if self.address is None:
            peer = transport.get_extra_info("peername") or ("?",)
            self.address = self.shake.peer_host = str(peer[0])
        self.auth._pending.add(self)
        self.timer = self.loop.call_later(self.auth.timeout_s, self._timed_out)
        try:
            self.shake.start()
        except Refused as e:
            self._refuse(str(e))
            return
        self._write()

    def data_received(self, data):
        if self.inner is not None:        # a transport without set_protocol
            self.inner.data_received(data)
            return
        if self.over:
            return
        buf = self.buf
        buf += data
        pos = 0
        try:
            while len(buf) - pos >= 4:
                n = _LEN.unpack_from(buf, pos)[0]
                if n > MAX_FRAME or n < _HEAD.size - 4:
                    raise Refused("not a quorum auth frame (is the peer a zkpy peer of "
                                  "this version?)")
                if len(buf) - pos - 4 < n:
                    break
                _, magic, status, sid = _HEAD.unpack_from(buf, pos)
                if magic != MAGIC:
                    raise Refused("not a quorum auth frame (is the peer a zkpy peer of "
                                  "this version?)")
                token = bytes(buf[pos + _HEAD.size:pos + 4 + n])
                pos += 4 + n
                self.shake.receive(status, sid, token)
                self._write()
                if self.shake.done:
                    self._hand_over(bytes(buf[pos:]))
                    return
        except Refused as e:
            self._write()
            self._refuse(str(e))
            return
        del buf[:pos]

    def connection_lost(self, exc):
        if self.inner is not None:
            self.inner.connection_lost(exc)
            return
        if not self.over:
            self._finish(Refused("the connection closed during the quorum auth exchange"),
                         log_it=self.shake.peer_id is not None)

    def eof_received(self):
        return False

    def abandon(self):
        if not self.over:
            self._finish(Refused("stopping"), log_it=False)
            self.transport.close()

    # ---------------------------------------------------------------------------------------

    def _write(self):
        frames = self.shake.take()
        if frames and self.transport is not None:
            self.transport.write(b"".join(frames))

    def _who(self) -> str:
        pid = self.shake.peer_id
        return f"peer {pid} at {self.address}" if pid is not None else self.address

    def _timed_out(self):
        self.timer = None
        if not self.over:
            self._refuse(f"no quorum auth exchange within {self.auth.timeout_s:.0f} s")

    def _refuse(self, why: str):
        self._finish(Refused(why))
        self.transport.close()     # after what is queued (an ERROR for the other end)

    def _finish(self, refused: Refused | None, log_it: bool = True):
        self.over = True
        self.auth._pending.discard(self)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if refused is not None:
            if log_it:
                self.auth.refused(self._who(), str(refused))
            if not self.verdict.done():
                self.verdict.set_exception(ConnectionRefusedError(str(refused)))
                self.verdict.exception()    # retrieved: nobody may be waiting (listener)
        elif not self.verdict.done():
            self.verdict.set_result(None)

    def _hand_over(self, rest: bytes):
        self._finish(None)
        who = self.shake.authenticated_as
        if who is not None:
            log.info("quorum SASL: %s authenticated as %s", self._who(), who)
        proto = self.make_protocol()
        transport = self.transport
        set_protocol = getattr(transport, "set_protocol", None)
        if set_protocol is not None:
            set_protocol(proto)
        else:
            self.inner = proto
        proto.connection_made(transport)
        if rest:
            proto.data_received(rest)
