"""Fixtures for the dnsmux integration tests: loopback ports, a real knotd
origin, the scripted fault server, and the dnsmux binary itself.

  knotd           session-wide knotd serving the zone `test.` (helpers.zone_text)
  knotd_factory   fresh knotd instances a test may stop/kill and restart on
                  the same port (Knotd.stop/.kill/.start)
  fault_server    factory: FaultServer(**script) on a free loopback port
  pki, unbound_dot, unbound_factory, tls_fault_server   DNS-over-TLS (see the
                  section at the end of this file)
  unix_relay      factory: unix stream socket -> TCP relay (for unix:// upstreams)
  dnsmux          factory: start the binary, wait for `ready`; at teardown
                  SIGTERM, exit code 0 and no sanitizer report are asserted

The binary is $DNSMUX_BIN, else <repo>/build/dnsmux. DNSMUX_TEST_MARGIN
(seconds, default 1.0) is the lateness allowed over dnsmux's own deadlines;
raise it for slow sanitizer builds. Network traffic stays on loopback: the
dnsmux factory refuses to start the binary without an explicit loopback
(or unix://) upstream.
"""

import faulthandler
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import helpers  # noqa: E402
from fault_server import FaultServer, StreamRelay  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DNSMUX_BIN = Path(os.environ.get("DNSMUX_BIN", REPO / "build" / "dnsmux"))
KNOTD = shutil.which("knotd") or "/usr/sbin/knotd"
KNOTC = shutil.which("knotc") or "/usr/sbin/knotc"
MARGIN = float(os.environ.get("DNSMUX_TEST_MARGIN", "1.0"))
TEST_WATCHDOG_S = float(os.environ.get("DNSMUX_TEST_WATCHDOG", "150"))
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "ThreadSanitizer",
                   "UndefinedBehaviorSanitizer", "runtime error:")

_children = []  # every Popen we started, for the watchdog


# ---------------------------------------------------------------------------
# Watchdog: no test may hang the suite. Every wait in the tests is bounded;
# this is the last line of defence.


@pytest.fixture(autouse=True)
def _watchdog(request):
    def fire():
        sys.stderr.write("\nWATCHDOG: %s ran for more than %.0fs; killing children\n"
                         % (request.node.nodeid, TEST_WATCHDOG_S))
        faulthandler.dump_traceback(all_threads=True)
        for p in list(_children):
            if p.poll() is None:
                p.kill()
        sys.stderr.flush()
        os._exit(3)

    t = threading.Timer(TEST_WATCHDOG_S, fire)
    t.daemon = True
    t.start()
    yield
    t.cancel()


# ---------------------------------------------------------------------------
# Ports.

_given_ports = set()


def free_port(host="127.0.0.1"):
    """A port the kernel hands out on host that is free for both TCP and
    UDP right now, and that this run has not handed out before."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(200):
        with socket.socket(fam, socket.SOCK_STREAM) as t:
            t.bind((host, 0))
            port = t.getsockname()[1]
            if port in _given_ports:
                continue
            try:
                with socket.socket(fam, socket.SOCK_DGRAM) as u:
                    u.bind((host, port))
            except OSError:
                continue
        _given_ports.add(port)
        return port
    raise RuntimeError("no free port on %s" % host)


def have_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def short_tmpdir(prefix):
    """unix socket paths must stay under 108 bytes: pytest's tmp_path may not."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


# ---------------------------------------------------------------------------
# Kernel view of sockets (not dnsmux's own counters).


def _socket_inodes(pid):
    inodes = set()
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        try:
            link = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        m = re.fullmatch(r"socket:\[(\d+)\]", link)
        if m:
            inodes.add(m.group(1))
    return inodes


