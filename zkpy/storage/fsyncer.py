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

Protocol: a message from the loop per batch, a line back per sync:
    loop -> helper   b"B" + count (>I), then per chunk:
                     path length (>H), file offset (>Q), data length (>I), path, data
    helper -> loop   b"K<n> <microseconds>\\n"  or  b"E<n> <error>\\n"
The helper writes every chunk at its offset, then fdatasyncs each file it
wrote.  It keeps zeros written a little ahead of the records (zero_ahead), so
that most syncs find their blocks already allocated, and drops the pages of
synced records from the page cache (drop_synced).  A path the helper has not
seen before is opened and its directory fsynced too, so a new log file's name
is durable with its first txn.

The loop does not wait for one batch's answer before it hands over the next:
the helper takes every batch that is waiting in the pipe when it is done with
a sync, writes them all and syncs once, then answers them with one line: how
many batches that sync covered (the oldest unanswered ones) and how long the
write and sync took.  So the disk goes from one sync to the next without
waiting for the loop to read an answer and send more, and a group commit
takes whatever arrived during the last sync."""

import os
import struct
import subprocess
import sys

BATCH = struct.Struct(">I")
CHUNK = struct.Struct(">HQI")

_HELPER = r"""
import os, select, struct, sys, time
BATCH, CHUNK = struct.Struct(">I"), struct.Struct(">HQI")
ZERO_STEP = 1 << 16
ZERO_VIEW = memoryview(bytes(ZERO_STEP))
DROP_STEP = 1 << 20
class LogFile:
    # A log file the helper writes: where its records and the zeros written
    # after them end, up to where its synced pages are dropped from the page
    # cache, and its size (the log's preallocation) when last looked at.
    __slots__ = ("fd", "zeroed", "dropped", "size")

    def __init__(self, fd, zeroed):
        self.fd, self.zeroed, self.dropped, self.size = fd, zeroed, 0, 0

files = {}   # path -> LogFile
buf = bytearray()
# One read takes what is in the pipe, up to a MiB, into this buffer: os.read
# would make a new bytes object of the size asked for each time, which
# malloc maps and unmaps (three system calls and a fresh page or two a read).
INPUT = bytearray(1 << 20)
INPUT_VIEW = memoryview(INPUT)
reply = sys.stdout.buffer
eof = False

def read_more(wait):
    # False if nothing was read: no input ready (wait=False), or the server
    # closed the pipe.
    global eof
    if eof or (not wait and not select.select([0], [], [], 0)[0]):
        return False
    n = os.readv(0, [INPUT])
    if not n:
        eof = True
        return False
    buf.extend(INPUT_VIEW[:n])
    return True

def next_batch():
    # The chunks of the first whole batch in buf (taken out of it), or None.
    if len(buf) < 1 + BATCH.size:
        return None
    (count,) = BATCH.unpack_from(buf, 1)
    pos = 1 + BATCH.size
    chunks = []
    for _ in range(count):
        if len(buf) < pos + CHUNK.size:
            return None
        plen, offset, dlen = CHUNK.unpack_from(buf, pos)
        pos += CHUNK.size
        if len(buf) < pos + plen + dlen:
            return None
        path = bytes(buf[pos:pos + plen]).decode()
        chunks.append((path, offset, bytes(buf[pos + plen:pos + plen + dlen])))
        pos += plen + dlen
    del buf[:pos]
    return chunks

def write_and_sync(batches):
    paths = []
    ends = {}
    for chunks in batches:
        for path, offset, data in chunks:
            f = files.get(path)
            if f is None:
                f = files[path] = LogFile(os.open(path, os.O_WRONLY), offset)
                d = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
                try:
                    os.fsync(d)
                finally:
                    os.close(d)
            while data:
                n = os.pwrite(f.fd, data, offset)
                data, offset = data[n:], offset + n
            if offset + ZERO_STEP // 2 > f.zeroed:
                zero_ahead(f, offset)
            ends[path] = offset
            if path not in paths:
                paths.append(path)
    for path in paths:
        f = files[path]
        os.fdatasync(f.fd)
        drop_synced(f, ends[path] & -DROP_STEP)
    if paths:
        for path in [p for p in files if p != paths[-1]]:
            # A rolled-over file: nothing more comes to it.
            fd = files.pop(path).fd
            uncache(fd, 0, 0)
            os.close(fd)

def drop_synced(f, upto):
    # The server never reads its log back while it runs, so the pages of
    # records already synced are dropped from the page cache (whole MiBs,
    # never the page the next record goes to), and their memory is used
    # again for the next ones (why that pays: zkpy.storage.files.drop_cached).
    if upto > f.dropped:
        uncache(f.fd, f.dropped, upto - f.dropped)
        f.dropped = upto

def uncache(fd, start, length):
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, start, length, os.POSIX_FADV_DONTNEED)

def zero_ahead(f, end):
    # Zeros written (not a hole) up to the next ZERO_STEP boundary past end,
    # within the preallocated size.  An fdatasync that covers only blocks
    # already written needs no journal commit; one that covers blocks of a
    # hole does (their allocation).  So the allocation is paid once per
    # ZERO_STEP, not by every sync: 130 -> 90 us per fdatasync on ext4.
    start = max(f.zeroed, end)
    stop = (end + ZERO_STEP) // ZERO_STEP * ZERO_STEP
    if stop > f.size:
        # Past the size last seen: the server may have grown it since.
        f.size = os.fstat(f.fd).st_size
        stop = min(stop, f.size)
    if stop > start:
        stop = start + os.pwrite(f.fd, ZERO_VIEW[:stop - start], start)
    f.zeroed = max(stop, end)

while True:
    batches = []
    while True:
        chunks = next_batch()
        if chunks is not None:
            batches.append(chunks)
        elif not read_more(wait=not batches):
            break
    if not batches:
        break   # the server closed the pipe and every batch is answered
    start = time.monotonic()
    try:
        write_and_sync(batches)
        line = b"K%d %d\n" % (len(batches), int((time.monotonic() - start) * 1e6))
    except Exception as e:
        line = b"E%d %s\n" % (len(batches), str(e).replace("\n", " ").encode())
    reply.write(line)
    reply.flush()
"""


class FsyncHelper:
    def __init__(self, loop, on_done):
        """on_done(error or None, n, ms) runs on the loop for each sync: it
        covered the n oldest batches not answered yet, and its write and
        sync took ms."""
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
        # The syncer keeps what is waiting in the pipe small (see
        # TxnLogSyncer), so a write only waits when a large batch goes to an
        # idle helper, for the time the helper takes to read it.
        while msg:
            msg = msg[os.write(self.in_fd, msg):]

    def _readable(self):
        try:
            data = os.read(self.out_fd, 4096)
        except BlockingIOError:
            return
        if not data:
            self.loop.remove_reader(self.out_fd)
            self.on_done(OSError("the fsync helper process died"), 0, 0)
            return
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            n, _, rest = line[1:].partition(b" ")
            if line[:1] == b"K":
                self.on_done(None, int(n), int(rest) / 1000)
            else:
                self.on_done(OSError(rest.decode(errors="replace")), int(n), 0)

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
