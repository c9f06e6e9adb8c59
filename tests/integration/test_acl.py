"""Access control and rate limits per listener (issue 11 item 3; `acl:`
and `ratelimit:` in CONFIG.md, --acl and --ratelimit): a client the acl
refuses gets no answer over UDP and REFUSED over TCP while 127.0.0.1 is
answered; a UDP flood from one address is held to burst + qps x t answers,
with every slip-th dropped query answered by an empty TC=1 answer, while
another client asking 10 q/s gets every answer; over TCP the queries over
the rate are answered REFUSED, from a bucket apart from the UDP one; DoH
behind a trusted proxy is judged by the X-Forwarded-For client; the
counters (stats line, /metrics) count each refusal; a SIGHUP changes the
acl. Loopback has all of 127/8, so each client binds its own 127.0.0.N.
The defaults of each listener kind need addresses that are neither
loopback nor private: they run in a network namespace of the test's own."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import dns.flags
import dns.message
import dns.rcode
import pytest

import helpers
from conftest import MARGIN, free_port, run_dnsmux, wait_until
from test_listen_any import netns  # noqa: F401 (a fixture: a namespace of the test's own, lo up)
from test_metrics import metrics

CURL = shutil.which("curl") or "/usr/bin/curl"


def udp_from(src, port, wire, timeout):
    """Send wire from src to 127.0.0.1:port; the datagram back, or None
    when none came within timeout."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((src, 0))
        s.settimeout(timeout)
        s.sendto(wire, ("127.0.0.1", port))
        try:
            return s.recvfrom(65535)[0]
        except socket.timeout:
            return None


