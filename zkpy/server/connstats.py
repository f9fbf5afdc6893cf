"""What cons and stat say about one connection (ServerCnxn's figures): packets
each way, the last operation and its cxid/zxid, and reply latencies."""

from ..protocol.opcodes import LAST_OP_CODES
from .addresses import java_ip
from .stats import LatencyStats

_U64 = 0xFFFFFFFFFFFFFFFF


class ConnectionStats:
    __slots__ = ("established", "packets_received", "packets_sent", "last_op", "last_cxid",
                 "last_zxid", "last_response", "last_latency", "latency")

    def __init__(self):
        self.established = 0          # wall ms of the handshake
        self.latency = LatencyStats()
        self.reset()

    def reset(self):
        self.packets_received = 0
        self.packets_sent = 0
        self.last_op = "NA"
        self.last_cxid = None
        self.last_zxid = -1
        self.last_response = 0
        self.last_latency = 0
        self.latency.reset()

    def replied(self, op, xid, zxid, now, latency):
        """A reply to a request went out (latency: ms since it came in)."""
        self.last_latency = latency
        self.last_response = now
        self.last_op = op
        if xid > 0:
            self.last_cxid = xid
        self.last_zxid = zxid
        self.latency.add(latency)
        self.packets_sent += 1

    def describe(self, conn, brief: bool) -> str:
        """The cons / stat line of conn (brief: stat's, without the session)."""
        ip, port = conn.peer
        s = f" /{java_ip(ip)}:{port}[1](queued={len(conn.queue)}," \
            f"recved={self.packets_received},sent={self.packets_sent}"
        if brief or not conn.session_id:
            return s + ")"
        lat = self.latency
        s += f",sid=0x{conn.session_id & _U64:x}"
        s += f",lop={_op_name(self.last_op)},est={self.established},to={conn.timeout}"
        if self.last_cxid is not None:
            s += f",lcxid=0x{self.last_cxid:x}"
        s += f",lzxid=0x{self.last_zxid & _U64:x},lresp={self.last_response}"
        avg = lat.total // lat.count if lat.count else 0
        s += f",llat={self.last_latency},minlat={lat.min},avglat={avg},maxlat={lat.max})"
        return s


def _op_name(op):
    return op if isinstance(op, str) else LAST_OP_CODES.get(op, "NA")
