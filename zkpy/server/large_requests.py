"""ZooKeeper's limit on large requests (largeRequestThreshold,
largeRequestMaxBytes): requests over the threshold may hold no more than
largeRequestMaxBytes between them while they are in process, so that a few
clients sending big writes cannot fill the server's memory.

As in ZooKeeperServer, a request is checked twice:

  its frame      (checkRequestSizeWhenReceivingMessage) a frame over the
                 threshold that would take the bytes of large requests in
                 process past the maximum closes its connection; every frame
                 is checked, the ConnectRequest, auth and sasl included
  its body       (checkRequestSizeWhenMessageReceived) a request other than
                 auth and sasl whose body (the frame less its 8-byte header)
                 is over the threshold adds its body to the bytes in process;
                 past the maximum it is taken back and the connection closed

and its bytes are given back when it is answered (or dropped with its
connection).  Each refusal counts in large_requests_rejected (mntr).

install() gives a connection of a server with the limit on (threshold not
-1) its own _handle_connect, _handle_request, drain and connection_lost in
front of its class's, so that a server without the limit pays nothing."""

import collections
import logging

from ..protocol.jute import INT_INT
from ..protocol.opcodes import Op

log = logging.getLogger("zkpy.server")

_unpack_header = INT_INT.unpack_from


class LargeRequestLimit:
    def __init__(self, threshold: int, max_bytes: int, metrics):
        self.threshold = threshold
        self.max_bytes = max_bytes
        self.enabled = threshold != -1
        self.in_process = 0      # bytes of large requests taken in, not answered yet
        self.metrics = metrics

    def frame_fits(self, length: int) -> bool:
        """A frame of this many bytes may be read."""
        if length <= self.threshold or self.in_process + length <= self.max_bytes:
            return True
        self.metrics.count("large_requests_rejected")
        return False

    def take(self, length: int) -> bool:
        """Count a request body of this many bytes (over the threshold) as in
        process; False (nothing counted) if that would pass the maximum."""
        if self.in_process + length > self.max_bytes:
            self.metrics.count("large_requests_rejected")
            return False
        self.in_process += length
        return True

    def give_back(self, length: int) -> None:
        self.in_process -= length


def large_request_limit(config, metrics) -> LargeRequestLimit:
    return LargeRequestLimit(config.large_request_threshold, config.large_request_max_bytes,
                             metrics)


def install(conn):
    conn.large = collections.deque()   # (request, body bytes) not answered yet, in order
    cls = type(conn)
    inner_request = conn._handle_request   # the RequestThrottler's, if it is on
    inner_drain = conn.drain

    def _handle_connect(payload):
        if _frame_fits(conn, payload):
            cls._handle_connect(conn, payload)

    def _handle_request(payload, received):
        if not _frame_fits(conn, payload):
            return False
        limit = conn.server.large_requests
        body = len(payload) - 8
        if body <= limit.threshold or _unpack_header(payload, 0)[1] in (Op.AUTH, Op.SASL):
            return inner_request(payload, received)
        if not limit.take(body):
            _reject(conn, len(payload))
            return False
        queue = conn.queue
        before = len(queue)
        paused = inner_request(payload, received)
        if len(queue) > before:
            conn.large.append((queue[-1], body))
        else:
            limit.give_back(body)   # answered at once, refused, or held by the throttler
        return paused

    def drain():
        inner_drain()
        large = conn.large
        if large:
            queue = conn.queue
            limit = conn.server.large_requests
            # Replies go in order: the oldest large request still queued
            # holds every later one.
            while large and large[0][0] not in queue:
                limit.give_back(large.popleft()[1])

    def connection_lost(exc):
        cls.connection_lost(conn, exc)
        limit = conn.server.large_requests
        while conn.large:
            limit.give_back(conn.large.popleft()[1])

    conn._handle_connect = _handle_connect
    conn._handle_request = _handle_request
    conn.drain = drain
    conn.connection_lost = connection_lost


def _frame_fits(conn, payload) -> bool:
    if conn.server.large_requests.frame_fits(len(payload)):
        return True
    _reject(conn, len(payload))
    return False


def _reject(conn, length):
    log.warning("Rejecting large request of %d bytes from %s (largeRequestMaxBytes=%d); "
                "closing the connection", length, conn.peer[0],
                conn.server.large_requests.max_bytes)
    conn.close()