def tcp_from(src, port, wires, timeout=5.0):
    """Queries (of distinct IDs) on one connection from src; the answers in
    the order of the queries (they may come in any, RFC 7766 7)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((src, 0))
        s.settimeout(timeout)
        s.connect(("127.0.0.1", port))
        s.sendall(b"".join(helpers.frame(w) for w in wires))
        got = {}
        for _ in wires:
            a = helpers.recv_frame(s, timeout)
            got[a[:2]] = a
        assert len(got) == len(wires), "answers with the same ID"
        return [got.get(w[:2]) for w in wires]


def write_config(tmp_path, text, name="dnsmux.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def start_file(dnsmux, tmp_path, knotd, listen_yaml, *args):
    """dnsmux -c FILE with these listeners (YAML under listen:) and knotd as the pool."""
    cfg = write_config(tmp_path, "listen:\n%spools:\n  default:\n    members: [%s]\n" % (listen_yaml, knotd.url("tcp")))
    return dnsmux("-c", str(cfg), *args, listen=[])


def assert_answered(wire, rwire):
    assert rwire is not None, "no answer"
    r = dns.message.from_wire(rwire)
    assert rwire[:2] == wire[:2]
    assert r.rcode() == dns.rcode.NOERROR and r.answer, r


def assert_refused(wire, rwire):
    r = dns.message.from_wire(rwire)
    assert rwire[:2] == wire[:2], "REFUSED with another ID"
    assert r.rcode() == dns.rcode.REFUSED, dns.rcode.to_text(r.rcode())
    assert helpers.question_bytes(rwire) == helpers.question_bytes(wire)
    assert not r.answer


_ids = iter(range(1, 65536))


def query(name="www.test.", edns=1232):
    """A query with an ID of its own in this run (answers are matched by it)."""
    return helpers.make_query(name, "A", edns=edns, qid=next(_ids)).to_wire()


# ---------------------------------------------------------------------------
# acl


@pytest.mark.parametrize("how", ["flag", "file"])
def test_refused_client_dropped_over_udp_refused_over_tcp(knotd, dnsmux, tmp_path, how):
    port, mport = free_port(), free_port()
    if how == "flag":
        d = dnsmux("--acl", "!127.0.0.2,localhost", "--metrics", "127.0.0.1:%d" % mport,
                   listen=["127.0.0.1:%d" % port], upstream=knotd.url("tcp"))
    else:
        d = start_file(dnsmux, tmp_path, knotd,
                       '  - url: 127.0.0.1:%d\n    acl: ["!127.0.0.2", localhost]\n' % port,
                       "--metrics", "127.0.0.1:%d" % mport)
    denied = query()
    # 127.0.0.1 is answered, over both
    w = query()
    assert_answered(w, udp_from("127.0.0.1", port, w, 5.0))
    w = query()
    assert_answered(w, tcp_from("127.0.0.1", port, [w])[0])
    # 127.0.0.2: no answer over UDP (counted once received), REFUSED over TCP
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.2", 0))
        s.sendto(denied, ("127.0.0.1", port))
        st = d.wait_stats(lambda st: st["dropped_acl"] >= 1, timeout=5.0)
        assert st["dropped_acl"] == 1, st
        w = query()
        assert_answered(w, udp_from("127.0.0.1", port, w, 5.0))  # (after it: the answer would have come by now)
        s.settimeout(0.5 + MARGIN)
        with pytest.raises(socket.timeout):
            got = s.recvfrom(65535)
            pytest.fail("127.0.0.2 got an answer: %r" % (got,))
    wires = [query("www.test."), query("n1.test.")]
    for qw, rw in zip(wires, tcp_from("127.0.0.2", port, wires)):
        assert_refused(qw, rw)
    # 127.0.0.3 is in localhost and not refused
    w = query()
    assert_answered(w, udp_from("127.0.0.3", port, w, 5.0))
    st = d.stats()
    assert st["dropped_acl"] == 3 and st["refused"] == 2, st
    assert st["queries"] == 7, st
    m = metrics(mport)
    assert m.get("dnsmux_dropped_total", reason="acl") == 3
    assert m.get("dnsmux_answers_total", rcode="REFUSED") == 2
    assert m.get("dnsmux_dropped_total", reason="ratelimit") == 0


def test_acl_none(knotd, dnsmux):
    port = free_port()
    dnsmux("--acl", "none", listen=["127.0.0.1:%d" % port], upstream=knotd.url("tcp"))
    w = query()
    assert_refused(w, tcp_from("127.0.0.1", port, [w])[0])


@pytest.mark.parametrize("key, error, flag", [
    ("acl: [localhost, 10.0.0.0/40]", "3:22: listen[0].acl: '10.0.0.0/40': prefix too long",
     ["--acl", "localhost,bogus"]),
    ("ratelimit: {qps: 20, slip: -1}", "3:32: listen[0].ratelimit.slip: '-1' is not a number from 0 to 100",
     ["--ratelimit", "0"]),
])
def test_bad_values(knotd, tmp_path, key, error, flag):
    """A bad value in the file names its file, line and column; a bad flag
    exits 2 naming the flag."""
    port = free_port()
    cfg = write_config(tmp_path, "listen:\n  - url: 127.0.0.1:%d\n    %s\npools: {default: {members: [%s]}}\n"
                       % (port, key, knotd.url("tcp")))
    r = run_dnsmux(["--check-config", "-c", str(cfg)])
    assert r.returncode == 2 and "%s:%s" % (cfg, error) in r.stderr, r.stderr
    r = run_dnsmux(["--listen", "127.0.0.1:%d" % port, "--upstream", knotd.url("tcp")] + flag)
    assert r.returncode == 2 and flag[0] + ":" in r.stderr, r.stderr


def test_reload_changes_the_acl(knotd, dnsmux, tmp_path):
    port = free_port()
    text = "listen:\n  - url: 127.0.0.1:%d\n    acl: [%s]\npools: {default: {members: [%s]}}\n"
    cfg = write_config(tmp_path, text % (port, "localhost", knotd.url("tcp")))
    d = dnsmux("-c", str(cfg), listen=[])
    w = query()
    assert_answered(w, tcp_from("127.0.0.2", port, [w])[0])
    cfg.write_text(text % (port, '"!127.0.0.2", localhost', knotd.url("tcp")))
    d.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "configuration 2 in force" in d.log(), 5.0), d.log()[-2000:]
    assert "new acl" in d.log()
    w = query()
    assert_refused(w, tcp_from("127.0.0.2", port, [w])[0])
    w = query()
    assert_answered(w, tcp_from("127.0.0.1", port, [w])[0])


# ---------------------------------------------------------------------------
# DoH behind a trusted proxy: the client it names is the one judged


def doh_post(port, wire, xff=None, src="127.0.0.1"):
    argv = [CURL, "-sS", "--max-time", "5", "--interface", src, "-H", "content-type: application/dns-message",
            "--data-binary", "@-", "-w", "\n%{http_code}"]
    if xff:
        argv += ["-H", "X-Forwarded-For: " + xff]
    r = subprocess.run(argv + ["http://127.0.0.1:%d/dns-query" % port], input=wire, capture_output=True, timeout=10)
    assert r.returncode == 0, r.stderr
    body, _, code = r.stdout.rpartition(b"\n")
    return int(code), body


def test_doh_forwarded_client_judged(knotd, dnsmux, tmp_path):
    explicit, default = free_port(), free_port()
    mport = free_port()
    d = start_file(dnsmux, tmp_path, knotd,
                   "  - url: http://127.0.0.1:%d\n    acl: [127.0.0.0/8, 198.51.100.0/24]\n"
                   "    trusted-proxies: [127.0.0.1]\n"
                   "  - url: http://127.0.0.1:%d\n" % (explicit, default),
                   "--metrics", "127.0.0.1:%d" % mport)
    w = query()
    code, body = doh_post(explicit, w, xff="203.0.113.9")
    assert code == 200  # RFC 8484 4.2.1: a DNS answer, whatever its rcode, is a 2xx
    assert_refused(w, body)
    code, body = doh_post(explicit, w, xff="198.51.100.7")
    assert code == 200
    assert_answered(w, body)
    code, body = doh_post(explicit, w)  # the proxy's own query
    assert_answered(w, body)
    # an untrusted peer's header is not believed: 127.0.0.2 is judged, and allowed
    code, body = doh_post(explicit, w, xff="203.0.113.9", src="127.0.0.2")
    assert_answered(w, body)
    # the default acl of http:// (localhost, private) is about who connects:
    # the trusted proxy admits its own clients
    code, body = doh_post(default, w, xff="203.0.113.9")
    assert code == 200
    assert_answered(w, body)
    assert metrics(mport).get("dnsmux_dropped_total", reason="acl") == 1
    assert d.stats()["dropped_acl"] == 1


# ---------------------------------------------------------------------------
# ratelimit


def flood(port, src, rate, seconds, name="www.test."):
    """UDP queries from src at rate/s for seconds (paced), each with its own
    ID; returns (sent, full answers, slipped TC=1 answers, elapsed from the
    first query to the last)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    wire = bytearray(query(name, edns=None))
    got = {}
    stop = threading.Event()

    def reader():
        s.settimeout(0.1)
        while not stop.is_set():
            try:
                data = s.recv(65535)
            except socket.timeout:
                continue
            r = dns.message.from_wire(data)
            got[r.id] = "tc" if (r.flags & dns.flags.TC and not r.answer) else "full"

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    n = int(rate * seconds)
    t0 = time.monotonic()
    for i in range(n):
        due = t0 + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        wire[0:2] = i.to_bytes(2, "big")
        s.sendto(bytes(wire), ("127.0.0.1", port))
    elapsed = time.monotonic() - t0
    wait_until(lambda: len(got) >= n, 1.0 + MARGIN)  # (answers of the last ones; the rest were dropped)
    stop.set()
    t.join(2)
    s.close()
    vals = list(got.values())
    return n, vals.count("full"), vals.count("tc"), elapsed


