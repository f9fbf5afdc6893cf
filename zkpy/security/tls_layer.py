"""TLS over an asyncio transport, server side, with the standard ``ssl``
module's SSLObject on memory BIOs (the one module of this package that sits
on the event loop).

:class:`TlsLayer` is the protocol of an accepted socket and the transport of
the protocol above it, which exists only once the handshake is done and the
owner has accepted the peer.  Why not ``create_server(ssl=...)`` or
``start_tls``: a unified client port has already read the first bytes when
it learns that they start a TLS handshake, and they must reach the TLS
engine (start_tls cannot take them, and uvloop's drops a ClientHello that
arrives before it is called); and a failed handshake must be counted and
logged, which the event loop's own TLS keeps to itself.

The owner supplies two callbacks:

* ``on_secure(layer)`` after the handshake: connects the protocol above
  (calls its ``connection_made(layer)``) and returns it, or returns None to
  close;
* ``on_failure(layer, reason)`` when the handshake fails, times out, or the
  peer goes away before it is done (once per connection).
"""

from __future__ import annotations

import asyncio
import ssl

__all__ = ["TlsLayer"]

_READ_CHUNK = 256 * 1024


class TlsLayer(asyncio.Protocol):
    def __init__(self, context: ssl.SSLContext, loop, on_secure, on_failure, *,
                 first_bytes: bytes = b"", timeout_s: float = 10.0):
        self.loop = loop
        self.on_secure = on_secure
        self.on_failure = on_failure
        self.inner = None
        self.raw = None
        self.peer = ("", 0)
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.sslobj = context.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.first_bytes = first_bytes
        self.timeout_s = timeout_s
        self.handshaken = False     # None once failed
        self.closed = False
        self.timer = None

    # --- the socket side --------------------------------------------------------------------

    def connection_made(self, transport):
        self.raw = transport
        peer = transport.get_extra_info("peername") or ("", 0)
        self.peer = (peer[0], peer[1])
        self.timer = self.loop.call_later(self.timeout_s, self._timed_out)
        if self.first_bytes:
            data, self.first_bytes = self.first_bytes, b""
            self.data_received(data)

    def data_received(self, data):
        if self.closed:
            return
        self.incoming.write(data)
        if not self.handshaken:
            self._handshake()
            if not self.handshaken:
                return
        self._read_plaintext()

    def eof_received(self):
        return False  # close: a TLS peer ends with close_notify

    def connection_lost(self, exc):
        if self.handshaken is False:
            self._failed("connection closed during the handshake")
        self.closed = True
        self._cancel_timer()
        if self.inner is not None:
            self.inner.connection_lost(exc)

    def pause_writing(self):
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self):
        if self.inner is not None:
            self.inner.resume_writing()

    # --- the handshake -----------------------------------------------------------------------

    def _handshake(self):
        try:
            self.sslobj.do_handshake()
        except ssl.SSLWantReadError:
            self._send_out()
            return
        except (ssl.SSLError, OSError, ValueError) as e:
            self._failed(reason(e))
            return
        self.handshaken = True
        self._cancel_timer()
        self._send_out()
        inner = self.on_secure(self)
        if inner is None:
            self._close_now()
            return
        self.inner = inner

    def _timed_out(self):
        self.timer = None
        if self.handshaken is False and not self.closed:
            self._failed(f"no TLS handshake within {self.timeout_s:.0f} s")

    def _cancel_timer(self):
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _failed(self, why: str):
        self.handshaken = None   # counted once
        self.on_failure(self, why)
        self._send_out()         # the alert, if OpenSSL made one
        self._close_now()

    # --- application data ----------------------------------------------------------------------

    def _read_plaintext(self):
        chunks = []
        read = self.sslobj.read
        try:
            while True:
                chunk = read(_READ_CHUNK)
                if not chunk:
                    self._close_now()   # close_notify (or EOF)
                    break
                chunks.append(chunk)
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            self.close()
        except (ssl.SSLError, OSError):
            self._close_now()
        if self.outgoing.pending:
            self._send_out()      # post-handshake messages (TLS 1.3 key updates)
        if chunks and self.inner is not None:
            self.inner.data_received(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def _send_out(self):
        if self.outgoing.pending and self.raw is not None:
            self.raw.write(self.outgoing.read())

    def _close_now(self):
        self.closed = True
        if self.raw is not None:
            self.raw.close()

    # --- the transport the protocol above sees --------------------------------------------------

    def write(self, data):
        if self.closed:
            return
        try:
            self.sslobj.write(data)
        except (ssl.SSLError, OSError):
            self._close_now()
            return
        self.raw.write(self.outgoing.read())

    def close(self):
        if self.closed:
            return
        try:
            self.sslobj.unwrap()        # our close_notify
        except (ssl.SSLError, OSError, ValueError):
            pass
        self._send_out()
        self._close_now()

    def abort(self):
        self.closed = True
        if self.raw is not None:
            self.raw.abort()

    def is_closing(self):
        return self.closed or self.raw is None or self.raw.is_closing()

    def pause_reading(self):
        if self.raw is not None and not self.closed:
            self.raw.pause_reading()

    def resume_reading(self):
        if self.raw is not None and not self.closed:
            self.raw.resume_reading()

    def set_protocol(self, protocol):
        """The protocol above changes (a link's exchange hands over to the link)."""
        self.inner = protocol

    def get_protocol(self):
        return self.inner

    def get_write_buffer_size(self):
        return self.raw.get_write_buffer_size() if self.raw is not None else 0

    def get_extra_info(self, name, default=None):
        if name == "ssl_object":
            return self.sslobj
        if name == "peercert":
            return self.sslobj.getpeercert() if self.handshaken else default
        if name == "cipher":
            return self.sslobj.cipher() if self.handshaken else default
        if self.raw is None:
            return default
        return self.raw.get_extra_info(name, default)


def reason(e: BaseException) -> str:
    return getattr(e, "reason", None) or str(e) or type(e).__name__
