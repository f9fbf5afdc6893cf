"""The AdminServer (ZooKeeper's JettyAdminServer): the commands of
commands.py over HTTP, on aiohttp, on the server's own event loop.

    GET  <commandURL>             links to every command (primary names, sorted)
    GET  <commandURL>/<name>?k=v  the command's JSON (application/json)
    GET  <commandURL>/snapshot    a snapshot, streamed (?streaming=false: headers only)
    POST <commandURL>/restore     the body, a snapshot, replaces the tree

zoo.cfg: admin.enableServer (default true), admin.serverAddress (0.0.0.0),
admin.serverPort (8080), admin.commandURL (/commands), admin.idleTimeout (ms
a connection may stay idle, 30000), admin.snapshot.enabled,
admin.restore.enabled, admin.rateLimiterIntervalInMS (3.9).  HTTPS: given an
ssl.SSLContext, the port speaks TLS only (admin.forceHttps).

snapshot and restore need an Authorization header, "<scheme> <auth>"
(digest user:password, or ip), whose ids must hold ALL on the ACL of "/",
as in ZooKeeper 3.9; every other command is open."""

import logging

from aiohttp import web

from ..datatree.acl import check_acl, digest_id
from ..protocol.opcodes import Perms
from . import backup, commands
from .addresses import java_ip
from .commands import AdminContext
from .fourletter import _java_double

log = logging.getLogger("zkpy.server.admin")

_ALL = Perms.READ | Perms.WRITE | Perms.CREATE | Perms.DELETE | Perms.ADMIN


class AdminServer:
    def __init__(self, config, context: AdminContext, ssl_context=None):
        """context.server may change later (set_server); ssl_context: HTTPS."""
        self.config = config
        self.context = context
        self.ssl_context = ssl_context
        self.runner = None
        self.site = None
        self.port = None
        url = config.admin_command_url
        self.url = url if url.startswith("/") else "/" + url
        self.url = self.url.rstrip("/") or ""
        # Snapshot's limiter counts microseconds, restore's milliseconds: both
        # as ZooKeeper 3.9 builds them from admin.rateLimiterIntervalInMS.
        interval = config.admin_rate_limiter_interval_ms
        self.snapshot_limiter = backup.RateLimiter(interval / 1_000_000)
        self.restore_limiter = backup.RateLimiter(interval / 1000)

    def set_server(self, server):
        self.context.server = server

    async def start(self):
        app = web.Application(client_max_size=max(1 << 20, self.config.jute_maxbuffer) * 1024)
        app.router.add_route("GET", self.url or "/", self._links)
        app.router.add_route("GET", self.url + "/", self._links)
        app.router.add_route("GET", self.url + "/{name}", self._get)
        app.router.add_route("POST", self.url + "/{name}", self._post)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                    keepalive_timeout=self.config.admin_idle_timeout_ms / 1000)
        await self.runner.setup()
        c = self.config
        self.site = web.TCPSite(self.runner, c.admin_server_address, c.admin_server_port,
                                ssl_context=self.ssl_context, reuse_address=True)
        await self.site.start()
        self.port = self.site._server.sockets[0].getsockname()[1]
        log.info("Started AdminServer on address %s, port %d and command URL %s",
                 c.admin_server_address, self.port, self.url or "/")
        return self

    async def stop(self):
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    # --- requests ----------------------------------------------------------------------

    async def _links(self, request):
        text = "".join(f'<a href="{self.url}/{name}">{name}</a>\n<br/>\n'
                       for name in commands.primary_names())
        return web.Response(text=text, content_type="text/html")

    async def _get(self, request):
        name = request.match_info["name"]
        kwargs = {k: v for k, v in request.query.items()}
        if name in ("snapshot", "snap"):
            return await self._snapshot(request, name, kwargs)
        status, body = commands.run(name, self.context, kwargs)
        return _json(status, body)

    async def _post(self, request):
        name = request.match_info["name"]
        if name not in ("restore", "rest"):
            command = commands.BY_NAME.get(name)
            error = (f"Unknown command: {name}" if command is None
                     else f"Command {name} is not a POST command")
            return _json(200 if command is None else 405, commands._response(name, error=error))
        return await self._restore(request, name)

    # --- snapshot and restore ------------------------------------------------------------------

    def _refusal(self, request, name, enabled: bool, limiter):
        """The response that stops a snapshot or restore before it starts, or None."""
        c = self.config
        server = self.context.server
        if not server.serving:
            return _json(200, commands._response(name, error=commands.NOT_SERVING))
        auth = request.headers.get("Authorization")
        if auth is None:
            return _json(401, commands._response(name, error="Auth info is missing for the command"))
        ids = _authenticate(server, auth, request)
        if ids is None:
            return _json(401, commands._response(name, error="Not authenticated"))
        root = server.tree.nodes.get("/")
        if root is None or not check_acl(root.acl, _ALL, ids, server.skip_acl) or \
                not _each_bit(root.acl, ids, server.skip_acl):
            return _json(403, commands._response(name, error="Not authorized"))
        if not enabled:
            log.warning("%s command is disabled", name)
            return _json(503, commands._response(name))
        if not c.serialize_last_processed_zxid_enabled:
            log.warning("%s command requires serializeLastProcessedZxid.enabled", name)
            return _json(500, commands._response(name))
        if not limiter.allow():
            log.warning("%s request was rate limited", name)
            server.metrics.count_admin(name + "_rate_limited_count")
            return _json(429, commands._response(name))
        return None

    async def _snapshot(self, request, name, kwargs):
        refused = self._refusal(request, name, self.config.admin_snapshot_enabled,
                                self.snapshot_limiter)
        if refused is not None:
            return refused
        streaming = kwargs.get("streaming", "true").lower() == "true"
        server = self.context.server
        try:
            zxid, blob = await backup.take_snapshot(server)
        except (backup.BackupError, OSError) as e:
            log.warning("the snapshot command failed: %s", e)
            server.metrics.count_admin("snapshot_error_count")
            return _json(500, commands._response(name))
        headers = {"last_zxid": f"0x{zxid:x}", "snapshot_size": str(len(blob))}
        if not streaming:
            return _json(200, commands._response(name), headers)
        return web.Response(body=blob, headers=headers, content_type="application/octet-stream")

    async def _restore(self, request, name):
        refused = self._refusal(request, name, self.config.admin_restore_enabled,
                                self.restore_limiter)
        if refused is not None:
            return refused
        server = self.context.server
        if self.context.peer is not None:
            return _json(501, commands._response(
                name, error="restore is not supported on a member of an ensemble: "
                            "restore a standalone server and let the others sync from it"))
        blob = await request.read()
        if not blob:
            return _json(400, commands._response(name, error="no snapshot in the request body"))
        try:
            zxid = await backup.restore(server, blob)
        except backup.BackupError as e:
            log.warning("the restore command failed: %s", e)
            server.metrics.count_admin("restore_error_count")
            return _json(e.status, commands._response(name, error=str(e)))
        except OSError as e:
            log.warning("the restore command failed: %s", e)
            server.metrics.count_admin("restore_error_count")
            return _json(500, commands._response(name, error=str(e)))
        server.metrics.count_admin("restore_count")
        return _json(200, commands._response(name, {"last_zxid": zxid}))


