"""The command line: --help/--version, exit code 2 with a one-line reason
for bad flags and values, exit code 1 naming the address when a port is
taken, and a graceful stop on SIGTERM/SIGINT that answers what is in
flight. Every invocation carries a loopback listener and upstream, so a
binary that ignored a flag would still stay on loopback."""

import re
import signal
import socket
import threading

import dns.rcode
import pytest

import helpers
from conftest import free_port, run_dnsmux
from fault_server import answer_a


READY = re.compile(r"\bready\b")


def safe_args(port=None):
    return ["--listen", "127.0.0.1:%d" % (port or free_port()), "--upstream", "tcp://127.0.0.1:%d" % free_port()]


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(flag):
    r = run_dnsmux([flag] + safe_args())
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    for opt in ("--listen", "--upstream", "--threads", "--timeout", "--max-inflight", "--tcp-idle"):
        assert opt in out, "%s missing from --help" % opt


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version(flag):
    r = run_dnsmux([flag] + safe_args())
    assert r.returncode == 0, r.stderr
    out = (r.stdout + r.stderr).strip()
    assert "dnsmux" in out and re.search(r"\d+\.\d+", out), out
    assert not READY.search(out)


BAD = {
    "unknown_flag": (["--no-such-flag"], "--no-such-flag"),
    "threads_zero": (["--threads", "0"], "threads"),
    "threads_word": (["--threads", "many"], "threads"),
    "timeout_negative": (["--timeout", "-5"], "timeout"),
    "timeout_junk": (["--timeout", "10x"], "timeout"),
    "max_inflight_word": (["--max-inflight", "lots"], "max-inflight"),
    "listen_bad_port": (["--listen", "127.0.0.1:99999"], "99999"),
    "listen_bad_addr": (["--listen", "not-an-address:53"], "not-an-address"),
    "listen_bad_scheme": (["--listen", "gopher://127.0.0.1:5300"], "gopher"),
    "upstream_bad_scheme": (["--upstream", "bogus://127.0.0.1:53"], "bogus"),
    "upstream_bad_port": (["--upstream", "tcp://127.0.0.1:70000"], "70000"),
    "missing_value": (["--timeout"], "timeout"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_flag_or_value_exits_2(case):
    extra, needle = BAD[case]
    # the bad argument goes last so that a missing value really is missing
    r = run_dnsmux(safe_args() + extra)
    assert r.returncode == 2, "exit %d, stderr %r" % (r.returncode, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, "expected a one-line reason, got %r" % r.stderr
    assert needle.lower() in lines[0].lower(), "reason %r does not name %r" % (lines[0], needle)
    assert not READY.search(r.stderr), r.stderr


@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_port_in_use_exits_1(proto):
    port = free_port()
    if proto == "udp":
        holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        holder.bind(("127.0.0.1", port))
    else:
        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        holder.bind(("127.0.0.1", port))
        holder.listen(1)
    with holder:
        r = run_dnsmux(["--listen", "127.0.0.1:%d" % port, "--upstream", "tcp://127.0.0.1:%d" % free_port()])
    assert r.returncode == 1, "exit %d, stderr %r" % (r.returncode, r.stderr)
    assert "127.0.0.1:%d" % port in r.stderr, r.stderr
    assert re.search(r"in use|EADDRINUSE", r.stderr, re.I), r.stderr
    assert not READY.search(r.stderr), r.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_with_queries_in_flight(fault_server, dnsmux, sig):
    """Queries held by a slow upstream when the signal comes are answered
    (with the upstream's answer) before dnsmux exits 0; the stats are
    written once more at exit."""
    srv = fault_server(delay=1.0)
    d = dnsmux("--timeout", "5000", "--circuit-stall", "5000", upstream=srv.url("tcp"))
    names = ["t%d.term.example." % i for i in range(10)]
    results = []
    t = threading.Thread(target=lambda: results.extend(
        helpers.run_udp_load(d.port, [(n, "A") for n in names], clients=10, timeout=8.0, expect=False)))
    t.start()
    try:
        assert srv.wait_received(10, 5.0) == 10, "queries did not reach the upstream"
        d.send_signal(sig)
        rc = d.wait(timeout=10.0)
    finally:
        t.join(15)
    assert rc == 0
    assert len(results) == 10
    for r in results:
        assert not r.error, (r.qname, r.error)
        assert r.rcode == dns.rcode.NOERROR, (r.qname, dns.rcode.to_text(r.rcode))
        assert not helpers.check_answer(r.qwire, r.rwire, {answer_a(r.qname)})
    final = d.last_stats()
    assert final is not None, "no stats at exit"
    assert final["queries"] >= 10 and final["answered"] >= 10, final


def test_sigterm_when_idle_exits_promptly(knotd, dnsmux):
    """After SIGTERM the process exits promptly when nothing is in flight."""
    d = dnsmux(upstream=knotd.url("tcp"))
    assert not helpers.check_answer(*helpers.udp_query(d.port, "www.test.", "A")[1:3], {helpers.WWW_A})
    d.send_signal(signal.SIGTERM)
    assert d.wait(timeout=5.0) == 0


def test_sigusr1_stats_lines(knotd, dnsmux):
    """SIGUSR1 writes one stats line per worker and a total; the counts
    follow the traffic."""
    d = dnsmux("--threads", "2", upstream=knotd.url("tcp"))
    s0 = d.stats()
    assert sorted(s0.workers) == [0, 1]
    results = helpers.run_udp_load(d.port, [("n%d.test." % i, "A") for i in range(50)], clients=10)
    assert not helpers.summarize(results)
    s1 = d.stats()
    assert s1["queries"] - s0["queries"] == 50
    assert s1["answered"] - s0["answered"] == 50
    for key in ("queries", "answered", "servfail", "formerr", "notimp", "refused", "dropped_qr", "malformed",
                "late", "mismatched", "overflow", "upstream_timeouts", "tc_retries", "requeued", "circuits_opened"):
        assert isinstance(s1.total.get(key), int), "total line lacks %s: %r" % (key, s1.total)
        for w in s1.workers.values():
            assert isinstance(w.get(key), int), "worker line lacks %s: %r" % (key, w)
        assert s1.total[key] == sum(w[key] for w in s1.workers.values()), key
