"""Running as a service: the privilege drop (--user, --chroot), socket
activation (LISTEN_FDS), readiness (NOTIFY_SOCKET), the PCRE2 JIT under
MemoryDenyWriteExecute, and the systemd units in contrib/.

The drop is shown where it matters, on port 53, so in a network namespace
the test creates (only `lo`): dnsmux starts as root with --user nobody, a
knotd origin and the scripted server run in the same namespace, and every
thread's /proc/PID/task/N/status must show nobody's uid and gid, no
supplementary group and no capability. A SIGHUP afterwards must still
reload the file (readable by nobody). LeakSanitizer keeps working after the
drop (it makes the process dumpable for its own ptrace at exit), so these
runs keep the usual ASAN_OPTIONS -- but in a chroot, where it finds no
/proc: test_chroot turns leak detection off for its process."""

import fcntl
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys

import dns.message
import dns.query
import pytest

import helpers
from conftest import (DNSMUX_BIN, MARGIN, REPO, Dnsmux, Knotd, dnsmux_env, free_port, run_dnsmux, short_tmpdir,
                      wait_until)
from fault_server import answer_a
from test_listen_any import netns, ns_run, ns_upstream  # noqa: F401  (fixtures: a namespace with lo, a server in it)

needs_netns = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"),
                                 reason="needs root and iproute2 (ip netns)")
NOBODY = pwd.getpwnam("nobody")
ORIGIN_PORT = 10055  # knotd inside the namespace


