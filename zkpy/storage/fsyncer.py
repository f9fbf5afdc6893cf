"""fsync in a helper process.

A thread that fsyncs must take the GIL back before it can say "done", and a
busy event loop holds the GIL for up to the switch interval (5 ms): the
acknowledgement of every group commit would wait for it.  A separate process
has its own interpreter: the event loop writes the log (to the page cache),
asks the helper over a pipe to fdatasync the file, and reads the answer as
ordinary I/O.  fdatasync on the helper's own descriptor makes every written
page of the file durable, whoever wrote it.

Protocol, one line each way per request:
    loop -> helper   b"S" + "\\t".join(paths) + b"\\n"   fdatasync these files
    helper -> loop   b"K\\n"  or  b"E<error>\\n"
A path the helper has not seen before is opened and its directory fsynced
too, so a new log file's name is durable with its first txn."""

import os
import subprocess
import sys

_HELPER = r"""
import os, sys
fds = {}
cmd, reply = sys.stdin.buffer, sys.stdout.buffer
for line in cmd:
    try:
        paths = line[1:].rstrip(b"\n").decode().split("\t")
        for path in paths:
            fd = fds.get(path)
            if fd is None:
                fd = fds[path] = os.open(path, os.O_RDONLY)
                d = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
                try:
                    os.fsync(d)
                finally:
                    os.close(d)
            os.fdatasync(fd)
        for path in [p for p in fds if p not in paths]:
            os.close(fds.pop(path))   # a rolled-over file: nothing more comes to it
        reply.write(b"K\n")
    except Exception as e:
        reply.write(b"E" + str(e).replace("\n", " ").encode() + b"\n")
    reply.flush()
"""


class FsyncHelper:
    def __init__(self, loop, on_done):
        """on_done(error or None) runs on the loop for each finished request."""
        self.loop = loop
        self.on_done = on_done
        self.proc = subprocess.Popen([sys.executable, "-c", _HELPER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, bufsize=0, close_fds=True)
        self.out_fd = self.proc.stdout.fileno()
        os.set_blocking(self.out_fd, False)
        self.buf = b""
        loop.add_reader(self.out_fd, self._readable)

    def request(self, paths) -> None:
        self.proc.stdin.write(b"S" + "\t".join(paths).encode() + b"\n")

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
