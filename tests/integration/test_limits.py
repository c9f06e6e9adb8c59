"""Bounds a client can rely on: --timeout (SERVFAIL when the upstream says
nothing), --max-inflight (overflow answered SERVFAIL at once and counted,
never queued forever), --udp-retry (UDP upstream retransmits)."""

import time

import dns.rcode
import pytest

import helpers
from conftest import MARGIN


def assert_servfail_for(qw, rw):
    assert rw[:2] == qw[:2], "SERVFAIL with another ID"
    assert rw[2] & 0x80
    assert helpers.rcode_of(rw) == dns.rcode.SERVFAIL, dns.rcode.to_text(helpers.rcode_of(rw))
    assert helpers.question_bytes(rw) == helpers.question_bytes(qw)


@pytest.mark.parametrize("client", ["udp", "tcp"])
def test_timeout_servfail_from_silent_upstream(fault_server, dnsmux, client):
    srv = fault_server(silent=True)
    d = dnsmux("--timeout", "700", upstream=srv.url("tcp"))
    q = helpers.make_query("Silent.Example.", "A")
    qw = q.to_wire()
    t0 = time.monotonic()
    if client == "udp":
        rw = helpers.udp_exchange(qw, d.port, timeout=0.7 + MARGIN + 2.0)
    else:
        with helpers.tcp_connect(d.port) as s:
            s.sendall(helpers.frame(qw))
            rw = helpers.recv_frame(s, timeout=0.7 + MARGIN + 2.0)
    elapsed = time.monotonic() - t0
    assert_servfail_for(qw, rw)
    assert 0.6 <= elapsed <= 0.7 + MARGIN, "SERVFAIL after %.2fs with --timeout 700" % elapsed
    assert srv.wait_received(1, 1.0) >= 1
    st = d.stats()
    assert st["servfail"] == 1 and st["upstream_timeouts"] >= 1, st


def test_default_timeout_is_2s(fault_server, dnsmux):
    srv = fault_server(silent=True)
    d = dnsmux(upstream=srv.url("tcp"))
    q = helpers.make_query("silent.example.", "A")
    qw = q.to_wire()
    t0 = time.monotonic()
    rw = helpers.udp_exchange(qw, d.port, timeout=2.0 + MARGIN + 2.0)
    elapsed = time.monotonic() - t0
    assert_servfail_for(qw, rw)
    assert 1.9 <= elapsed <= 2.0 + MARGIN, elapsed


def test_max_inflight_overflow_servfail_at_once(fault_server, dnsmux):
    """--max-inflight 10 and a silent upstream: of 50 concurrent queries, 10
    wait for the 3 s timeout and 40 get SERVFAIL right away; only 10 ever
    reach the upstream; `overflow` counts 40."""
    srv = fault_server(silent=True)
    d = dnsmux("--max-inflight", "10", "--circuit-inflight", "10", "--timeout", "3000", "--circuit-stall", "10000",
               upstream=srv.url("tcp"))
    names = ["o%d.overflow.example." % i for i in range(50)]
    results = helpers.run_udp_load(d.port, [(n, "A") for n in names], clients=50, timeout=3.0 + MARGIN + 2.0,
                                   expect=False)
    for r in results:
        assert not r.error, (r.qname, r.error)
        assert_servfail_for(r.qwire, r.rwire)
    fast = [r for r in results if r.elapsed < 1.0]
    slow = [r for r in results if r.elapsed >= 2.5]
    assert len(fast) == 40 and len(slow) == 10, \
        "elapsed: %s" % sorted(round(r.elapsed, 2) for r in results)
    assert all(r.elapsed <= 3.0 + MARGIN for r in slow)
    assert len(srv.queries()) == 10, "%d queries reached the upstream" % len(srv.queries())
    st = d.stats()
    assert st["overflow"] == 40, st
    assert st["servfail"] == 50, st


def test_max_inflight_frees_slots(knotd, dnsmux):
    """With a responsive upstream the cap only limits concurrency: 500
    queries from 50 clients, --max-inflight 60, all answered."""
    d = dnsmux("--max-inflight", "60", "--circuit-inflight", "60", upstream=knotd.url("tcp"))
    results = helpers.run_udp_load(d.port, [("n%d.test." % (i % 256), "A") for i in range(500)], clients=50)
    assert not helpers.summarize(results)
    assert d.stats()["overflow"] == 0


def test_udp_upstream_retransmit(fault_server, dnsmux):
    """--udp-retry 300 with a silent UDP upstream and --timeout 1500: the
    query is resent about every 300 ms, then SERVFAIL at 1.5 s."""
    srv = fault_server(silent=True)
    d = dnsmux("--udp-retry", "300", "--timeout", "1500", upstream=srv.url("udp"))
    q = helpers.make_query("retry.example.", "A")
    qw = q.to_wire()
    t0 = time.monotonic()
    rw = helpers.udp_exchange(qw, d.port, timeout=1.5 + MARGIN + 2.0)
    elapsed = time.monotonic() - t0
    assert_servfail_for(qw, rw)
    assert 1.4 <= elapsed <= 1.5 + MARGIN
    sent = [r for r in srv.queries("udp") if r.qname and r.qname.lower() == "retry.example."]
    assert 3 <= len(sent) <= 6, "upstream saw %d copies" % len(sent)
    gaps = [b.t - a.t for a, b in zip(sent, sent[1:])]
    assert all(g >= 0.2 for g in gaps), gaps


def test_udp_upstream_load(knotd, dnsmux):
    """udp:// upstream: 1,000 queries from 50 clients all answered right."""
    d = dnsmux(upstream=knotd.url("udp"))
    results = helpers.run_udp_load(d.port, [("n%d.test." % (i % 256), "AAAA") for i in range(1000)], clients=50)
    assert not helpers.summarize(results)
    assert d.stats()["answered"] >= 1000


def test_udp_upstream_source_ports(fault_server, dnsmux):
    """RFC 5452 9.2: UDP queries leave from rotating source ports: a socket
    carries at most 256 queries (UDP_SOCK_USES), then a fresh one, on a new
    kernel-chosen port, takes over. 700 queries must use at least 3 ports,
    and no port more than 256 times."""
    srv = fault_server()
    d = dnsmux(upstream=srv.url("udp"))
    results = helpers.run_udp_load(d.port, [("p%d.ports.example." % i, "A") for i in range(700)], clients=10,
                                   expect=False)
    assert all(r.rcode == dns.rcode.NOERROR for r in results)
    seen = [r.peer[1] for r in srv.queries("udp")]
    ports = {p: seen.count(p) for p in set(seen)}
    assert len(ports) >= 3, "700 queries left from only %d source ports" % len(ports)
    assert max(ports.values()) <= 256, ports
