"""The files of a reconfigurable ensemble (reconfigEnabled=true), written as
ZooKeeper writes them:

  zoo.cfg.bak                 the static file as it was, the first time a
                              member starts with its servers in zoo.cfg
  zoo.cfg.dynamic.<version>   the membership in force: its server.N, group.N
                              and weight.N lines, sorted (the version is in
                              the file's name, in hex)
  zoo.cfg.dynamic.next        a reconfiguration proposed and not yet
                              committed (its version line included)
  zoo.cfg                     rewritten without its membership lines (and
                              without clientPort/clientPortAddress when the
                              member's own server.N line gives its client
                              address), naming the dynamic file in force:
                              dynamicConfigFile=<absolute path>

A member restarted later reads its membership from the dynamic file its
zoo.cfg names (zkpy/server/config.py), so it comes back with the membership
that was in force when it stopped."""

import os
from pathlib import Path

from ..storage.files import write_atomically
from .config import iter_properties
from .membership import membership_text

NEXT_SUFFIX = ".dynamic.next"


def _lines_of(membership, keep_version: bool) -> list:
    """ZooKeeper's writeDynamicConfig: the membership's lines, sorted as text."""
    lines = membership_text(membership).split("\n")
    if not keep_version:
        lines = [line for line in lines if not line.startswith("version=")]
    return sorted(lines)


def backup_static(config_path) -> None:
    """zoo.cfg.bak: the static file before its first rewrite."""
    data = Path(config_path).read_bytes()
    write_atomically(str(config_path) + ".bak", lambda f: f.write(data))


def write_next(config_path, membership) -> None:
    text = "\n".join(_lines_of(membership, True))
    write_atomically(str(config_path) + NEXT_SUFFIX, lambda f: f.write(text.encode()))


def write_in_force(config_path, membership, erase_client_address: bool) -> Path:
    """The dynamic file of membership, and zoo.cfg pointing at it; the .next
    file goes once its configuration is in force.  Returns the dynamic file."""
    config_path = Path(config_path)
    dynamic = Path(f"{config_path}.dynamic.{membership.version:x}").resolve()
    text = "\n".join(_lines_of(membership, False))
    write_atomically(str(dynamic), lambda f: f.write(text.encode()))
    _edit_static(config_path, dynamic, erase_client_address)
    try:
        os.remove(str(config_path) + NEXT_SUFFIX)
    except FileNotFoundError:
        pass
    return dynamic


def _edit_static(config_path: Path, dynamic: Path, erase_client_address: bool) -> None:
    """ZooKeeper's editStaticConfig: every line but the membership's (and the
    dynamic file's old name, peerType, and the client address if asked),
    then dynamicConfigFile."""
    kept = []
    for key, value in iter_properties(config_path.read_text(errors="replace")):
        name = key.strip()
        if name.startswith(("server.", "group", "weight", "dynamicConfigFile", "peerType")):
            continue
        if erase_client_address and name.startswith(("clientPort", "clientPortAddress")):
            continue
        kept.append(f"{name}={value.strip()}")
    kept.append(f"dynamicConfigFile={dynamic}")
    text = "\n".join(kept) + "\n"
    write_atomically(str(config_path), lambda f: f.write(text.encode()))
