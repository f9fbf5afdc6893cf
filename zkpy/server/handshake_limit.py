"""netty.server.outstandingHandshake.limit: at most this many TLS handshakes
under way at once on the client ports (NettyServerCnxnFactory's handshake
throttling), so that a burst of reconnecting TLS clients cannot starve the
server of CPU.  A connection over the limit is closed as it is accepted and
counts in tls_handshake_exceeded; outstanding_tls_handshake (mntr) is the
number under way.

As in ZooKeeper, a connection counts from the moment it is accepted on the
secure port, or on a unified client port (client.portUnification), until its
handshake succeeds or fails -- on a unified port, until its first byte shows
it is plaintext.  Off (the default) for a limit of 0 or below."""

import asyncio


class HandshakeLimit:
    def __init__(self, limit: int, metrics):
        self.limit = limit
        self.enabled = limit > 0
        self.outstanding = 0
        self.metrics = metrics

    def start(self) -> bool:
        if self.outstanding >= self.limit:
            self.metrics.count("tls_handshake_exceeded")
            return False
        self.outstanding += 1
        return True

    def finish(self) -> None:
        self.outstanding -= 1


def limited(limit: HandshakeLimit, factory):
    """A protocol factory that accepts a connection only while fewer than the
    limit are shaking hands; whatever factory makes must call finish() once."""
    if not limit.enabled:
        return factory

    def make():
        return factory() if limit.start() else _Refused()
    return make


class _Refused(asyncio.Protocol):
    def connection_made(self, transport):
        transport.close()
