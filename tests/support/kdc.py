"""A throw-away MIT Kerberos KDC on loopback, in its own realm and directory.

Needs Debian's krb5-kdc, krb5-admin-server and krb5-user (scripts/test
installs them); a test fails in CI, and skips elsewhere, if they are missing.
The KDC listens on a free loopback port; KRB5_CONFIG and KRB5_KDC_PROFILE
point at files in the temporary directory, so nothing in /etc is touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

REALM = "ZKPY.TEST"


def _tool(name: str) -> str:
    import pytest

    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if path:
        return path
    if os.environ.get("CI") == "true":
        pytest.fail(f"{name} is missing (scripts/test installs krb5-kdc, krb5-admin-server, "
                    "krb5-user)", pytrace=False)
    pytest.skip(f"{name} is missing")


class KDC:
    def __init__(self, directory: Path):
        self.dir = directory
        for tool in ("kdb5_util", "kadmin.local", "krb5kdc", "kinit"):
            _tool(tool)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.krb5_conf = directory / "krb5.conf"
        self.kdc_conf = directory / "kdc.conf"
        self.krb5_conf.write_text(f"""[libdefaults]
    default_realm = {REALM}
    dns_lookup_kdc = false
    dns_lookup_realm = false
    rdns = false
    udp_preference_limit = 1
    default_ccache_name = FILE:{directory}/ccache
[realms]
    {REALM} = {{
        kdc = 127.0.0.1:{self.port}
    }}
""")
        self.kdc_conf.write_text(f"""[kdcdefaults]
    kdc_ports = {self.port}
    kdc_tcp_ports = {self.port}
[realms]
    {REALM} = {{
        database_name = {directory}/principal
        key_stash_file = {directory}/stash
        acl_file = {directory}/kadm5.acl
        kdc_ports = {self.port}
        kdc_tcp_ports = {self.port}
    }}
[logging]
    kdc = FILE:{directory}/kdc.log
""")
        (directory / "kadm5.acl").write_text("")
        self.env = dict(os.environ, KRB5_CONFIG=str(self.krb5_conf),
                        KRB5_KDC_PROFILE=str(self.kdc_conf),
                        KRB5CCNAME=f"FILE:{directory}/ccache")
        self._run("kdb5_util", "create", "-s", "-r", REALM, "-P", "master-key-pw")
        self.proc = subprocess.Popen([_tool("krb5kdc"), "-n", "-r", REALM], env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"krb5kdc did not start: {self.proc.stderr.read()!r}")
                time.sleep(0.1)

    def _run(self, tool: str, *args: str) -> str:
        proc = subprocess.run([_tool(tool), *args], env=self.env, capture_output=True,
                              text=True, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)}: {proc.stdout}{proc.stderr}")
        return proc.stdout

    def add_principal(self, principal: str, keytab: Path) -> Path:
        self._run("kadmin.local", "-r", REALM, "-q", f"addprinc -randkey {principal}")
        self._run("kadmin.local", "-r", REALM, "-q", f"ktadd -k {keytab} {principal}")
        return keytab

    def kinit(self, principal: str, keytab: Path) -> None:
        self._run("kinit", "-k", "-t", str(keytab), principal)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def kdc_in_environment(directory: Path):
    """A KDC that this process's Kerberos library uses while it runs: its
    krb5.conf and credential cache in KRB5_CONFIG and KRB5CCNAME, which are
    put back as they were afterwards."""
    k = KDC(directory)
    saved = {v: os.environ.get(v) for v in ("KRB5_CONFIG", "KRB5CCNAME")}
    os.environ["KRB5_CONFIG"] = str(k.krb5_conf)
    os.environ["KRB5CCNAME"] = k.env["KRB5CCNAME"]
    try:
        yield k
    finally:
        k.stop()
        for v, value in saved.items():
            if value is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = value
