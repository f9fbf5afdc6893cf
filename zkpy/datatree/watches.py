"""The watch registry (ZooKeeper's WatchManager pair): which connection watches
which path, in which mode, and who is told when a path changes.

Watches belong to a connection (any hashable "watcher"), never to a session:
they die with the connection.  Two tables, as in ZooKeeper: data watches (set by
getData/exists, and persistent/recursive watches) and child watches (set by
getChildren, and persistent watches).  Modes are bits so that several modes can
coexist on one path for one watcher."""

from ..protocol.opcodes import EventType, WatcherType
from .paths import ancestors

STANDARD = 1
PERSISTENT = 2
RECURSIVE = 4

_NONE = ()   # trigger's answer when no one watches


class WatchManager:
    __slots__ = ("data", "child", "by_watcher", "recursive_count")

    def __init__(self):
        self.data: dict[str, dict] = {}   # path -> {watcher: mode bits}
        self.child: dict[str, dict] = {}
        self.by_watcher: dict = {}        # watcher -> set of (is_child_table, path)
        self.recursive_count = 0          # lets trigger skip the ancestor walk

    # --- registration ---------------------------------------------------------

    def _add(self, table, is_child, path, watcher, bit):
        watchers = table.get(path)
        if watchers is None:
            watchers = table[path] = {}
        old = watchers.get(watcher, 0)
        if bit == RECURSIVE and not old & RECURSIVE:
            self.recursive_count += 1
        watchers[watcher] = old | bit
        if not old:
            keys = self.by_watcher.get(watcher)
            if keys is None:
                keys = self.by_watcher[watcher] = set()
            keys.add((is_child, path))

    def add_data_watch(self, path, watcher):
        self._add(self.data, False, path, watcher, STANDARD)

    def add_child_watch(self, path, watcher):
        self._add(self.child, True, path, watcher, STANDARD)

    def add_persistent(self, path, watcher, recursive: bool):
        if recursive:
            self._add(self.data, False, path, watcher, RECURSIVE)
        else:
            self._add(self.data, False, path, watcher, PERSISTENT)
            self._add(self.child, True, path, watcher, PERSISTENT)

    def _clear_bits(self, table, is_child, path, watcher, bits) -> bool:
        """Drop bits of watcher at path; True if anything was removed."""
        watchers = table.get(path)
        if not watchers:
            return False
        old = watchers.get(watcher, 0)
        hit = old & bits
        if not hit:
            return False
        if hit & RECURSIVE:
            self.recursive_count -= 1
        new = old & ~bits
        if new:
            watchers[watcher] = new
        else:
            del watchers[watcher]
            if not watchers:
                del table[path]
            keys = self.by_watcher.get(watcher)
            if keys is not None:
                keys.discard((is_child, path))
                if not keys:
                    del self.by_watcher[watcher]
        return True

    def remove_watcher(self, watcher):
        """A connection closed: forget all its watches."""
        for is_child, path in self.by_watcher.pop(watcher, ()):
            table = self.child if is_child else self.data
            watchers = table.get(path)
            if watchers is None:
                continue
            bits = watchers.pop(watcher, 0)
            if bits & RECURSIVE:
                self.recursive_count -= 1
            if not watchers:
                del table[path]

    # --- checkWatches / removeWatches ------------------------------------------

    _TYPE_BITS = {
        # WatcherType -> (data table bits, child table bits)
        WatcherType.CHILDREN: (0, STANDARD),
        WatcherType.DATA: (STANDARD, 0),
        WatcherType.ANY: (STANDARD | PERSISTENT | RECURSIVE, STANDARD | PERSISTENT),
        WatcherType.PERSISTENT: (PERSISTENT, PERSISTENT),
        WatcherType.PERSISTENT_RECURSIVE: (RECURSIVE, 0),
    }

    def has_watch(self, path, watcher, wtype) -> bool:
        data_bits, child_bits = self._TYPE_BITS[wtype]
        return bool(
            (self.data.get(path, {}).get(watcher, 0) & data_bits)
            or (self.child.get(path, {}).get(watcher, 0) & child_bits))

    def remove_watch(self, path, watcher, wtype) -> bool:
        data_bits, child_bits = self._TYPE_BITS[wtype]
        a = self._clear_bits(self.data, False, path, watcher, data_bits) if data_bits else False
        b = self._clear_bits(self.child, True, path, watcher, child_bits) if child_bits else False
        return a or b

    # --- firing -----------------------------------------------------------------

    def trigger(self, path, event_type) -> list:
        """Watchers to tell about event_type on path (a sequence), each once,
        consuming one-shot watches.  The caller sends the events."""
        if event_type == EventType.NODE_CHILDREN_CHANGED:
            if path not in self.child:
                return _NONE   # the usual case of a write: nobody watches
            fired = {}
            self._fire_exact(self.child, True, path, fired)
            return list(fired)
        if not self.recursive_count and path not in self.data and (
                event_type != EventType.NODE_DELETED or path not in self.child):
            return _NONE
        fired = {}
        self._fire_exact(self.data, False, path, fired)
        if event_type == EventType.NODE_DELETED:
            self._fire_exact(self.child, True, path, fired)
        if self.recursive_count:
            for parent in ancestors(path):
                watchers = self.data.get(parent)
                if watchers:
                    for w, bits in watchers.items():
                        if bits & RECURSIVE:
                            fired[w] = None
        return list(fired)

    def _fire_exact(self, table, is_child, path, fired):
        watchers = table.get(path)
        if not watchers:
            return
        one_shot = []
        for w, bits in watchers.items():
            fired[w] = None  # every mode fires for a change at its own path
            if bits & STANDARD:
                one_shot.append(w)
        for w in one_shot:
            self._clear_bits(table, is_child, path, w, STANDARD)

    # --- introspection for wchs/wchc/wchp and mntr ------------------------------

    def watch_count(self) -> int:
        return sum(len(w) for w in self.data.values()) + sum(len(w) for w in self.child.values())

    def data_paths_by_watcher(self) -> dict:
        out = {}
        for path, watchers in self.data.items():
            for w in watchers:
                out.setdefault(w, []).append(path)
        return out

