"""A client request on its way through the pipeline."""


class Request:
    __slots__ = ("conn", "xid", "op", "record", "reply", "received", "decode_error", "payload")

    def __init__(self, conn, xid, op, record, received, decode_error=None, payload=None):
        self.conn = conn
        self.xid = xid
        self.op = op
        self.record = record
        self.reply = None        # the reply frame, once there is one
        self.received = received  # monotonic ms, for latency figures
        self.decode_error = decode_error
        self.payload = payload    # the raw frame, kept for writes a follower forwards