def tcp_established_ports(pid, remote_port, local_port=None):
    """Local ports of the ESTABLISHED TCP connections owned by process pid
    whose remote end is port remote_port, from /proc/PID/net/tcp{,6} and
    the process's fd table (the kernel's socket table). The local port is
    a connection's identity: a reconnect shows up as a new one.
    With local_port instead: the remote ports of pid's connections on that
    local port (accepted client connections)."""
    try:
        inodes = _socket_inodes(pid)
    except FileNotFoundError:
        return []
    out = []
    seen = set()  # reading /proc/net/tcp while connections come and go can list one twice
    for table in ("tcp", "tcp6"):
        try:
            with open("/proc/%d/net/%s" % (pid, table)) as f:
                lines = f.readlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            parts = line.split()
            local, rem, st, inode = parts[1], parts[2], parts[3], parts[9]
            if st != "01" or inode not in inodes or inode in seen:
                continue
            seen.add(inode)
            lport, rport = int(local.rsplit(":", 1)[1], 16), int(rem.rsplit(":", 1)[1], 16)
            if local_port is None and rport == remote_port:
                out.append(lport)
            elif local_port is not None and lport == local_port:
                out.append(rport)
    return out


def tcp_clients(pid, local_port):
    """Number of accepted, established TCP connections pid holds on local_port."""
    return len(tcp_established_ports(pid, None, local_port))


def tcp_established(pid, remote_port):
    """Number of ESTABLISHED TCP connections from pid to remote_port."""
    return len(tcp_established_ports(pid, remote_port))


def unix_connected(path):
    """Number of connected (accepted, server-side) stream sockets bound to
    the unix socket path, from /proc/net/unix."""
    count = 0
    with open("/proc/net/unix") as f:
        for line in f.readlines()[1:]:
            parts = line.split()
            if len(parts) >= 8 and parts[7] == str(path) and parts[5] == "03":
                count += 1
    return count


class Sampler:
    """Calls fn() every `interval` seconds in a thread and keeps the values
    (for "at most one connection at any time during the load")."""

    def __init__(self, fn, interval=0.02):
        self.fn = fn
        self.interval = interval
        self.values = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.values.append(self.fn())
            except Exception as e:  # keep sampling; report what went wrong
                self.values.append(e)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)


def connection_sampler(pid, remote_port):
    """A Sampler of the local ports of pid's established TCP connections to
    remote_port (see assert_one_connection)."""
    return Sampler(lambda: frozenset(tcp_established_ports(pid, remote_port)))


def assert_one_connection(samp, pid, remote_port):
    """What a connection_sampler saw during a load: never more than one
    connection at once, the same one all along, and it is still open."""
    samples = [v for v in samp.values if isinstance(v, frozenset)]
    assert samples, samp.values
    assert max(len(s) for s in samples) <= 1, "more than one upstream connection at once: %s" % samples
    seen = frozenset().union(*samples)
    assert len(seen) == 1, "upstream connection was replaced during the load (local ports %s)" % sorted(seen)
    assert tcp_established(pid, remote_port) == 1, "the circuit is not kept open after the load"


def wait_until(cond, timeout, interval=0.02):
    """Poll cond() until it returns a true value or timeout passes; returns
    the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


# ---------------------------------------------------------------------------
# knotd.

KNOT_CONF = """\
server:
    rundir: "{run}"
    listen: {host}@{port}
    udp-workers: 2
    tcp-workers: 2
    background-workers: 1
    tcp-idle-timeout: 300
    tcp-io-timeout: 5000
    tcp-max-clients: 256
    identity: ""
    version: ""
    nsid: ""

control:
    listen: "{run}/knot.sock"

database:
    storage: "{db}"

mod-stats:
  - id: default
    request-protocol: on

log:
  - target: stderr
    any: info

template:
  - id: default
    storage: "{zones}"
    file: "%s.zone"
    global-module: mod-stats/default
    journal-content: none
    zonefile-sync: -1
    semantic-checks: on

zone:
  - domain: test.
