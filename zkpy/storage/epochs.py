"""The two epoch files of an ensemble member (ZooKeeper's acceptedEpoch and
currentEpoch in dataDir): the epoch it last promised to follow, and the
epoch whose history it holds.  Each is one decimal number and a newline."""

import os

from .files import write_atomically

ACCEPTED_EPOCH = "acceptedEpoch"
CURRENT_EPOCH = "currentEpoch"


def read_epochs(data_dir: str) -> tuple[int, int]:
    """(accepted, current); 0 for a file that does not exist yet."""
    def one(name):
        try:
            with open(os.path.join(data_dir, name)) as f:
                return int(f.read().strip() or 0)
        except FileNotFoundError:
            return 0
    return one(ACCEPTED_EPOCH), one(CURRENT_EPOCH)


def write_epochs(data_dir: str, accepted: int, current: int) -> None:
    """Both files, each durable before this returns (the peer acts on them)."""
    for name, value in ((ACCEPTED_EPOCH, accepted), (CURRENT_EPOCH, current)):
        text = f"{value}\n".encode()
        write_atomically(os.path.join(data_dir, name), lambda f, t=text: f.write(t))