def _authenticate(server, header: str, request):
    """The auth ids of an Authorization header ("digest user:pw", "ip"), or
    None when it names no scheme we have or gives no id."""
    parts = header.split(" ")
    if len(parts) not in (1, 2):
        return None
    scheme = parts[0]
    auth = parts[1] if len(parts) == 2 else None
    if scheme == "digest" and server.config.digest_auth_enabled and auth:
        ident = digest_id(auth)
        ids = [("digest", ident)]
        if server.super_digest and ident == server.super_digest:
            ids.append(("super", ""))
        return ids
    if scheme == "ip":
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if not peer:
            return None
        return [("ip", java_ip(peer[0]))]
    return None


def _each_bit(acl, ids, skip_acl) -> bool:
    """ZooKeeper checks the permission bits one by one (each may come from
    another ACL entry)."""
    return all(check_acl(acl, bit, ids, skip_acl)
               for bit in (Perms.READ, Perms.WRITE, Perms.CREATE, Perms.DELETE, Perms.ADMIN))


def _json(status: int, body: dict, headers=None) -> web.Response:
    return web.Response(text=jackson(body), status=status,
                        content_type="application/json", headers=headers)


def jackson(value, indent: str = "") -> str:
    """JSON as ZooKeeper's Jackson writes it (INDENT_OUTPUT: DefaultPrettyPrinter)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _java_double(value)
    if isinstance(value, str):
        return _json_string(value)
    if isinstance(value, dict):
        if not value:
            return "{ }"
        inner = indent + "  "
        items = ",\n".join(f"{inner}{_json_string(str(k))} : {jackson(v, inner)}"
                           for k, v in value.items())
        return "{\n" + items + "\n" + indent + "}"
    if isinstance(value, (list, tuple, set, frozenset)):
        if not value:
            return "[ ]"
        return "[ " + ", ".join(jackson(v, indent) for v in value) + " ]"
    return _json_string(str(value))


def _json_string(s: str) -> str:
    import json
    return json.dumps(s, ensure_ascii=False)