"""


class ServerProcess:
    """A real server a test starts, stops or kills, and starts again on the
    same port. A subclass sets name, port, log_path (the server's own log,
    where each start is marked), out_path (its stdout/stderr), argv() and
    ready() (answers right now), and may add check_binary()."""

    name = "server"
    proc = None
    starts = 0

    def check_binary(self):
        pass

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=20.0):
        assert not self.running
        self.check_binary()
        with open(self.log_path, "ab") as log:
            log.write(b"--- start %d\n" % self.starts)
        self.starts += 1
        with open(self.out_path, "ab") as out:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        _children.append(self.proc)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with %s:\n%s" % (self.name, self.proc.returncode, self.log()))
            if self.ready():
                return
            time.sleep(0.05)
        raise RuntimeError("%s on port %d not answering after %.0fs:\n%s" % (self.name, self.port, timeout, self.log()))

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


class Knotd(ServerProcess):
    """A knotd serving zone `test.` on host:port; stop()/kill() and start()
    again keep the same port."""

    name = "knotd"

    def __init__(self, host="127.0.0.1", port=None, zones=None):
        """zones: {"name.": zone text} to serve instead of test. (for routing tests)."""
        self.host = host
        self.port = port or free_port(host)
        self.dir = short_tmpdir("dnsmux-knot-")
        for sub in ("run", "db", "zones"):
            (self.dir / sub).mkdir()
        zones = zones or {"test.": helpers.zone_text()}
        for name, text in zones.items():
            (self.dir / "zones" / ("%szone" % name)).write_text(text)
        self.zones = list(zones)
        conf = KNOT_CONF.format(run=self.dir / "run", db=self.dir / "db", zones=self.dir / "zones", host=host,
                                port=self.port)
        conf = conf.replace("zone:\n  - domain: test.\n", "zone:\n" + "".join("  - domain: %s\n" % z for z in zones))
        self.conf = self.dir / "knot.conf"
        self.conf.write_text(conf)
        self.log_path = self.out_path = self.dir / "knotd.log"

    def url(self, scheme="tcp"):
        h = "[%s]" % self.host if ":" in self.host else self.host
        return "%s://%s:%d" % (scheme, h, self.port)

    def argv(self):
        return [KNOTD, "-c", str(self.conf)]

    def answers(self, tcp):
        if self.zones != ["test."]:
            q = dns.message.make_query(self.zones[0], "SOA")
            try:
                r = (dns.query.tcp if tcp else dns.query.udp)(q, self.host, port=self.port, timeout=0.5)
            except (OSError, EOFError, dns.exception.DNSException):
                return False
            return r.rcode() == 0 and bool(r.answer)
        q = dns.message.make_query("www.test.", "A")
        try:
            if tcp:
                r = dns.query.tcp(q, self.host, port=self.port, timeout=0.5)
            else:
                r = dns.query.udp(q, self.host, port=self.port, timeout=0.5)
        except (OSError, EOFError, dns.exception.DNSException):
            return False
        return helpers.rdata_set(r) == {helpers.WWW_A}

    def ready(self):
        return self.answers(tcp=False) and self.answers(tcp=True)

    def queries(self):
        """Queries knotd has answered so far (mod-stats, via knotc)."""
        out = subprocess.run([KNOTC, "-c", str(self.conf), "stats", "mod-stats.server-operation"],
                             capture_output=True, text=True, timeout=10).stdout
        m = re.search(r"server-operation\[query\] = (\d+)", out)
        return int(m.group(1)) if m else 0

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""


@pytest.fixture(scope="session")
def knotd():
    k = Knotd().start()
    yield k
    k.cleanup()


@pytest.fixture
def knotd_factory():
    made = []

    def make(host="127.0.0.1", zones=None):
        k = Knotd(host=host, zones=zones)
        made.append(k)
        return k.start()

    yield make
    for k in made:
        k.cleanup()


# ---------------------------------------------------------------------------
# Fault server and relay.


@pytest.fixture
def fault_server():
    made = []

    def make(host="127.0.0.1", **script):
        s = FaultServer(host=host, port=free_port(host), **script)
        made.append(s)
        return s.start()

    yield make
    for s in made:
        s.stop()


@pytest.fixture
def unix_relay():
    made = []

    def make(host, port):
        d = short_tmpdir("dnsmux-relay-")
        r = StreamRelay(str(d / "dns.sock"), host, port)
        made.append((r, d))
        return r.start()

    yield make
    for r, d in made:
        r.stop()
        shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------------------
# dnsmux.

UPSTREAM_FLAGS = ("-u", "--upstream", "--connect-tcp")


def upstream_values(argv):
    out = []
    it = iter(range(len(argv)))
    for i in it:
        a = argv[i]
        if a in UPSTREAM_FLAGS and i + 1 < len(argv):
            out.append(argv[i + 1])
            next(it, None)
        else:
            for f in UPSTREAM_FLAGS[1:]:
                if a.startswith(f + "="):
                    out.append(a[len(f) + 1:])
    return out


def config_file_upstreams(argv):
    """The upstream URLs a -c FILE names (pool members), read as text."""
    out = []
    for i, a in enumerate(argv):
        if a in ("-c", "--config") and i + 1 < len(argv):
            text = Path(argv[i + 1]).read_text()
            out += re.findall(r"(?:udp|tcp|tls|https?)://[^\s,\]\}'\"]+", text)  # (http: etcd endpoints)
    return out


def assert_loopback_only(argv):
    """Refuse to start dnsmux unless it has at least one upstream and every
    upstream is loopback or a unix socket (no --upstream at all would make
    it forward to public resolvers). Upstreams in a -c FILE count."""
    ups = upstream_values(argv) + config_file_upstreams(argv)
    assert ups, "refusing to start dnsmux without an explicit loopback --upstream: %r" % (argv,)
    for u in ups:
        if u.startswith(("unix://", "mdns://")):  # mdns: the link only, and tests run it in a netns of their own
            continue
        rest = u.split("://", 1)[1] if "://" in u else u
        rest = rest.split("/", 1)[0].split("#", 1)[0].split("?", 1)[0]
        if rest.startswith("["):
            host = rest[1:rest.index("]")]
        else:
            host = rest.rsplit(":", 1)[0] if rest.count(":") == 1 else rest
        assert helpers.is_loopback_host(host), "refusing non-loopback upstream %r" % u


def dnsmux_env():
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:strict_string_checks=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=0")
    return env


def require_binary():
    if not (DNSMUX_BIN.is_file() and os.access(DNSMUX_BIN, os.X_OK)):
        pytest.fail("dnsmux binary %s not built (meson setup build && ninja -C build, or set DNSMUX_BIN)"
                    % DNSMUX_BIN)


def run_dnsmux(argv, timeout=15.0):
    """Run dnsmux to completion (CLI tests). The argv must still carry a
    loopback upstream and listener, in case the binary does not exit."""
    require_binary()
    assert_loopback_only(argv)
    try:
        return subprocess.run([str(DNSMUX_BIN), *argv], stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout, env=dnsmux_env(), text=True, errors="replace")
    except subprocess.TimeoutExpired as e:
        pytest.fail("dnsmux %r did not exit within %.0fs (stderr: %r)" % (argv, timeout, e.stderr))


def sanitizer_report(text):
    return [line for line in text.splitlines() if any(m in line for m in SANITIZER_MARKS)]


STATS_RE = re.compile(r"\bstats\b(.*)$")


def parse_stats_line(line):
    m = STATS_RE.search(line)
    out = {}
    for tok in m.group(1).split():
        if "=" in tok:
            k, v = tok.split("=", 1)
            out[k] = int(v) if re.fullmatch(r"-?\d+", v) else v
        else:
            out[tok] = True
    return out


class Stats:
    """One SIGUSR1 dump: .workers {id: {key: int}}, .total {key: int}."""

    def __init__(self, workers, total):
        self.workers = workers
        self.total = total

    def __getitem__(self, key):
        if key not in self.total:
            raise KeyError("stats total line has no %r: %r" % (key, self.total))
        return self.total[key]

    def __repr__(self):
        return "Stats(total=%r, workers=%r)" % (self.total, self.workers)


class Dnsmux:
    def __init__(self, argv, workdir, n, netns=None):
        self.argv = argv
        self.netns = netns  # run inside this network namespace (which has only lo)
        self.wrapper = []  # a command that execs the binary (same pid), e.g. prlimit_wrapper()
        self.pass_fds = ()  # descriptors it inherits (socket activation: test_privileges.py)
        self.stderr_path = workdir / ("dnsmux-%d.stderr" % n)
        self.stdout_path = workdir / ("dnsmux-%d.stdout" % n)
        self.proc = None
        self.port = None  # first --listen port, when the factory chose it
        self.expect_rc = 0
        self.was_ready = False

    @property
    def pid(self):
        return self.proc.pid

    def start(self, ready_timeout=20.0):
        require_binary()
        if self.netns is None:
            assert_loopback_only(self.argv)  # (a namespace of the test's own has nothing but lo)
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []  # ip execs: same pid
        prefix += self.wrapper
        with open(self.stderr_path, "wb") as err, open(self.stdout_path, "wb") as out:
            self.proc = subprocess.Popen(prefix + [str(DNSMUX_BIN), *self.argv], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=err, env=dnsmux_env(), pass_fds=self.pass_fds)
        _children.append(self.proc)
        deadline = time.monotonic() + ready_timeout
        while True:
            if re.search(r"\bready\b", self.log()):
                self.was_ready = True
                return self
            if self.proc.poll() is not None:
                pytest.fail("dnsmux %r exited with %d before `ready`:\n%s"
                            % (self.argv, self.proc.returncode, self.log()[-3000:]))
            if time.monotonic() > deadline:
                pytest.fail("dnsmux %r printed no `ready` line within %.0fs:\n%s"
                            % (self.argv, ready_timeout, self.log()[-3000:]))
            time.sleep(0.02)

    def log(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def alive(self):
        return self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def _stats_lines(self):
        return [ln for ln in self.log().splitlines() if STATS_RE.search(ln)]

    def last_stats(self):
        """Parse the last complete stats dump already in the log (e.g. the
        one written at exit), or None."""
        lines = self._stats_lines()
        totals = [i for i, ln in enumerate(lines) if re.search(r"\bstats\s+total\b", ln)]
        if not totals:
            return None
        end = totals[-1]
        start = totals[-2] + 1 if len(totals) > 1 else 0
        workers = {}
        for ln in lines[start:end]:
            d = parse_stats_line(ln)
            if "worker" in d:
                workers[d["worker"]] = d
        return Stats(workers, parse_stats_line(lines[end]))

    def stats(self, timeout=10.0):
        """SIGUSR1, wait (bounded) for the new dump, parse it."""
        assert self.alive(), "dnsmux is not running:\n" + self.log()[-2000:]
        before = len([ln for ln in self._stats_lines() if re.search(r"\bstats\s+total\b", ln)])
        self.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while True:
            n = len([ln for ln in self._stats_lines() if re.search(r"\bstats\s+total\b", ln)])
            if n > before:
                return self.last_stats()
            if time.monotonic() > deadline:
                pytest.fail("no `stats total` line within %.0fs of SIGUSR1:\n%s" % (timeout, self.log()[-2000:]))
            time.sleep(0.02)

    def wait_stats(self, pred, timeout=10.0, interval=0.1):
        """Dump stats until pred(stats) holds (bounded); returns the last dump."""
        deadline = time.monotonic() + timeout
        while True:
            s = self.stats()
            if pred(s) or time.monotonic() > deadline:
                return s
            time.sleep(interval)

    def upstream_tcp(self, port):
        return tcp_established(self.pid, port)

    def stop(self, sig=signal.SIGTERM, timeout=30.0):
        """Signal and wait; returns the exit code (kills after timeout)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                pytest.fail("dnsmux did not exit within %.0fs of %s:\n%s" % (timeout, sig, self.log()[-2000:]))
        return self.proc.returncode

    def wait(self, timeout):
        """Wait for an exit already under way (no signal sent); fail if it
        does not come within timeout."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail("dnsmux still running %.0fs later:\n%s" % (timeout, self.log()[-2000:]))

    def problems(self):
        """Teardown checks: exit code and sanitizer reports."""
        out = []
        rc = self.stop()
        # (a start that failed has already failed the test)
        if self.was_ready and rc != self.expect_rc:
            out.append("dnsmux %r exited with %s (expected %s)" % (self.argv, rc, self.expect_rc))
        rep = sanitizer_report(self.log())
        if rep:
            out.append("sanitizer report from dnsmux %r:\n  %s" % (self.argv, "\n  ".join(rep[:20])))
        if out:
            out.append("--- stderr tail (%s):\n%s" % (self.stderr_path, self.log()[-3000:]))
        return out


@pytest.fixture
def dnsmux(tmp_path):
    """Factory: dnsmux(*extra_args, upstream=URL or [URLs], listen=[URLs] or
    None, ready=True). With listen=None it listens on 127.0.0.1:<free port>
    (UDP+TCP), available as .port. Returns a started Dnsmux."""
    started = []

    def start(*args, upstream=None, listen=None, ready=True):
        argv = []
        port = None
        if listen is None:
            port = free_port()
            listen = ["127.0.0.1:%d" % port]
        for url in listen:
            argv += ["--listen", url]
        if upstream is not None:
            for u in [upstream] if isinstance(upstream, str) else upstream:
                argv += ["--upstream", u]
        argv += [str(a) for a in args]
        d = Dnsmux(argv, tmp_path, len(started))
        d.port = port
        started.append(d)
        if ready:
            d.start()
        return d

    yield start
    errors = []
    for d in started:
        if d.proc is not None:
            errors += d.problems()
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)


# ---------------------------------------------------------------------------
# DNS-over-TLS: test PKI, Unbound serving DoT, scripted TLS upstream.
#
#   pki               session-wide Pki (pki.py): ca.pem, server/ecdsa/expired/
#                     other certificates for dns.test, SPKI pins
#   unbound_dot       session-wide Unbound on 127.0.0.1:<port> serving DoT
#                     with the `server` certificate, forwarding everything to
#                     the knotd fixture over plain DNS
#   unbound_factory   fresh Unbound instances a test may stop/kill/start on
#                     the same port (restart test)
#   tls_fault_server  factory: FaultServer speaking DoT with a chosen
#                     certificate, recording every query it receives

import ssl  # noqa: E402

from fault_server import tls_server_context  # noqa: E402
from pki import SERVER_NAME, Pki  # noqa: E402

UNBOUND = shutil.which("unbound") or "/usr/sbin/unbound"

# Everything Unbound could ask goes to knotd on loopback: a forward zone for
# "." as well as for test. means it never looks at root hints, and the root
# hints themselves point at loopback, so even priming cannot leave the host.
UNBOUND_CONF = """\
server:
    verbosity: 1
    use-syslog: no
    logfile: "{log}"
    log-time-ascii: yes
    do-daemonize: no
    chroot: ""
    username: ""
    directory: "{dir}"
    pidfile: "{dir}/unbound.pid"
    root-hints: "{dir}/root.hints"
    num-threads: 1
    interface-automatic: no
    interface: {host}@{port}
    port: {port}
    tls-port: {port}
    tls-service-key: "{key}"
    tls-service-pem: "{cert}"
    tls-session-ticket-keys: "{ticket_key}"
    do-ip4: yes
    do-ip6: no
    do-udp: yes
    do-tcp: yes
    so-reuseport: no
    outgoing-interface: 127.0.0.1
    outgoing-range: 64
    do-not-query-localhost: no
    module-config: "iterator"
    prefetch: no
    qname-minimisation: no
    minimal-responses: yes
    use-caps-for-id: no
    incoming-num-tcp: 256
    tcp-idle-timeout: 120000
    edns-tcp-keepalive: no
    statistics-interval: 0
    local-zone: "test." nodefault
    domain-insecure: "test."
    domain-insecure: "."

