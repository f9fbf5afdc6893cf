"""Opcodes (ZooDefs.OpCode), special xids, event types and keeper states."""


class Op:
    NOTIFICATION = 0
    CREATE = 1
    DELETE = 2
    EXISTS = 3
    GET_DATA = 4
    SET_DATA = 5
    GET_ACL = 6
    SET_ACL = 7
    GET_CHILDREN = 8
    SYNC = 9
    PING = 11
    GET_CHILDREN2 = 12
    CHECK = 13
    MULTI = 14
    CREATE2 = 15
    RECONFIG = 16
    CHECK_WATCHES = 17
    REMOVE_WATCHES = 18
    CREATE_CONTAINER = 19
    DELETE_CONTAINER = 20
    CREATE_TTL = 21
    MULTI_READ = 22
    AUTH = 100
    SET_WATCHES = 101
    SASL = 102
    GET_EPHEMERALS = 103
    GET_ALL_CHILDREN_NUMBER = 104
    SET_WATCHES2 = 105
    ADD_WATCH = 106
    WHO_AM_I = 107
    CREATE_SESSION = -10
    CLOSE_SESSION = -11
    ERROR = -1


OP_NAMES = {value: name for name, value in vars(Op).items() if not name.startswith("_")}

# Readable names, as ZooKeeper's Request.op2String prints them (log dumps).
OP_SHORT_NAMES = {
    Op.NOTIFICATION: "notification", Op.CREATE: "create", Op.CREATE2: "create2",
    Op.CREATE_CONTAINER: "createContainer", Op.CREATE_TTL: "createTtl",
    Op.DELETE: "delete", Op.DELETE_CONTAINER: "deleteContainer",
    Op.EXISTS: "exists", Op.GET_DATA: "getData", Op.CHECK: "check", Op.MULTI: "multi",
    Op.MULTI_READ: "multiRead", Op.SET_DATA: "setData", Op.SYNC: "sync",
    Op.GET_ACL: "getACL", Op.SET_ACL: "setACL", Op.GET_CHILDREN: "getChildren",
    Op.GET_CHILDREN2: "getChildren2", Op.GET_ALL_CHILDREN_NUMBER: "getAllChildrenNumber",
    Op.GET_EPHEMERALS: "getEphemerals", Op.PING: "ping", Op.CREATE_SESSION: "createSession",
    Op.CLOSE_SESSION: "closeSession", Op.ERROR: "error", Op.RECONFIG: "reconfig",
    Op.CHECK_WATCHES: "checkWatches", Op.REMOVE_WATCHES: "removeWatches",
    Op.ADD_WATCH: "addWatch", Op.WHO_AM_I: "whoAmI", Op.AUTH: "auth",
    Op.SET_WATCHES: "setWatches", Op.SET_WATCHES2: "setWatches2", Op.SASL: "sasl",
}

# The codes ZooKeeper 3.8's FinalRequestProcessor records as a connection's
# last operation (cons "lop=").
LAST_OP_CODES = {
    Op.PING: "PING", Op.CREATE_SESSION: "SESS", Op.CLOSE_SESSION: "CLOS",
    Op.MULTI: "MULT", Op.MULTI_READ: "MLTR", Op.CREATE: "CREA", Op.CREATE2: "CREA",
    Op.CREATE_TTL: "CREA", Op.CREATE_CONTAINER: "CREA", Op.DELETE: "DELE",
    Op.DELETE_CONTAINER: "DELE", Op.SET_DATA: "SETD", Op.RECONFIG: "RECO",
    Op.SET_ACL: "SETA", Op.CHECK: "CHEC", Op.EXISTS: "EXIS", Op.GET_DATA: "GETD",
    Op.SET_WATCHES: "SETW", Op.SET_WATCHES2: "SETW", Op.GET_ACL: "GETA",
    Op.GET_CHILDREN: "GETC", Op.GET_CHILDREN2: "GETC", Op.GET_ALL_CHILDREN_NUMBER: "GETC",
    Op.CHECK_WATCHES: "CHKW", Op.REMOVE_WATCHES: "REMW", Op.ADD_WATCH: "ADDW",
    Op.WHO_AM_I: "HOMI", Op.GET_EPHEMERALS: "GETE", Op.SYNC: "SYNC",
}

# Opcodes that change the tree: they become txns and go through the log.
WRITE_OPS = frozenset({
    Op.CREATE, Op.CREATE2, Op.CREATE_CONTAINER, Op.CREATE_TTL, Op.DELETE,
    Op.DELETE_CONTAINER, Op.SET_DATA, Op.SET_ACL, Op.MULTI, Op.CLOSE_SESSION,
    Op.RECONFIG,
})
CREATE_OPS = frozenset({Op.CREATE, Op.CREATE2, Op.CREATE_CONTAINER, Op.CREATE_TTL})


class Xid:
    NOTIFICATION = -1
    PING = -2
    AUTH = -4
    SET_WATCHES = -8


class EventType:
    NONE = -1
    NODE_CREATED = 1
    NODE_DELETED = 2
    NODE_DATA_CHANGED = 3
    NODE_CHILDREN_CHANGED = 4


class KeeperState:
    SYNC_CONNECTED = 3


class WatcherType:
    CHILDREN = 1
    DATA = 2
    ANY = 3
    PERSISTENT = 4
    PERSISTENT_RECURSIVE = 5


class AddWatchMode:
    PERSISTENT = 0
    PERSISTENT_RECURSIVE = 1


class CreateMode:
    PERSISTENT = 0
    EPHEMERAL = 1
    PERSISTENT_SEQUENTIAL = 2
    EPHEMERAL_SEQUENTIAL = 3
    CONTAINER = 4
    PERSISTENT_WITH_TTL = 5
    PERSISTENT_SEQUENTIAL_WITH_TTL = 6

    EPHEMERAL_MODES = frozenset({1, 3})
    SEQUENTIAL_MODES = frozenset({2, 3, 6})
    TTL_MODES = frozenset({5, 6})


class Perms:
    READ = 1
    WRITE = 2
    CREATE = 4
    DELETE = 8
    ADMIN = 16
    ALL = 31
