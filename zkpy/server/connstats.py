"""What cons and stat say about one connection (ServerCnxn's figures): packets
each way, the last operation and its cxid/zxid, and reply latencies."""

from ..protocol.jute import LONG
from ..protocol.opcodes import LAST_OP_CODES, Op
from .addresses import java_ip
from .request import CLOSED
from .stats import LatencyStats

_U64 = 0xFFFFFFFFFFFFFFFF
_reply_zxid = LONG.unpack_from
_ZXID_AT = 8   # in a reply frame: length, xid, then the zxid


class ConnectionStats:
    __slots__ = ("established", "packets_received", "packets_sent", "last_op", "last_cxid",
                 "last_zxid", "last_response", "last_latency", "latency")

    def __init__(self):
        self.established = 0          # wall ms of the handshake
        self.latency = LatencyStats()
        self.reset()
        # Until its first reply (or a crst), a connection shows what a new
        # ServerCnxn shows in ZooKeeper, its fields' Java defaults: lop=null,
        # lcxid=0x0, lzxid=0x0 (a resumed session's connection keeps them
        # until its first request is answered).  crst sets NA, none, -1.
        self.last_op = None
        self.last_cxid = 0
        self.last_zxid = 0

    def reset(self):
        self.packets_received = 0
        self.packets_sent = 0
        self.last_op = "NA"
        self.last_cxid = None
        self.last_zxid = -1
        self.last_response = 0
        self.last_latency = 0
        self.latency.reset()

    def replied(self, answered, now):
        """The replies to the requests `answered` went out at monotonic ms
        now (their latencies are added by ServerStats.replied).  The last
        reply's figures are kept: its op, its latency, its zxid (the reply
        header's, as ZooKeeper's lzxid), and the last cxid that is not
        negative (pings' and notifications' are)."""
        last = answered[-1]
        self.last_latency = now - last.received
        self.last_response = now
        self.last_op = last.op
        for req in reversed(answered):
            if req.xid >= 0:
                self.last_cxid = req.xid
                break
        self.last_zxid = _reply_zxid(last.reply, _ZXID_AT)[0]
        self.packets_sent += len(answered)

    def session_created(self, zxid, now, latency):
        """A new session for this connection: ZooKeeper's
        FinalRequestProcessor takes its createSession (cxid 0) as a request
        answered; the ConnectResponse itself is counted as a packet sent."""
        self.last_op = Op.CREATE_SESSION
        self.last_cxid = 0
        self.last_zxid = zxid
        self.last_response = now
        self.last_latency = latency
        self.latency.add(latency)

    def describe(self, conn, brief: bool) -> str:
        """The cons / stat line of conn (brief: stat's, without the session)."""
        ip, port = conn.peer
        s = f" /{java_ip(ip)}:{port}[1](queued={len(conn.queue)}," \
            f"recved={self.packets_received},sent={self.packets_sent}"
        if brief or not conn.session_id:
            return s + ")"
        lat = self.latency
        s += f",sid=0x{conn.session_id & _U64:x}"
        s += f",lop={_op_name(self.last_op) or 'null'},est={self.established},to={conn.timeout}"
        if self.last_cxid is not None:
            s += f",lcxid=0x{self.last_cxid:x}"
        s += f",lzxid=0x{self.last_zxid & _U64:x},lresp={self.last_response}"
        avg = lat.total // lat.count if lat.count else 0
        s += f",llat={self.last_latency},minlat={lat.min},avglat={avg},maxlat={lat.max})"
        return s


    def info(self, conn, brief: bool) -> dict:
        """ServerCnxn.getConnectionInfo: the connections / stats commands' entry
        for conn (brief: without the session's figures)."""
        ip, port = conn.peer
        info = {
            "remote_socket_address": f"{java_ip(ip)}:{port}",
            "interest_ops": 0 if conn.state == CLOSED else 1,   # OP_READ while open
            "outstanding_requests": len(conn.queue),
            "packets_received": self.packets_received,
            "packets_sent": self.packets_sent,
        }
        if not brief:
            lat = self.latency
            info.update({
                "session_id": _signed(conn.session_id),
                "last_operation": _op_name(self.last_op),
                "established": self.established,
                "session_timeout": conn.timeout,
                "last_cxid": -1 if self.last_cxid is None else self.last_cxid,
                "last_zxid": self.last_zxid,
                "last_response_time": self.last_response,
                "last_latency": self.last_latency,
                "min_latency": lat.min,
                "avg_latency": lat.total // lat.count if lat.count else 0,
                "max_latency": lat.max,
            })
        return info


def _signed(n: int) -> int:
    """A 64-bit id as Java's long prints it."""
    n &= _U64
    return n - (1 << 64) if n >= 1 << 63 else n


def _op_name(op):
    """ZooKeeper's code for op (None before the connection's first reply)."""
    if op is None or isinstance(op, str):
        return op
    return LAST_OP_CODES.get(op, "NA")
