"""Files that are replaced whole (snapshots, the epoch files): written beside
their final name, fsynced, renamed over it, and the directory fsynced, so
that after a crash the name holds either the old contents or the new ones,
never a mix or nothing."""

import os


def fsync_dir(path: str) -> None:
    """Make the directory's entries (a new or renamed file) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: str, write, buffering: int = -1) -> str:
    """Replace the file at path with what write(f) writes into a binary file."""
    tmp = path + ".tmp"
    with open(tmp, "wb", buffering=buffering) as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path) or ".")
    return path
