"""A client request on its way through the pipeline, and the states of the
connection it came on."""

# ClientConnection states: NEW (the first bytes may be a four-letter word),
# CONNECTING (the handshake is being settled), ESTABLISHED, CLOSED.
NEW, CONNECTING, ESTABLISHED, CLOSED = range(4)


class Request:
    __slots__ = ("conn", "xid", "op", "record", "reply", "received", "decode_error", "payload",
                 "pending")

    def __init__(self, conn, xid, op, record, received, decode_error=None, payload=None):
        self.conn = conn
        self.xid = xid
        self.op = op
        self.record = record
        self.reply = None        # the reply frame, once there is one
        self.received = received  # monotonic ms, for latency figures
        self.decode_error = decode_error
        self.payload = payload    # the raw frame, kept for writes a follower forwards
        # True while the reply waits on the pipeline (a write, a sync): the
        # requests behind it wait too.  Otherwise it is answered from the
        # tree when its turn comes.
        self.pending = False
