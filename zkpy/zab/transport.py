"""Peer links over TCP: one connection per pair of peers, msgpack frames.

The peer with the larger id dials the smaller one (so a pair never ends up
with two connections); the first frame on a connection names the dialer.
Each connection is a FIFO link for zkpy.zab.peer: when it dies, the owner is
told link_down(peer) before anything from a newer connection is delivered, and
a message for a peer with no connection is dropped and reported the same way,
so the state machine never mistakes a gap for a continuation.

Frames for a link are gathered during one pass of the event loop and written
at its end with one write (what one pass makes, say the proposals of a batch
of client writes and the commits of a batch of acks, costs one system call
per follower, not one per message).  A frame that is still being made (the
snapshot of a SYNC by SNAP, serialised off the event loop) can be reserved in
its place: what is sent after it waits for it."""

import asyncio
import logging
import struct

import msgpack

from ..datatree.txn import Txn
from .messages import Hello, from_wire, to_wire

log = logging.getLogger("zkpy.zab")

_LEN = struct.Struct(">I")
_TXN_EXT = 1
MAX_FRAME = 1 << 30


def _default(obj):
    if obj.__class__ is Txn:
        # The txn's own encoding, the bytes its log record holds too.
        return msgpack.ExtType(_TXN_EXT, obj.packed())
    return to_wire(obj)


def _ext_hook(code, data):
    if code == _TXN_EXT:
        return Txn.unpack(data)
    return msgpack.ExtType(code, data)


_packer = msgpack.Packer(default=_default, use_bin_type=True)


def encode(msg) -> bytes:
    """The frame of a message (zkpy.zab.messages): length, then msgpack."""
    body = _packer.pack(to_wire(msg))
    return _LEN.pack(len(body)) + body


def proposal_size(txn) -> int:
    """The size of encode(Proposal(txn)) without its length: a 2-item array,
    the tag, and the txn as an ext (1-byte type, its length in 1, 2 or 4 bytes)."""
    n = len(txn.packed())
    ext = 2 if n in (1, 2, 4, 8, 16) else 3 if n < 256 else 4 if n < 65536 else 6
    return 2 + ext + n


def decode(body: bytes):
    return from_wire(msgpack.unpackb(body, raw=False, ext_hook=_ext_hook, use_list=False,
                                     strict_map_key=False))


class Reserved:
    """The place of a frame not made yet on a link (PeerTransport.reserve)."""
    __slots__ = ("link", "frame")

    def __init__(self, link):
        self.link = link
        self.frame = None


class _PeerProtocol(asyncio.Protocol):
    def __init__(self, transport_owner, peer_id=None):
        self.owner = transport_owner
        self.peer_id = peer_id
        self.transport = None
        self.buf = bytearray()
        self.closed = False
        self.out = []               # frames (bytes or Reserved) not written yet
        self.flush_scheduled = False

    def connection_made(self, transport):
        self.transport = transport
        if self.peer_id is not None:
            transport.write(encode(Hello(self.owner.my_id)))
            self.owner._attach(self.peer_id, self)

    def data_received(self, data):
        self.buf += data
        buf = self.buf
        pos = 0
        while len(buf) - pos >= 4:
            n = _LEN.unpack_from(buf, pos)[0]
            if n > MAX_FRAME:
                self.transport.close()
                return
            if len(buf) - pos - 4 < n:
                break
            try:
                # Decoded in place (a snapshot frame is large); what the
                # message holds is copied out of the buffer.
                with memoryview(buf) as view, view[pos + 4:pos + 4 + n] as body:
                    msg = decode(body)
            except Exception:
                log.warning("undecodable frame from peer %s; closing the link", self.peer_id)
                self.transport.close()
                return
            pos += 4 + n
            if self.peer_id is None:
                if msg.__class__ is not Hello:
                    self.transport.close()
                    return
                self.peer_id = msg.peer_id
                if not self.owner._attach(self.peer_id, self):
                    self.transport.close()
                    return
                continue
            if self.closed:
                return
            self.owner.on_message(self.peer_id, msg)
        del buf[:pos]

    def connection_lost(self, exc):
        self.out.clear()
        if not self.closed:
            self.closed = True
            if self.peer_id is not None:
                self.owner._detach(self.peer_id, self)

    def send(self, frame):
        """Queue a frame (bytes or Reserved); written at the end of this pass."""
        self.out.append(frame)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.owner.loop.call_soon(self.flush)

    def flush(self):
        """Write what is queued, up to the first reserved frame not made yet."""
        self.flush_scheduled = False
        out = self.out
        if not out or self.closed:
            out.clear()
            return
        n = 0
        for i, frame in enumerate(out):
            if frame.__class__ is Reserved:
                if frame.frame is None:
                    break
                out[i] = frame.frame
            n += 1
        if n == 0:
            return
        if n == 1:
            data = out[0]
        else:
            data = b"".join(out[:n])
        del out[:n]
        self.transport.write(data)

    def close(self):
        if not self.closed:
            self.flush()
            self.closed = True
            self.out.clear()
            self.transport.close()


