"""Path rules of ZooKeeper's PathUtils.validatePath, and path helpers."""

import re

from ..protocol.errors import Err, KeeperError

# Characters PathUtils rejects: controls, surrogates and the private use area
# (so every character above U+FFFF), and U+FFF0-U+FFFF.
_BAD_CHARS = re.compile("[\u0000-\u001f\u007f-\u009f\ud800-\uf8ff\ufff0-\uffff\U00010000-\U0010ffff]")

SYSTEM_PATHS = frozenset({"/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"})


def is_valid_path(path) -> bool:
    # Every write checks its path: the usual path is tested with a few
    # substring and str methods (C loops) before any regex or split.
    if not path or path[0] != "/":
        return False
    if len(path) == 1:
        return True
    if path[-1] == "/" or "//" in path:
        return False    # an empty name
    if "/." in path:    # a name "." or ".." (other names may start with a dot)
        for part in path[1:].split("/"):
            if part == "." or part == "..":
                return False
    if path.isascii():
        # Of ASCII, the controls (0-31, 127) are what _BAD_CHARS refuses,
        # and exactly what isprintable() does not accept.
        return path.isprintable()
    return _BAD_CHARS.search(path) is None


def validate_path(path) -> None:
    if not is_valid_path(path):
        raise KeeperError(Err.BAD_ARGUMENTS, f"invalid path {path!r}")


def parent_of(path: str) -> str:
    i = path.rfind("/")
    return "/" if i <= 0 else path[:i]


def split_path(path: str) -> tuple[str, str]:
    """(parent, child name).  Takes the text before the last '/' as create does,
    so it works on '/p/' (a sequential create under /p) too."""
    i = path.rfind("/")
    return ("/" if i <= 0 else path[:i]), path[i + 1:]


def ancestors(path: str):
    """Proper ancestors of path, nearest first, ending with '/'."""
    while path != "/":
        path = parent_of(path)
        yield path
