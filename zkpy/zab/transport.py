"""Peer links over TCP: one connection per pair of peers, msgpack frames.

The peer with the larger id dials the smaller one (so a pair never ends up
with two connections); the first frame on a connection names the dialer.
Each connection is a FIFO link for zkpy.zab.peer: when it dies, the owner is
told link_down(peer) before anything from a newer connection is delivered, and
a message for a peer with no connection is dropped and reported the same way,
so the state machine never mistakes a gap for a continuation."""

import asyncio
import logging
import struct

import msgpack

from ..datatree.txn import Txn

log = logging.getLogger("zkpy.zab")

_LEN = struct.Struct(">I")
_TXN_EXT = 1
MAX_FRAME = 1 << 30


def _default(obj):
    if isinstance(obj, Txn):
        return msgpack.ExtType(_TXN_EXT, msgpack.packb(obj.to_list(), use_bin_type=True))
    raise TypeError(f"cannot encode {type(obj).__name__}")


def _ext_hook(code, data):
    if code == _TXN_EXT:
        return Txn.from_list(msgpack.unpackb(data, raw=False))
    return msgpack.ExtType(code, data)


def encode(msg) -> bytes:
    body = msgpack.packb(msg, default=_default, use_bin_type=True)
    return _LEN.pack(len(body)) + body


def decode(body: bytes):
    msg = msgpack.unpackb(body, raw=False, ext_hook=_ext_hook, strict_map_key=False)
    return tuple(msg) if isinstance(msg, list) else msg


class _PeerProtocol(asyncio.Protocol):
    def __init__(self, transport_owner, peer_id=None):
        self.owner = transport_owner
        self.peer_id = peer_id
        self.transport = None
        self.buf = bytearray()
        self.closed = False

    def connection_made(self, transport):
        self.transport = transport
        if self.peer_id is not None:
            transport.write(encode(("HELLO", self.owner.my_id)))
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
            body = bytes(buf[pos + 4:pos + 4 + n])
            pos += 4 + n
            try:
                msg = decode(body)
            except Exception:
                log.warning("undecodable frame from peer %s; closing the link", self.peer_id)
                self.transport.close()
                return
            if self.peer_id is None:
                if not (isinstance(msg, tuple) and msg and msg[0] == "HELLO"):
                    self.transport.close()
                    return
                self.peer_id = msg[1]
                if not self.owner._attach(self.peer_id, self):
                    self.transport.close()
                    return
                continue
            if self.closed:
                return
            self.owner.on_message(self.peer_id, msg)
        del buf[:pos]

    def connection_lost(self, exc):
        if not self.closed:
            self.closed = True
            if self.peer_id is not None:
                self.owner._detach(self.peer_id, self)

    def send(self, frame):
        self.transport.write(frame)

    def close(self):
        if not self.closed:
            self.closed = True
            self.transport.close()


class PeerTransport:
    def __init__(self, my_id, addresses, on_message, on_link_down, retry_s=0.2):
        """addresses: {peer id: (host, quorum port)} for every member, us included."""
        self.my_id = my_id
        self.addresses = addresses
        self.on_message = on_message
        self.on_link_down = on_link_down
        self.retry_s = retry_s
        self.links: dict[int, _PeerProtocol] = {}
        self.servers = []
        self.tasks = []
        self.loop = None
        self.stopping = False

    async def start(self, listen_ports):
        self.loop = asyncio.get_running_loop()
        host = self.addresses[self.my_id][0]
        for port in listen_ports:
            server = await self.loop.create_server(lambda: _PeerProtocol(self), host=host,
                                                   port=port, reuse_address=True)
            self.servers.append(server)
        for pid in self.addresses:
            if pid < self.my_id:
                self.tasks.append(self.loop.create_task(self._dial(pid)))

    async def _dial(self, pid):
        host, port = self.addresses[pid]
        while not self.stopping:
            if pid not in self.links:
                try:
                    await self.loop.create_connection(lambda: _PeerProtocol(self, pid), host, port)
                except OSError:
                    pass
            await asyncio.sleep(self.retry_s)

    def _attach(self, pid, proto) -> bool:
        if pid not in self.addresses or pid == self.my_id:
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

    def send_frame(self, to, frame, msg=None) -> None:
        """Send an encoded frame (or msg, encoded only if a link can carry it):
        a proposal is encoded once for all its followers."""
        link = self.links.get(to)
        if link is None or link.closed:
            # Nothing can carry it: tell the state machine the link is down.
            if not self.stopping:
                self.loop.call_soon(self.on_link_down, to)
            return
        link.send(frame if frame is not None else encode(msg))

    def connected(self) -> list:
        return sorted(self.links)

    async def stop(self):
        self.stopping = True
        for t in self.tasks:
            t.cancel()
        for link in list(self.links.values()):
            link.close()
        self.links.clear()
        for s in self.servers:
            s.close()
