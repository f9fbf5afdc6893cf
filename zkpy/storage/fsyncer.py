"""Writing and fsyncing the log in a helper process.

A thread that fsyncs must take the GIL back before it can say "done", and a
busy event loop holds the GIL for up to the switch interval (5 ms): the
acknowledgement of every group commit would wait for it.  A separate process
has its own interpreter: the event loop hands it the encoded records of a
batch over a pipe, the helper writes them to the log file and fdatasyncs it,
and the loop reads the answer as ordinary I/O.

The helper, not the loop, writes the records because a write(2) to a log
file whose previous batch is being synced can block until the journal commit
of that sync is done (block allocation in the preallocated, sparse file joins
the next journal transaction): measured at over a millisecond per batch, all
of it stalled event loop.

Protocol, one message each way per batch:
    loop -> helper   b"B" + count (>I), then per chunk:
                     path length (>H), file offset (>Q), data length (>I), path, data
    helper -> loop   b"K\\n"  or  b"E<error>\\n"
The helper writes every chunk at its offset, then fdatasyncs each file it
wrote.  A path the helper has not seen before is opened and its directory
fsynced too, so a new log file's name is durable with its first txn."""

import os
import struct
import subprocess
import sys

BATCH = struct.Struct(">I")
CHUNK = struct.Struct(">HQI")

_HELPER = r"""
import os, struct, sys
BATCH, CHUNK = struct.Struct(">I"), struct.Struct(">HQI")
fds = {}
cmd, reply = sys.stdin.buffer, sys.stdout.buffer

def read_exact(n):
    data = cmd.read(n)
    if len(data) != n:
        sys.exit(0)  # the server closed the pipe
    return data

while True:
    kind = cmd.read(1)
    if not kind:
        break
    (count,) = BATCH.unpack(read_exact(BATCH.size))
    chunks = []
    for _ in range(count):
        plen, offset, dlen = CHUNK.unpack(read_exact(CHUNK.size))
        chunks.append((read_exact(plen).decode(), offset, read_exact(dlen)))
    try:
        paths = []
        for path, offset, data in chunks:
            fd = fds.get(path)
            if fd is None:
                fd = fds[path] = os.open(path, os.O_WRONLY)
                d = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
                try:
                    os.fsync(d)
                finally:
                    os.close(d)
            while data:
                n = os.pwrite(fd, data, offset)
                data, offset = data[n:], offset + n
            if path not in paths:
                paths.append(path)
        for path in paths:
            os.fdatasync(fds[path])
        for path in [p for p in fds if p != paths[-1]]:
            os.close(fds.pop(path))   # a rolled-over file: nothing more comes to it
        reply.write(b"K\n")
    except Exception as e:
        reply.write(b"E" + str(e).replace("\n", " ").encode() + b"\n")
    reply.flush()
"""


class FsyncHelper:
    def __init__(self, loop, on_done):
        """on_done(error or None) runs on the loop for each finished batch."""
        self.loop = loop
        self.on_done = on_done
        self.proc = subprocess.Popen([sys.executable, "-c", _HELPER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, bufsize=0, close_fds=True)
        self.in_fd = self.proc.stdin.fileno()
        self.out_fd = self.proc.stdout.fileno()
        os.set_blocking(self.out_fd, False)
        self.buf = b""
        loop.add_reader(self.out_fd, self._readable)

    def request(self, chunks) -> None:
        """Write and sync chunks: a list of (path, offset, data)."""
        parts = [b"B", BATCH.pack(len(chunks))]
        for path, offset, data in chunks:
            p = path.encode()
            parts += (CHUNK.pack(len(p), offset, len(data)), p, data)
        msg = memoryview(b"".join(parts))
        # The helper is idle (one batch at a time), so a message larger than
        # the pipe's buffer only waits for it to read the rest.
        while msg:
            msg = msg[os.write(self.in_fd, msg):]

    def _readable(self):
        try:
            data = os.read(self.out_fd, 4096)
        except BlockingIOError:
            return
        if not data:
            self.loop.remove_reader(self.out_fd)
            self.on_done(OSError("the fsync helper process died"))
            return
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            self.on_done(None if line == b"K" else OSError(line[1:].decode(errors="replace")))

    def close(self):
        try:
            self.loop.remove_reader(self.out_fd)
        except Exception:
            pass
        try:
            self.proc.stdin.close()
            self.proc.wait(10)
        except Exception:
            self.proc.kill()
        self.proc.stdout.close()
