"""A real etcd v3 server (Debian's etcd-server) on loopback high ports, for
the tests of dnsmux's etcd backends (conftest.py's `etcd` and
`etcd_factory` fixtures).

    e = Etcd(client_port, peer_port, data_dir).start()
    e.url                       # "http://127.0.0.1:PORT", for etcd: endpoints
    e.put("/dnsrouter/x", "10.1.1.15:5300,^[ab]*\\.miek\\.nl\\.$")
    e.delete("/dnsrouter/x")
    e.kill(); e.start()         # the same ports and data: the keys survive
    e.cleanup()

Readiness is `etcdctl endpoint health`, polled (never a fixed sleep);
every wait is bounded."""

import os
import shutil
import signal
import subprocess
import time

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"


class Etcd:
    name = "etcd"

    def __init__(self, client_port, peer_port, data_dir, children=None):
        """children: a list every started process is appended to (conftest's
        watchdog kills what is in it)."""
        self.host = "127.0.0.1"
        self.port = client_port
        self.peer_port = peer_port
        self.dir = data_dir
        self.children = children if children is not None else []
        self.url = "http://%s:%d" % (self.host, self.port)
        self.peer_url = "http://%s:%d" % (self.host, self.peer_port)
        self.log_path = self.dir / "etcd.log"
        self.proc = None
        self.starts = 0

    def check_binary(self):
        if not os.access(ETCD, os.X_OK) or not os.access(ETCDCTL, os.X_OK):
            raise RuntimeError("etcd and etcdctl are needed: apt-get install etcd-server etcd-client "
                               "(./scripts/install-deps test)")

    def argv(self):
        return [ETCD, "--name", "default", "--data-dir", str(self.dir / "data"),
                "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                "--listen-peer-urls", self.peer_url, "--initial-advertise-peer-urls", self.peer_url,
                "--initial-cluster", "default=" + self.peer_url,
                "--log-level", "warn"]

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def ctl(self, *args, timeout=10.0, check=True):
        env = dict(os.environ, ETCDCTL_API="3")
        env.pop("http_proxy", None), env.pop("HTTP_PROXY", None)
        return subprocess.run([ETCDCTL, "--endpoints", self.url, "--dial-timeout=1s", "--command-timeout=2s"]
                              + list(args), capture_output=True, text=True, timeout=timeout, env=env, check=check)

    def ready(self):
        try:
            return self.ctl("endpoint", "health", check=False, timeout=5).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def start(self, timeout=20.0):
        assert not self.running
        self.check_binary()
        with open(self.log_path, "ab") as log:
            log.write(b"--- start %d\n" % self.starts)
        self.starts += 1
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        self.children.append(self.proc)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("etcd exited with %s:\n%s" % (self.proc.returncode, self.log()))
            if self.ready():
                return self
            time.sleep(0.05)
        raise RuntimeError("etcd on port %d not healthy after %.0fs:\n%s" % (self.port, timeout, self.log()))

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        if not self.running:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def kill(self):
        self.stop(signal.SIGKILL)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def put(self, key, value):
        # "--" so that a value starting with "-" is not an option
        self.ctl("put", "--", key, value)

    def delete(self, key):
        self.ctl("del", "--", key)

    def get_prefix(self, prefix):
        out = self.ctl("get", "--prefix", "--", prefix).stdout.splitlines()
        return dict(zip(out[0::2], out[1::2]))

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""