remote-control:
    control-enable: no

forward-zone:
    name: "test."
    forward-addr: 127.0.0.1@{origin_port}

forward-zone:
    name: "."
    forward-addr: 127.0.0.1@{origin_port}
"""

ROOT_HINTS = ".  3600000  NS  loopback.root.\nloopback.root.  3600000  A  127.0.0.1\n"


def tls_client_context(ca_file, check_hostname=True):
    """Client SSLContext trusting ca_file (and nothing else)."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    ctx.check_hostname = check_hostname
    return ctx


class Unbound(ServerProcess):
    """Unbound serving DNS-over-TLS on host:port with pki's certificate
    `cert`, forwarding to the origin (knotd) on origin_port over plain DNS.
    stop()/kill() and start() again keep the port and the session ticket
    key (so tickets issued before a restart resume after it)."""

    name = "unbound"

    def __init__(self, pki, origin_port, cert="server", host="127.0.0.1", port=None):
        self.pki = pki
        self.host = host
        self.port = port or free_port(host)
        self.origin_port = origin_port
        self.dir = short_tmpdir("dnsmux-unbound-")
        (self.dir / "root.hints").write_text(ROOT_HINTS)
        self.ticket_key = self.dir / "ticket.key"
        self.ticket_key.write_bytes(os.urandom(80))
        self.ticket_key.chmod(0o600)
        self.conf = self.dir / "unbound.conf"
        self.log_path = self.dir / "unbound.log"
        self.conf.write_text(UNBOUND_CONF.format(
            log=self.log_path, dir=self.dir, host=host, port=self.port, key=pki.key_file(cert),
            cert=pki.cert_file(cert), ticket_key=self.ticket_key, origin_port=origin_port))
        self.out_path = self.dir / "unbound.out"

    def url(self, name=SERVER_NAME, pin=None):
        u = "tls://%s:%d" % (self.host, self.port)
        if pin:
            u += "?pin=sha256/" + pin
        if name:
            u += "#" + name
        return u

    def check_binary(self):
        if not os.access(UNBOUND, os.X_OK):
            pytest.fail("%s not found: apt-get install unbound (scripts/install-deps test)" % UNBOUND)

    def argv(self):
        return [UNBOUND, "-d", "-c", str(self.conf)]

    def query(self, qname="www.test.", rdtype="A", timeout=1.0):
        q = dns.message.make_query(qname, rdtype)
        return dns.query.tls(q, self.host, port=self.port, timeout=timeout,
                             ssl_context=tls_client_context(self.pki.ca_file), server_hostname=SERVER_NAME)

    def answers(self):
        try:
            r = self.query()
        except (OSError, EOFError, ssl.SSLError, dns.exception.DNSException):
            return False
        return helpers.rdata_set(r) == {helpers.WWW_A}

    def ready(self):
        return self.answers()

    def log(self):
        text = ""
        for p in (self.log_path, self.out_path):
            try:
                text += p.read_text(errors="replace")[-3000:]
            except FileNotFoundError:
                pass
        return text


