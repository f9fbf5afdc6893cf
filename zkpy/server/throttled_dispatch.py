"""The RequestThrottler in a connection's request path, for servers with
request_throttle_max_requests > 0 (zkpy.server.throttle has the rules).

install() gives such a connection two methods of its own in front of its
class's, so that a server without the throttler pays nothing:

    _handle_request   auth and sasl aside (ZooKeeper answers those before its
                      throttler), a request that must wait is handed to the
                      throttler instead of being dispatched
    drain             when requests leave the pipeline, the throttler lets
                      the next ones through

A request let through is dispatched as if it had just arrived (with the
time it really arrived); one answered Throttled takes its turn among the
connection's replies without running; a stale one is dropped and its
connection closed, after the replies already written.  Requests of one
connection keep their order: while any request waits, every later one waits
behind it.

A request let through goes on through its connection's class: under
enforce.auth, AuthEnforcedConnection checks it then (ZooKeeper checks before
its throttler; the refusal is the same, only later)."""

import types

from ..protocol.errors import Err, KeeperError
from ..protocol.jute import INT_INT
from ..protocol.opcodes import Op
from .dispatch import over_outstanding_limit
from .request import CLOSED, Request
from .throttle import DROPPED, THROTTLED

_unpack_header = INT_INT.unpack_from
_THROTTLED = KeeperError(Err.THROTTLED)


def install(conn):
    conn._handle_request = types.MethodType(_handle_request, conn)
    conn.drain = types.MethodType(_drain, conn)


def _handle_request(conn, payload, received) -> bool:
    server = conn.server
    throttler = server.request_throttler
    if len(payload) >= 8 and throttler.holds(server.in_process):
        xid, op = _unpack_header(payload, 0)
        if op != Op.AUTH and op != Op.SASL and server.sessions.is_valid(conn.session_id):
            # globalOutstandingLimit counts the requests waiting here too.
            paused = xid > 0 and over_outstanding_limit(server) and conn.disable_recv()
            throttler.hold(conn, op, payload, received, conn.clock.now_ms())
            if len(throttler.held) == 1:
                pump(server, conn.loop)
            return paused
    return type(conn)._handle_request(conn, payload, received)


def _drain(conn):
    server = conn.server
    before = server.in_process
    type(conn).drain(conn)
    if server.in_process < before and server.request_throttler.held:
        pump(server, conn.loop)


def pump(server, loop):
    """Let through (or answer Throttled, or drop) the requests the
    throttler no longer holds back; while its head waits, look again every
    stall_time ms."""
    throttler = server.request_throttler
    if throttler.pumping:
        return   # a request let through was answered at once; the loop below goes on
    throttler.pumping = True
    try:
        while True:
            verdict = throttler.next(server.clock.now_ms(), server.in_process)
            if verdict is None:
                break
            kind, (conn, op, payload, received, _) = verdict
            if kind is DROPPED:
                conn.stats.packets_received += 1
                server.stats.packets_received += 1
                conn.close()
            else:
                _release(conn, op, payload, received, kind is THROTTLED)
    finally:
        throttler.pumping = False
    if throttler.held and throttler.timer is None and throttler.stall_time > 0:
        throttler.timer = loop.call_later(throttler.stall_time / 1000, _stall_over, server, loop)


def _stall_over(server, loop):
    server.request_throttler.timer = None
    pump(server, loop)


def _release(conn, op, payload, received, throttled):
    server = conn.server
    if not throttled:
        type(conn)._handle_request(conn, payload, received)
        if conn.state == CLOSED and conn.queue:
            # ZooKeeper runs a request whose connection has gone when it does
            # not drop stale ones (a write is applied); nobody waits for the reply.
            server.in_process -= len(conn.queue)
            conn.queue.clear()
        return
    if conn.state == CLOSED:
        return
    conn.stats.packets_received += 1
    server.stats.packets_received += 1
    req = Request(conn, _unpack_header(payload, 0)[0], op, None, received, _THROTTLED)
    conn.queue.append(req)
    server.in_process += 1
    if conn.queue[0] is req:
        conn.drain()