def task_status(pid):
    """{tid: {field: value}} of every thread of pid."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
            out[tid] = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    return out


def assert_dropped(pid, threads):
    """Every thread: nobody's uid and gid in all four fields, no groups, no
    capability in the effective, permitted, inheritable or ambient set
    (the bounding set is emptied too, as root could)."""
    st = task_status(pid)
    assert len(st) >= 1 + threads, st.keys()  # main + workers
    for tid, s in st.items():
        assert s["Uid"].split() == [str(NOBODY.pw_uid)] * 4, (tid, s["Uid"])
        assert s["Gid"].split() == [str(NOBODY.pw_gid)] * 4, (tid, s["Gid"])
        assert s["Groups"].strip() == "", (tid, s["Groups"])
        for cap in ("CapEff", "CapPrm", "CapInh", "CapAmb", "CapBnd"):
            assert int(s[cap], 16) == 0, (tid, cap, s[cap])
        assert s["NoNewPrivs"].strip() == "1", (tid, s["NoNewPrivs"])


class NsKnotd(Knotd):
    """knotd serving test. inside the namespace (ready checked from there)."""

    def __init__(self, ns):
        super().__init__(port=ORIGIN_PORT)
        self.ns = ns

    def argv(self):
        return ["ip", "netns", "exec", self.ns] + super().argv()

    def answers(self, tcp):
        return ns_dig(self.ns, self.port, "www.test.", tcp=tcp) == [helpers.WWW_A]


def ns_dig(ns, port, name, tcp=False):
    r = ns_run(ns, ["dig", "@127.0.0.1", "-p", str(port), name, "A", "+short", "+tries=1",
                    "+time=%d" % int(2 + MARGIN)] + (["+tcp"] if tcp else []))
    return r.stdout.split()


@pytest.fixture
def ns_knotd(netns):  # noqa: F811
    k = NsKnotd(netns)
    k.start()
    yield k
    k.cleanup()


@pytest.fixture
def conf_dir():
    """A directory nobody can read (pytest's tmp_path is root's alone)."""
    d = short_tmpdir("dnsmux-priv-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def write_conf(path, text):
    tmp = path.with_suffix(".new")
    tmp.write_text(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


CONF_1 = """\
pools:
  default:
    members: [udp://127.0.0.1:%d]
""" % ORIGIN_PORT

CONF_2 = CONF_1 + """\
  other:
    members: [%s]
routes:
  - suffix: example.
    pool: other
  - suffix: .
    pool: default
"""


@needs_netns
def test_runs_as_nobody_on_port_53_and_reloads(netns, ns_knotd, ns_upstream, conf_dir, tmp_path):  # noqa: F811
    """Root binds 127.0.0.1:53, then every thread is nobody with no
    capability; it answers on port 53; a SIGHUP reads the changed file as
    nobody and routes example. to the new pool."""
    conf = conf_dir / "dnsmux.yaml"
    write_conf(conf, CONF_1)
    d = Dnsmux(["--user", "nobody", "--listen", "127.0.0.1:53", "--threads", "2", "-c", str(conf)], tmp_path, 0,
               netns=netns)
    d.start()
    try:
        assert "running as user 'nobody' (uid %d" % NOBODY.pw_uid in d.log()
        assert_dropped(d.pid, threads=2)
        assert ns_dig(netns, 53, "www.test.") == [helpers.WWW_A]
        assert ns_dig(netns, 53, "www.test.", tcp=True) == [helpers.WWW_A]
        assert ns_dig(netns, 53, "host.example.") == []  # knotd is not authoritative for it

        write_conf(conf, CONF_2 % ns_upstream)
        d.send_signal(signal.SIGHUP)
        assert wait_until(lambda: "SIGHUP: configuration 2 in force" in d.log(), 10), d.log()[-2000:]
        assert ns_dig(netns, 53, "host.example.") == [answer_a("host.example.")]
        assert ns_dig(netns, 53, "www.test.") == [helpers.WWW_A]
        assert_dropped(d.pid, threads=2)
    finally:
        problems = d.problems()
    assert not problems, "\n".join(problems)


@needs_netns
def test_unreadable_file_is_named_at_start_and_reload_keeps_running(netns, ns_knotd, conf_dir, tmp_path):  # noqa: F811
    """A file only root can read: said at start (not at the first SIGHUP);
    the SIGHUP then keeps the running configuration and says why."""
    conf = conf_dir / "dnsmux.yaml"
    write_conf(conf, CONF_1)
    os.chmod(conf, 0o600)
    d = Dnsmux(["--user", "nobody", "--listen", "127.0.0.1:53", "-c", str(conf)], tmp_path, 0, netns=netns)
    d.start()
    try:
        assert re.search(r"configuration file \S+ is not readable by user 'nobody' \(Permission denied\)", d.log())
        d.send_signal(signal.SIGHUP)
        assert wait_until(lambda: "SIGHUP: keeping the running configuration" in d.log(), 10), d.log()[-2000:]
        assert "Permission denied" in d.log().split("SIGHUP: keeping", 1)[1]
        assert ns_dig(netns, 53, "www.test.") == [helpers.WWW_A]
    finally:
        problems = d.problems()
    assert not problems, "\n".join(problems)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (to drop it)")
def test_key_only_root_can_read(dnsmux, knotd, pki, conf_dir):
    """A DoT key readable by root alone: read at start, named at start as
    one a SIGHUP cannot reload; the SIGHUP keeps the old certificate and
    says why; the listener goes on serving."""
    shutil.copyfile(pki.cert_file("server"), conf_dir / "cert.pem")
    shutil.copyfile(pki.key_file("server"), conf_dir / "key.pem")
    os.chmod(conf_dir / "cert.pem", 0o644)
    os.chmod(conf_dir / "key.pem", 0o600)
    port = free_port()
    d = dnsmux("--user", "nobody", "--tls-cert", conf_dir / "cert.pem", "--tls-key", conf_dir / "key.pem",
               upstream=knotd.url("udp"), listen=["tls://127.0.0.1:%d" % port])
    assert "the key %s is not readable by user 'nobody' (Permission denied)" % (conf_dir / "key.pem") in d.log()
    d.send_signal(signal.SIGHUP)
    want = "SIGHUP: keeping the old certificate: --tls-key %s: cannot read it as uid %d: Permission denied" % (
        conf_dir / "key.pem", NOBODY.pw_uid)
    assert wait_until(lambda: want in d.log(), 10), d.log()[-2000:]
    r = subprocess.run(["kdig", "+tls", "+tls-ca=%s" % pki.ca_file, "+tls-hostname=dns.test", "@127.0.0.1", "-p",
                        str(port), "www.test.", "A", "+short", "+time=%d" % int(2 + MARGIN)],
                       capture_output=True, text=True, timeout=20)
    assert r.stdout.split() == [helpers.WWW_A], r


@needs_netns
@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv (util-linux)")
def test_ambient_capability_given_up_after_binding(netns, ns_knotd, tmp_path):  # noqa: F811
    """As systemd runs it with User= and AmbientCapabilities=CAP_NET_BIND_SERVICE
    (setpriv does the same here): port 53 is bound with the capability,
    which no thread keeps afterwards."""
    d = Dnsmux(["--listen", "127.0.0.1:53", "--threads", "2", "--upstream", "udp://127.0.0.1:%d" % ORIGIN_PORT],
               tmp_path, 0, netns=netns)
    d.wrapper = ["setpriv", "--reuid=%d" % NOBODY.pw_uid, "--regid=%d" % NOBODY.pw_gid, "--clear-groups",
                 "--inh-caps=+net_bind_service", "--ambient-caps=+net_bind_service"]
    d.start()
    try:
        assert "capabilities given up (uid %d)" % NOBODY.pw_uid in d.log()
        for tid, st in task_status(d.pid).items():
            for cap in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
                assert int(st[cap], 16) == 0, (tid, cap, st[cap])
            assert st["NoNewPrivs"].strip() == "1"
        assert ns_dig(netns, 53, "www.test.") == [helpers.WWW_A]
    finally:
        problems = d.problems()
    assert not problems, "\n".join(problems)


def test_unknown_user_exits_2_naming_it(knotd, tmp_path):
    port = free_port()
    r = run_dnsmux(["--user", "no-such-user-dnsmux", "--listen", "127.0.0.1:%d" % port, "--upstream", knotd.url("udp")])
    assert r.returncode == 2, r
    assert "no-such-user-dnsmux" in r.stderr and "no such user" in r.stderr, r.stderr
    conf = tmp_path / "u.yaml"
    conf.write_text("user: no-such-user-dnsmux\nlisten: [127.0.0.1:%d]\n%s" % (port, CONF_1))
    r = run_dnsmux(["--check-config", "-c", str(conf)])
    assert r.returncode == 2, r
    assert "no-such-user-dnsmux" in r.stderr and str(conf) in r.stderr, r.stderr


def test_failing_chroot_exits_1_naming_it(knotd):
    r = run_dnsmux(["--user", "nobody", "--chroot", "/nonexistent-dnsmux-root", "--listen", "127.0.0.1:%d" % free_port(),
                    "--upstream", knotd.url("udp")])
    assert r.returncode == 1, r
    assert "chroot /nonexistent-dnsmux-root: No such file or directory" in r.stderr, r.stderr


@needs_netns
def test_chroot(netns, ns_knotd, tmp_path):  # noqa: F811
    """--chroot: an empty directory is root; it still answers, as nobody.
    LeakSanitizer reads /proc/PID/task at exit, which a chroot has not: off
    for this process alone."""
    root = short_tmpdir("dnsmux-chroot-")
    os.chmod(root, 0o755)
    try:
        d = Dnsmux(["--user", "nobody", "--chroot", str(root), "--listen", "127.0.0.1:53", "--upstream",
                    "udp://127.0.0.1:%d" % ORIGIN_PORT], tmp_path, 0, netns=netns)
        d.wrapper = ["env", "ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:strict_string_checks=1"]
        d.start()
        try:
            assert os.readlink("/proc/%d/root" % d.pid) == str(root)
            assert_dropped(d.pid, threads=1)
            assert ns_dig(netns, 53, "www.test.") == [helpers.WWW_A]
        finally:
            problems = d.problems()
        assert not problems, "\n".join(problems)
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------------------
# Socket activation: the sockets are made here, as systemd makes them, and
# handed over as fds 3 and 4 with LISTEN_PID set to dnsmux's own pid.

def passed_sockets(port):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", port))
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind(("127.0.0.1", port))
    t.listen(64)
    return u, t


ACTIVATE = """\
import os, sys
n = int(sys.argv[1])
for i in range(n):
    os.dup2(int(sys.argv[2 + i]), 3 + i, inheritable=True)
    os.close(int(sys.argv[2 + i]))
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS=str(n), LISTEN_FDNAMES=sys.argv[2 + n])
os.execv(sys.argv[3 + n], sys.argv[3 + n:])
"""


def activated(argv, tmp_path, socks, names="dns-udp:dns-tcp"):
    """A Dnsmux that gets socks as fds 3, 4, ... (LISTEN_FDS protocol), set up
    by a Python that execs it (the same pid, as LISTEN_PID wants)."""
    high = [fcntl.fcntl(s.fileno(), fcntl.F_DUPFD_CLOEXEC, 10) for s in socks]
    d = Dnsmux(argv, tmp_path, 0)
    d.wrapper = [sys.executable, "-c", ACTIVATE, str(len(high)), *map(str, high), names]
    d.pass_fds = tuple(high)
    d._high = high
    return d


def socket_inode(sock):
    return os.fstat(sock.fileno()).st_ino


def fd_count_of(pid, inode):
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == "socket:[%d]" % inode:
                n += 1
        except OSError:
            pass
    return n


def test_socket_activation_two_fds_no_listen(knotd, tmp_path):
    """No --listen: the passed UDP and TCP sockets are the listeners (the
    log names fds 3 and 4), both workers of --threads 2 poll each of them,
    and queries over both are answered."""
    port = free_port()
    u, t = passed_sockets(port)
    d = activated(["--threads", "2", "--upstream", knotd.url("udp")], tmp_path, [u, t])
    try:
        d.start()
        for fd in d._high:
            os.close(fd)
        log = d.log()
        assert "socket activation: fd 3 (dns-udp) udp 127.0.0.1:%d: no listener configured there, serving udp://" % port \
            in log, log
        assert "socket activation: fd 4 (dns-tcp) tcp 127.0.0.1:%d: no listener configured there, serving tcp://" % port \
            in log, log
        assert "2 listeners" in log
        for s in (u, t):  # every worker has the socket itself (fd 3/4 or a dup of it)
            assert fd_count_of(d.pid, socket_inode(s)) == 2, os.listdir("/proc/%d/fd" % d.pid)
        u.close()
        t.close()  # (dnsmux holds them now)
        for i in range(20):
            q = dns.message.make_query("www.test.", "A")
            r = (dns.query.tcp if i % 2 else dns.query.udp)(q, "127.0.0.1", port=port, timeout=2 + MARGIN)
            assert helpers.rdata_set(r) == {helpers.WWW_A}
        st = d.stats()
        assert st["queries"] == 20, st
        assert sum(w["queries"] for w in st.workers.values()) == 20
    finally:
        problems = d.problems() if d.proc else []
    assert not problems, "\n".join(problems)


def test_socket_activation_matches_the_listener(knotd, tmp_path):
    """--listen ADDR:PORT on the passed sockets' address: they serve it, and
    dnsmux binds nothing of its own there (the passed sockets have no
    SO_REUSEPORT, so a bind of its own would fail: address in use)."""
    port = free_port()
    u, t = passed_sockets(port)
    d = activated(["--listen", "127.0.0.1:%d" % port, "--upstream", knotd.url("udp")], tmp_path, [u, t], names="a:b")
    try:
        d.start()
        for fd in d._high:
            os.close(fd)
        u.close()
        t.close()
        log = d.log()
        assert "fd 3 (a) udp 127.0.0.1:%d: serves the listener 127.0.0.1:%d" % (port, port) in log, log
        assert "fd 4 (b) tcp 127.0.0.1:%d: serves the listener 127.0.0.1:%d" % (port, port) in log, log
        assert "1 listener," in log
        q = dns.message.make_query("www.test.", "A")
        assert helpers.rdata_set(dns.query.udp(q, "127.0.0.1", port=port, timeout=2 + MARGIN)) == {helpers.WWW_A}
        assert helpers.rdata_set(dns.query.tcp(q, "127.0.0.1", port=port, timeout=2 + MARGIN)) == {helpers.WWW_A}
    finally:
        problems = d.problems() if d.proc else []
    assert not problems, "\n".join(problems)


def test_listen_pid_of_another_process_is_ignored(knotd, tmp_path):
    """LISTEN_FDS meant for someone else (LISTEN_PID not ours): nothing is
    taken, and with no --listen that is an error, not the embedded default."""
    env = dict(dnsmux_env(), LISTEN_PID="1", LISTEN_FDS="2")
    r = subprocess.run([str(DNSMUX_BIN), "--upstream", knotd.url("udp")], capture_output=True, text=True, timeout=15,
                       stdin=subprocess.DEVNULL, env=env)
    assert r.returncode == 2, r
    assert "no --listen" in r.stderr, r.stderr


# ---------------------------------------------------------------------------
# Readiness: NOTIFY_SOCKET.

def test_notify_ready_reloading_stopping(knotd, tmp_path, conf_dir):
    sock_path = conf_dir / "notify.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(sock_path))
    s.settimeout(10)
    conf = conf_dir / "n.yaml"
    write_conf(conf, "pools:\n  default:\n    members: [%s]\n" % knotd.url("udp"))
    d = Dnsmux(["--listen", "127.0.0.1:%d" % free_port(), "-c", str(conf)], tmp_path, 0)
    d.wrapper = ["env", "NOTIFY_SOCKET=%s" % sock_path]
    try:
        d.start()
        assert s.recv(4096).decode().split("\n") == ["READY=1", "STATUS=configuration 1 in force"]
        d.send_signal(signal.SIGHUP)
        assert s.recv(4096) == b"RELOADING=1"
        assert s.recv(4096).decode().split("\n") == ["READY=1", "STATUS=configuration 2 in force"]
        d.send_signal(signal.SIGTERM)
        assert s.recv(4096) == b"STOPPING=1"
        assert d.wait(10 + MARGIN) == 0  # (before a second SIGTERM from the teardown)
    finally:
        problems = d.problems()
        s.close()
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------
# MemoryDenyWriteExecute=: the same kernel rule (PR_SET_MDWE, Linux 6.3),
# set before exec. The PCRE2 JIT cannot map W+X memory; regex routes must
# still match, by the interpreter.

PR_SET_MDWE = 65
PR_MDWE_REFUSE_EXEC_GAIN = 1


def mdwe_supported():
    r = subprocess.run([sys.executable, "-c", "import ctypes,sys; sys.exit(ctypes.CDLL(None).prctl(%d,%d,0,0,0) != 0)"
                        % (PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN)])
    return r.returncode == 0


def test_regex_routes_under_memory_deny_write_execute(knotd, fault_server, tmp_path):
    if not mdwe_supported():
        pytest.skip("PR_SET_MDWE needs Linux 6.3")
    fs = fault_server()
    conf = tmp_path / "re.yaml"
    conf.write_text("pools:\n  default: {members: [%s]}\n  re: {members: [udp://127.0.0.1:%d]}\n"
                    "routes:\n  - regex: '^[a-z]+[0-9]\\.example\\.$'\n    pool: re\n  - suffix: .\n    pool: default\n"
                    % (knotd.url("udp"), fs.port))
    port = free_port()
    d = Dnsmux(["--listen", "127.0.0.1:%d" % port, "-c", str(conf)], tmp_path, 0)
    d.wrapper = [sys.executable, "-c", "import ctypes, os, sys\n"
                 "assert ctypes.CDLL(None).prctl(%d, %d, 0, 0, 0) == 0\n"
                 "os.execv(sys.argv[1], sys.argv[1:])" % (PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN)]
    try:
        d.start()
        q = dns.message.make_query("abc1.example.", "A")
        r = dns.query.udp(q, "127.0.0.1", port=port, timeout=2 + MARGIN)
        assert [rd.to_text() for rr in r.answer for rd in rr] == [answer_a("abc1.example.")]
        r = dns.query.udp(dns.message.make_query("www.test.", "A"), "127.0.0.1", port=port, timeout=2 + MARGIN)
        assert helpers.rdata_set(r) == {helpers.WWW_A}
        with open("/proc/%d/maps" % d.pid) as f:
            assert not [ln for ln in f if ln.split()[1].startswith("rwx")], "a W+X mapping under MDWE"
    finally:
        problems = d.problems()
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------
# contrib/: systemd-analyze verify, and the exposure score the README gives.

UNITS = REPO / "contrib"


@pytest.fixture
def units_for_this_build(tmp_path):
    """The units with ExecStart= pointed at the binary under test (verify
    insists the command exists; a package installs it at /usr/sbin/dnsmux)."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed (package systemd)")
    text = (UNITS / "dnsmux.service").read_text()
    assert "ExecStart=/usr/sbin/dnsmux " in text
    (tmp_path / "dnsmux.service").write_text(text.replace("/usr/sbin/dnsmux", str(DNSMUX_BIN)))
    shutil.copy(UNITS / "dnsmux.socket", tmp_path / "dnsmux.socket")
    return tmp_path


def test_systemd_analyze_verify(units_for_this_build):
    """--man=no: the man page comes with the Debian package (Documentation=man:dnsmux(8))."""
    d = units_for_this_build
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(d / "dnsmux.service"), str(d / "dnsmux.socket")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), r


def test_systemd_analyze_security_exposure(units_for_this_build):
    """The score README.md and doc/service.md give (1.1, "OK"), or better."""
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", str(units_for_this_build / "dnsmux.service")],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for dnsmux\.service: ([0-9.]+)", r.stdout)
    assert m, r
    assert float(m.group(1)) <= 1.1, r.stdout[-3000:]
    readme = (REPO / "README.md").read_text()
    assert "exposure level 1.1" in " ".join(readme.split())


def test_sighup_in_unit_and_notify_type():
    text = (UNITS / "dnsmux.service").read_text()
    assert "Type=notify\n" in text
    assert "ExecReload=/bin/kill -HUP $MAINPID" in text
    assert "RuntimeDirectory=dnsmux" in text
