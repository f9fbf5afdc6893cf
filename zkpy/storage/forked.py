"""Work done by a forked child on a copy-on-write image of this process.

The child sees the process exactly as it was at the fork (the tree included,
however the event loop changes it afterwards), computes bytes from it and
hands them back through a pipe; the event loop goes on serving meanwhile, and
the child's CPU time is not taken from it (a thread would hold the GIL).
Used where a leader serialises its whole tree for a follower it syncs by SNAP;
the periodic snapshots (database.py) fork in the same way."""

import fcntl
import gc
import logging
import os
import threading

log = logging.getLogger("zkpy.storage")

_CHUNK = 1 << 20


def enter_child(keep=()) -> None:
    """First thing in a forked child that serialises the tree, then exits.
    Close every descriptor but stdin, stdout, stderr and `keep`: the
    parent's sockets must not outlive the parent (killed while a child
    works, its peers and clients would see its connections stay open until
    the child is done).  And turn the garbage collector off: the child keeps
    a tuple per znode until it has written them all, then exits, so a
    collection would find nothing to free (off, 500,000 znodes serialise in
    0.34 s, not 0.37)."""
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, _MAX_FD)
    gc.disable()


_MAX_FD = max(os.sysconf("SC_OPEN_MAX"), 1 << 16)


def fork_bytes(make, loop, on_done) -> bool:
    """Run make() -> bytes in a forked child.  on_done(result) runs on the
    loop once the child is done: its bytes, or None if it failed.  False if
    no child could be forked (nothing will be called)."""
    if not hasattr(os, "fork"):
        return False
    r, w = os.pipe()
    try:
        fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, _CHUNK)   # fewer, larger hand-overs
    except (AttributeError, OSError):
        pass
    try:
        pid = os.fork()
    except OSError as e:
        log.warning("cannot fork (%s)", e)
        os.close(r)
        os.close(w)
        return False
    if pid == 0:  # the child: write, and leave without running any cleanup
        code = 1
        try:
            enter_child(keep=(w,))
            view = memoryview(make())
            while view:
                view = view[os.write(w, view):]
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    threading.Thread(target=_collect, args=(pid, r, loop, on_done),
                     name="zkpy-forked", daemon=True).start()
    return True


def _collect(pid, r, loop, on_done):
    chunks = []
    try:
        while True:
            chunk = os.read(r, _CHUNK)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError as e:
        log.warning("reading from a forked child failed: %s", e)
        chunks = None
    finally:
        os.close(r)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        log.error("forked child exited with status %s", code)
        chunks = None
    result = None if chunks is None else b"".join(chunks)
    try:
        loop.call_soon_threadsafe(on_done, result)
    except RuntimeError:  # the loop is closed: shutting down
        pass