def test_udp_flood_held_to_the_rate_while_another_client_is_served(knotd, dnsmux, tmp_path):
    qps, burst, slip = 20, 10, 2
    port, mport = free_port(), free_port()
    d = start_file(dnsmux, tmp_path, knotd,
                   "  - url: 127.0.0.1:%d\n    ratelimit: {qps: %d, burst: %d, slip: %d}\n" % (port, qps, burst, slip),
                   "--metrics", "127.0.0.1:%d" % mport, "--threads", "2")
    polite = []

    def ten_per_second():
        for i in range(20):  # 2 s at 10 q/s, beside the flood
            w = query("n%d.test." % i)
            polite.append(udp_from("127.0.0.4", port, w, 2.0 + MARGIN) is not None)
            time.sleep(0.1)

    t = threading.Thread(target=ten_per_second)
    t.start()
    sent, full, tc, elapsed = flood(port, "127.0.0.3", 200, 2.0)
    t.join(30)
    assert polite == [True] * 20, polite
    allowed = burst + qps * elapsed
    figures = "sent %d in %.2fs: %d answered, %d slipped (allowed %.0f)" % (sent, elapsed, full, tc, allowed)
    assert full <= allowed + qps * 0.1 + 1, figures  # (ms-granular refills, loops a turn apart)
    assert full >= 0.8 * allowed - 2, figures
    over = sent - full
    assert abs(tc - over / slip) <= 2, figures
    # every one counted: each flood query received, its fate
    st = d.wait_stats(lambda st: st["queries"] >= sent + 20, timeout=5.0)
    assert st["queries"] == sent + 20, st
    assert st["dropped_ratelimit"] == over, (st, figures)
    assert st["ratelimit_slipped"] == tc, (st, figures)
    m = metrics(mport)
    assert m.get("dnsmux_dropped_total", reason="ratelimit") == over
    assert m.get("dnsmux_ratelimit_slipped_total") == tc
    assert m.get("dnsmux_dropped_total", reason="acl") == 0


