"""Circuits that break: the upstream is killed and restarted, drops the
connection, stalls, or answers too late. No crash, every query answered
(right answer or SERVFAIL) within --timeout, lost queries resent on a new
circuit at once, and a restarted upstream used again within a second."""


import dns.rcode
import pytest

import helpers
from conftest import MARGIN, assert_restart_results, free_port, restart_under_load, tcp_established, wait_until
from fault_server import answer_a


def test_knotd_killed_and_restarted_under_load(knotd_factory, dnsmux):
    k = knotd_factory()
    timeout_s = 1.5
    d = dnsmux("--timeout", str(int(timeout_s * 1000)), upstream=k.url("tcp"))
    results, t_kill, t_ready = restart_under_load(d, k.kill, k.start, timeout_s)
    assert_restart_results(d, results, t_kill, t_ready, timeout_s, "knotd")
    assert wait_until(lambda: tcp_established(d.pid, k.port) == 1, 2.0)


@pytest.mark.parametrize("rst", [True, False], ids=["reset", "close"])
def test_connection_dropped_after_k_queries(fault_server, dnsmux, rst):
    """The first two upstream connections die when their 5th query
    arrives: every query is still answered right, quickly (resent on a
    new circuit at once, not after --timeout)."""
    srv = fault_server(drop_after=5, drop_count=2, drop_rst=rst)
    d = dnsmux("--timeout", "4000", upstream=srv.url("tcp"))
    names = ["d%d.drop.example." % i for i in range(60)]
    results = helpers.run_udp_load(d.port, [(n, "A") for n in names], clients=15, timeout=6.0, expect=False)
    bad = []
    for r in results:
        if r.error:
            bad.append("%s: %s" % (r.qname, r.error))
        else:
            p = helpers.check_answer(r.qwire, r.rwire, {answer_a(r.qname)})
            if p:
                bad.append("%s: %s" % (r.qname, p))
            elif r.elapsed > 1.0 + MARGIN:
                bad.append("%s: took %.2fs" % (r.qname, r.elapsed))
    assert not bad, bad[:10]
    assert srv.connections >= 3
    assert d.stats()["requeued"] > 0


def test_silent_upstream_servfail_then_late_answers(fault_server, dnsmux):
    """Answers that come 1.5 s after a 500 ms --timeout: the clients got
    SERVFAIL at the deadline, and the answers are counted as `late`."""
    srv = fault_server(delay=1.5)
    d = dnsmux("--timeout", "500", "--circuit-stall", "5000", upstream=srv.url("tcp"))
    names = ["l%d.late.example." % i for i in range(10)]
    results = helpers.run_udp_load(d.port, [(n, "A") for n in names], clients=10, timeout=0.5 + MARGIN + 1.0,
                                   expect=False)
    for r in results:
        assert not r.error, (r.qname, r.error)
        assert r.rcode == dns.rcode.SERVFAIL, (r.qname, dns.rcode.to_text(r.rcode))
        assert 0.4 <= r.elapsed <= 0.5 + MARGIN, (r.qname, r.elapsed)
        assert r.rwire[:2] == r.qwire[:2]
        assert helpers.question_bytes(r.rwire) == helpers.question_bytes(r.qwire)
    assert srv.wait_received(10, 2.0) == 10
    st = d.wait_stats(lambda s: s["late"] >= 10, timeout=1.5 + 3.0 + MARGIN)
    assert st["late"] >= 10, st
    assert st["upstream_timeouts"] >= 10, st
    assert st["servfail"] >= 10, st


def test_stalled_circuit_replaced(fault_server, dnsmux):
    """The first connection accepts queries and never answers: after
    --circuit-stall it is closed and its queries are resent on a fresh
    circuit, well before --timeout."""
    srv = fault_server(silent_conns=1)
    d = dnsmux("--circuit-stall", "500", "--timeout", "5000", upstream=srv.url("tcp"))
    names = ["s%d.stall.example." % i for i in range(5)]
    results = helpers.run_udp_load(d.port, [(n, "A") for n in names], clients=5, timeout=6.0, expect=False)
    for r in results:
        assert not r.error, (r.qname, r.error)
        assert not helpers.check_answer(r.qwire, r.rwire, {answer_a(r.qname)}), r.qname
        assert r.elapsed <= 0.5 + 1.0 + MARGIN, (r.qname, r.elapsed)
    assert srv.connections == 2
    assert wait_until(lambda: tcp_established(d.pid, srv.port) == 1, 2.0), "stalled circuit not closed"
    assert d.stats()["requeued"] >= 1


def test_unreachable_upstream_servfail(dnsmux):
    """Nothing listens on the upstream port: SERVFAIL within --timeout,
    no crash."""
    port = free_port()
    d = dnsmux("--timeout", "800", upstream="tcp://127.0.0.1:%d" % port)
    results = helpers.run_udp_load(d.port, [("www.test.", "A")] * 10, clients=5, timeout=0.8 + MARGIN + 1.0,
                                   expect=False)
    for r in results:
        assert not r.error, r.error
        assert r.rcode == dns.rcode.SERVFAIL
        assert r.elapsed <= 0.8 + MARGIN
    assert d.alive()