class PeerTransport:
    def __init__(self, my_id, addresses, on_message, on_link_down, retry_s=0.2, security=None,
                 accept_unknown=False, auth=None, listen_on_all_ips=False):
        """addresses: {peer id: (host, quorum port)} for every member, us
        included, or {peer id: [(host, port), ...]} for members with several
        addresses (multiAddress.enabled): a peer listens on each of its own
        and dials another's in turn until one answers.
        security: zkpy.zab.secure_link.LinkSecurity for sslQuorum, else None.
        auth: zkpy.zab.quorum_auth.QuorumLinkAuth, the exchange each new link
        runs (inside TLS) before its first frame; None for none at all.
        listen_on_all_ips (quorumListenOnAllIPs): listen on our ports on
        every address of the machine, not just the ones server.N names."""
        self.security = security
        self.listen_on_all_ips = listen_on_all_ips
        self.auth = auth
        self.my_id = my_id
        self.addresses = {pid: [a] if isinstance(a[0], str) else list(a)
                          for pid, a in addresses.items()}
        # Take links from peers we do not know (a server that is to join by a
        # reconfiguration connects to the leader before it is a member).
        self.accept_unknown = accept_unknown
        self.on_message = on_message
        self.on_link_down = on_link_down
        self.retry_s = retry_s
        self.links: dict[int, _PeerProtocol] = {}
        self.servers = []
        self.tasks = []
        self.loop = None
        self.stopping = False

    async def start(self):
        """Listen on each of our addresses, and dial the peers with smaller ids."""
        self.loop = asyncio.get_running_loop()
        factory = lambda: _PeerProtocol(self)  # noqa: E731
        if self.auth is not None:
            factory = self.auth.accepting_factory(self.loop, factory)
        if self.security is not None:
            factory = self.security.accepting_factory(self.loop, factory)
            if self.security.reloading:
                self.tasks.append(self.loop.create_task(self.security.reload_forever()))
        binds = self.addresses[self.my_id]
        if self.listen_on_all_ips:
            binds = dict.fromkeys((None, port) for _, port in binds)
        for host, port in binds:
            server = await self.loop.create_server(factory, host=host,
                                                   port=port, reuse_address=True)
            self.servers.append(server)
        for pid in self.addresses:
            if pid < self.my_id:
                self.tasks.append(self.loop.create_task(self._dial(pid)))

    def update_addresses(self, addresses) -> None:
        """A new membership: dial its new members (the smaller ids); a known
        peer keeps its link (a removed one may go on as a learner)."""
        for pid, a in addresses.items():
            new = [a] if isinstance(a[0], str) else list(a)
            known = pid in self.addresses
            self.addresses[pid] = new
            if not known and pid < self.my_id and not self.stopping:
                self.tasks.append(self.loop.create_task(self._dial(pid)))

    async def _dial(self, pid):
        addresses = self.addresses[pid]
        turn = 0
        while not self.stopping:
            if pid not in self.links:
                host, port = addresses[turn % len(addresses)]
                make = lambda: _PeerProtocol(self, pid)  # noqa: E731
                try:
                    if self.auth is not None:
                        await self.auth.dial(self._connect, make, host, port)
                    else:
                        await self._connect(make, host, port)
                except (OSError, asyncio.TimeoutError):
                    turn += 1      # that address does not answer: the next one next time
            await asyncio.sleep(self.retry_s)

    async def _connect(self, make, host, port):
        if self.security is not None:
            await self.security.dial(self.loop, make, host, port)
        else:
            await self.loop.create_connection(make, host, port)

    def _attach(self, pid, proto) -> bool:
        if pid == self.my_id or (pid not in self.addresses and not self.accept_unknown):
            return False
        old = self.links.get(pid)
        if old is not None and old is not proto:
            old.close()
            self.links.pop(pid, None)
            self.on_link_down(pid)
        self.links[pid] = proto
        return True

    def _detach(self, pid, proto):
        if self.links.get(pid) is proto:
            del self.links[pid]
            if not self.stopping:
                self.on_link_down(pid)

    def send(self, to, msg) -> None:
        self.send_frame(to, None, msg)

    def _link_for(self, to):
        link = self.links.get(to)
        if link is None or link.closed:
            # Nothing can carry it: tell the state machine the link is down.
            if not self.stopping:
                self.loop.call_soon(self.on_link_down, to)
            return None
        return link

    def send_frame(self, to, frame, msg=None) -> None:
        """Send an encoded frame (or msg, encoded only if a link can carry it):
        a message for several peers is encoded once for all of them."""
        link = self._link_for(to)
        if link is not None:
            link.send(frame if frame is not None else encode(msg))

    def reserve(self, to):
        """Hold the place of a frame for `to` that is not made yet: frames sent
        to it later wait until fill() (None if there is no link: reported
        down, as for a send)."""
        link = self._link_for(to)
        if link is None:
            return None
        place = Reserved(link)
        link.send(place)
        return place

    def fill(self, place, frame) -> None:
        """The reserved frame is made: send it and what waited for it."""
        place.frame = frame
        link = place.link
        if not link.closed and not link.flush_scheduled:
            link.flush_scheduled = True
            self.loop.call_soon(link.flush)

    def drop(self, place) -> None:
        """The reserved frame cannot be made: close its link (the peer starts
        over, as after any broken link)."""
        link = place.link
        if not link.closed:
            link.out.clear()
            link.closed = True
            link.transport.close()
            if link.peer_id is not None:
                self._detach(link.peer_id, link)

    async def stop(self):
        self.stopping = True
        for t in self.tasks:
            t.cancel()
        if self.auth is not None:
            self.auth.close()
        for link in list(self.links.values()):
            link.close()
        self.links.clear()
        for s in self.servers:
            s.close()
