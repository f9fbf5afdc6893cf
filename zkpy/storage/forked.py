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
import select
import signal
import threading
import time

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


# Background children (the periodic snapshot's writer) run at SCHED_IDLE:
# they get only the CPU time nothing else wants, and a thread of the server
# or of a client that wakes takes their core at once (the kernel counts a
# core that runs only such tasks as idle when it places a waking thread).
# At nice 10 the writer kept its core for a slice while the fsync helper or
# a client waited (fsynced creates, a snapshot every second or so, six
# interleaved rounds: 60.2k -> 63.7k a second, p99 2.5-3.9 -> 2.1-2.8 ms).
# A SCHED_IDLE task gets next to nothing while every core is busy, though,
# and an unprivileged process cannot leave that class (RLIMIT_NICE): one
# that has waited STARVED_AFTER seconds in all for a core is killed, for
# its work to be done again at nice 10.  Its parent watches it through a
# pidfd (Linux 5.3); without one, a child stays at nice 10.
STARVED_AFTER = 5.0
_LOOK_EVERY = 1.0   # seconds between looks at how long it has waited


def _can_watch() -> bool:
    if not (hasattr(os, "pidfd_open") and hasattr(os, "SCHED_IDLE")):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return False
    return True


CAN_IDLE = _can_watch()


def enter_background(idle) -> None:
    """In a background child (after enter_child): nice 10, and SCHED_IDLE
    if idle (only where CAN_IDLE: its parent then reaps it with
    wait_unless_starved)."""
    os.nice(10)
    if idle:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def wait_unless_starved(pid):
    """Reap child pid, which enter_background made idle; or kill it once it has
    waited STARVED_AFTER seconds for a core.  Its wait status, or None if it
    was starved and killed."""
    fd = os.pidfd_open(pid)   # (an unreaped child's pid stays its own)
    try:
        start = time.monotonic()
        while not select.select([fd], [], [], _LOOK_EVERY)[0]:
            waited = _runqueue_wait(pid)
            if waited is None:   # (a kernel without schedstat: time at work)
                waited = time.monotonic() - start
            if waited >= STARVED_AFTER:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return None
    finally:
        os.close(fd)
    return os.waitpid(pid, 0)[1]


def _runqueue_wait(pid):
    """Seconds process pid has been runnable but waiting for a core, or None
    where the kernel does not say (/proc/<pid>/schedstat)."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


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