@pytest.fixture(scope="session")
def pki():
    d = short_tmpdir("dnsmux-pki-")
    yield Pki(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def unbound_dot(pki, knotd):
    u = Unbound(pki, knotd.port).start()
    yield u
    u.cleanup()


@pytest.fixture
def unbound_factory(pki, knotd):
    made = []

    def make(cert="server"):
        u = Unbound(pki, knotd.port, cert=cert)
        made.append(u)
        return u.start()

    yield make
    for u in made:
        u.cleanup()


@pytest.fixture
def tls_fault_server(pki):
    """Factory: tls_fault_server(cert="server", **script) -> a started
    FaultServer speaking DoT with pki's certificate `cert`; .url_tls(name,
    pin) gives the dnsmux upstream URL."""
    made = []

    def make(cert="server", host="127.0.0.1", **script):
        ctx = tls_server_context(pki.cert_file(cert), pki.key_file(cert))
        s = FaultServer(host=host, port=free_port(host), ssl_context=ctx, **script)
        made.append(s)
        return s.start()

    yield make
    for s in made:
        s.stop()


def tls_url(host, port, name=SERVER_NAME, pins=()):
    """tls://HOST:PORT[?pin=sha256/..&pin=..][#NAME]"""
    u = "tls://%s:%d" % (host, port)
    if pins:
        u += "?" + "&".join("pin=sha256/" + p for p in pins)
    if name:
        u += "#" + name
    return u


# ---------------------------------------------------------------------------
# The origin restarted under a steady load (test_reconnect, test_dot_upstream)

def restart_under_load(d, origin_down, origin_up, timeout_s, clients=10, per_client=20000):
    """Ten UDP clients query dnsmux steadily; once answers flow, origin_down()
    is called, the origin is held down until dnsmux has had to SERVFAIL a
    query, then origin_up() and the load goes on 1.5 s more (it must: a
    load that ran out of queries earlier would let circuits idle away and
    prove nothing about the restart). Returns (results, t_down, t_ready)."""
    import dns.rcode
    import helpers
    stop = threading.Event()
    results = []
    lock = threading.Lock()

    def client(c):
        with helpers.udp_socket() as s:
            for i in range(per_client):  # bounded; normally ended by `stop`
                if stop.is_set():
                    return
                name = "n%d.test." % ((c * 37 + i) % helpers.N_NAMES)
                r = helpers.udp_one(s, (name, "A"), d.port, "127.0.0.1", timeout_s + MARGIN + 1.0, False)
                with lock:
                    results.append(r)

    def count(pred):
        with lock:
            return sum(1 for r in results if pred(r))

    threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(clients)]
    for t in threads:
        t.start()
    try:
        assert wait_until(lambda: count(lambda r: r.rcode == dns.rcode.NOERROR) >= 100, 10.0), \
            "load did not get going:\n" + d.log()[-2000:]
        t_down = time.monotonic()
        origin_down()
        # hold the origin down until dnsmux has had to give up on a query
        wait_until(lambda: count(lambda r: r.sent > t_down and r.rcode == dns.rcode.SERVFAIL) > 0,
                   timeout_s + MARGIN + 1.0)
        origin_up()
        t_ready = time.monotonic()
        # keep the load running for a while after the restart
        assert wait_until(lambda: count(lambda r: r.sent > t_ready + 1.5 and r.rcode is not None) >= 50, 10.0), \
            "fewer than 50 answers to queries sent 1.5 s after the restart:\n" + d.log()[-2000:]
    finally:
        stop.set()
        for t in threads:
            t.join(timeout_s + MARGIN + 5)
    return results, t_down, t_ready