def test_slip_answer_is_header_and_question_with_tc(knotd, dnsmux):
    port = free_port()
    dnsmux("--ratelimit", "1,1,1", listen=["127.0.0.1:%d" % port], upstream=knotd.url("tcp"))
    w = query("www.test.", edns=1232)
    assert_answered(w, udp_from("127.0.0.5", port, w, 5.0))
    w = query("Www.Test.", edns=1232)
    rw = udp_from("127.0.0.5", port, w, 5.0)  # slip 1: every one over the rate
    assert rw is not None
    r = dns.message.from_wire(rw)
    assert rw[:2] == w[:2]
    assert r.flags & dns.flags.TC and r.flags & dns.flags.QR
    assert r.rcode() == dns.rcode.NOERROR
    assert not r.answer and not r.authority
    assert helpers.question_bytes(rw) == helpers.question_bytes(w)  # (its case too)
    assert len(rw) <= len(w)  # no amplification: no more than was sent


def test_over_rate_on_tcp_refused_udp_bucket_apart(knotd, dnsmux):
    """A stream's queries over the rate are answered REFUSED; its bucket is
    not the UDP one of the same address, so the TCP retry a slipped TC=1
    answer asks for is not refused for what the UDP flood spent."""
    port = free_port()
    d = dnsmux("--ratelimit", "1,3,0", listen=["127.0.0.1:%d" % port], upstream=knotd.url("tcp"))
    wires = [query("n%d.test." % i) for i in range(10)]
    t0 = time.monotonic()
    answers = tcp_from("127.0.0.6", port, wires)
    elapsed = time.monotonic() - t0
    rcodes = [dns.message.from_wire(a).rcode() for a in answers]
    ok = rcodes.count(dns.rcode.NOERROR)
    assert 3 <= ok <= 3 + int(elapsed) + 1, (rcodes, elapsed)
    assert rcodes.count(dns.rcode.REFUSED) == 10 - ok, rcodes
    for qw, rw, rc in zip(wires, answers, rcodes):
        if rc == dns.rcode.REFUSED:
            assert_refused(qw, rw)
    # the UDP bucket of 127.0.0.6 is full still
    for i in range(3):
        w = query("n%d.test." % (20 + i))
        assert_answered(w, udp_from("127.0.0.6", port, w, 5.0))
    st = d.stats()
    assert st["dropped_ratelimit"] == 10 - ok and st["refused"] == 10 - ok, st


# ---------------------------------------------------------------------------
# The defaults, from addresses that are neither loopback nor private: in a
# network namespace of the test's own, whose lo carries 203.0.113.1
# (public) and 192.168.7.1 (private) besides 127.0.0.1.