def assert_restart_results(d, results, t_down, t_ready, timeout_s, origin="the origin"):
    """Every query answered right, or SERVFAIL (with its own ID and question)
    within --timeout; answers again within 1 s of the origin being back; no
    failure among queries sent more than 1 s after that."""
    import dns.rcode
    import helpers
    assert d.alive(), "dnsmux died:\n" + d.log()[-2000:]
    bad = []
    for r in results:
        if r.error:
            bad.append("%s sent at %+.2fs: %s" % (r.qname, r.sent - t_down, r.error))
        elif r.elapsed > timeout_s + MARGIN:
            bad.append("%s: answered after %.2fs" % (r.qname, r.elapsed))
        elif r.rcode == dns.rcode.NOERROR:
            p = helpers.check_answer(r.qwire, r.rwire, helpers.expected_rdata(r.qname, "A"))
            if p:
                bad.append("%s: %s" % (r.qname, p))
        elif r.rcode != dns.rcode.SERVFAIL:
            bad.append("%s: rcode %s" % (r.qname, dns.rcode.to_text(r.rcode)))
        elif r.rwire[:2] != r.qwire[:2] or helpers.question_bytes(r.rwire) != helpers.question_bytes(r.qwire):
            bad.append("%s: SERVFAIL with wrong id/question" % r.qname)
    assert not bad, bad[:10]
    ok_after = [r.sent + r.elapsed for r in results if r.sent >= t_ready and r.rcode == dns.rcode.NOERROR]
    assert ok_after, "no answer at all after the restart:\n" + d.log()[-2000:]
    assert min(ok_after) - t_ready <= 1.0, "first answer %.2fs after %s was back" % (min(ok_after) - t_ready, origin)
    late_fail = [r for r in results if r.sent >= t_ready + 1.0 and r.rcode != dns.rcode.NOERROR]
    assert not late_fail, "%d queries sent >1s after the restart failed" % len(late_fail)


# ---------------------------------------------------------------------------
# Resource limits for a dnsmux under test (test_connect_failure)


def prlimit_wrapper(nofile_soft, nofile_hard=None):
    """Dnsmux.wrapper that starts the binary with these RLIMIT_NOFILE
    limits (prlimit(1) sets them, then execs it: same pid)."""
    return ["prlimit", "--nofile=%d:%d" % (nofile_soft, nofile_soft if nofile_hard is None else nofile_hard), "--"]


def process_nofile_limit(pid):
    """(soft, hard) 'Max open files' of a running process, from /proc/PID/limits."""
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise RuntimeError("no 'Max open files' in /proc/%d/limits" % pid)


# ---------------------------------------------------------------------------
# etcd (etcd_fixture.py): a real etcd v3 on loopback high ports.
#   etcd          one per test: .url for etcd: endpoints, .put/.delete, .kill/.start
#   etcd_factory  make(): more of them (each its own ports and data directory)

from etcd_fixture import Etcd  # noqa: E402


@pytest.fixture
def etcd_factory():
    made = []

    def make():
        e = Etcd(free_port(), free_port(), short_tmpdir("dnsmux-etcd-"), children=_children)
        made.append(e)
        return e.start()

    yield make
    for e in made:
        e.cleanup()


@pytest.fixture
def etcd(etcd_factory):
    return etcd_factory()