needs_netns = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"),
                                 reason="needs root and iproute2 (ip netns)")

NS_CLIENT = """
import socket, sys
import dns.message
src, port, proto = sys.argv[1], int(sys.argv[2]), sys.argv[3]
q = dns.message.make_query("www.test.", "A")
w = q.to_wire()
if proto == "udp":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 0))
    s.settimeout(float(sys.argv[4]))
    s.sendto(w, ("127.0.0.1", port))
    try:
        r = dns.message.from_wire(s.recv(65535))
    except socket.timeout:
        print("none")
        sys.exit(0)
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    s.sendall(len(w).to_bytes(2, "big") + w)
    n = int.from_bytes(s.recv(2), "big")
    data = b""
    while len(data) < n:
        data += s.recv(n - len(data))
    r = dns.message.from_wire(data)
print(dns.rcode.to_text(r.rcode()))
"""


@pytest.fixture
def acl_netns(netns):
    for a in ("203.0.113.1/32", "192.168.7.1/32"):
        subprocess.run(["ip", "-n", netns, "addr", "add", a, "dev", "lo"], check=True)
    return netns


def ns_run(ns, argv, timeout=20):
    return subprocess.run(["ip", "netns", "exec", ns] + argv, capture_output=True, text=True, timeout=timeout)


@needs_netns
def test_defaults_by_listener_kind(acl_netns, pki, tmp_path):
    """udp/tcp and http:// answer loopback and private clients only; https://
    answers anyone. The upstream is the scripted server inside the namespace."""
    from conftest import Dnsmux
    from test_listen_any import UPSTREAM_SCRIPT, HERE
    up_port, port, http, https = 10054, 10053, 10080, 10443
    up = subprocess.Popen(["ip", "netns", "exec", acl_netns, sys.executable, "-c", UPSTREAM_SCRIPT % HERE,
                           "127.0.0.1", str(up_port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert up.stdout.readline().strip() == "ready"
        d = Dnsmux(["--listen", "127.0.0.1:%d" % port, "--listen", "http://127.0.0.1:%d" % http,
                    "--listen", "https://127.0.0.1:%d" % https, "--tls-cert", str(pki.cert_file("server")),
                    "--tls-key", str(pki.key_file("server")), "--upstream", "udp://127.0.0.1:%d" % up_port],
                   tmp_path, 0, netns=acl_netns)
        d.start()
        try:
            for src, want in (("127.0.0.1", "NOERROR"), ("192.168.7.1", "NOERROR"), ("203.0.113.1", "REFUSED")):
                r = ns_run(acl_netns, [sys.executable, "-c", NS_CLIENT, src, str(port), "tcp"])
                assert r.stdout.strip() == want, (src, r.stdout, r.stderr)
            r = ns_run(acl_netns, [sys.executable, "-c", NS_CLIENT, "192.168.7.1", str(port), "udp", "5"])
            assert r.stdout.strip() == "NOERROR", r
            r = ns_run(acl_netns, [sys.executable, "-c", NS_CLIENT, "203.0.113.1", str(port), "udp",
                                   str(0.5 + MARGIN)])
            assert r.stdout.strip() == "none", r
            w = query()
            for scheme, p, src, want in (("http", http, "192.168.7.1", dns.rcode.NOERROR),
                                         ("http", http, "203.0.113.1", dns.rcode.REFUSED),
                                         ("https", https, "203.0.113.1", dns.rcode.NOERROR)):
                r = subprocess.run(["ip", "netns", "exec", acl_netns, CURL, "-sS", "--max-time", "5", "-k",
                                    "--interface", src, "-H", "content-type: application/dns-message",
                                    "--data-binary", "@-", "%s://127.0.0.1:%d/dns-query" % (scheme, p)],
                                   input=w, capture_output=True, timeout=10)
                assert r.returncode == 0, r.stderr
                assert dns.message.from_wire(r.stdout).rcode() == want, (scheme, src)
            st = d.stats()
            assert st["dropped_acl"] == 3, st
        finally:
            problems = d.problems()
            assert not problems, problems
    finally:
        up.stdin.close()
        up.wait(10)
