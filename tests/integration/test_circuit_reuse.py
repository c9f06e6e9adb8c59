"""The core promise: many client queries go out multiplexed over ONE
persistent, pipelined upstream connection per worker, checked in the
kernel's socket table (not dnsmux's counters)."""

import threading

import dns.message

import helpers
from conftest import (MARGIN, Sampler, assert_one_connection, connection_sampler, tcp_established, unix_connected,
                      wait_until)
from fault_server import answer_a


def zone_items(n):
    return [("n%d.test." % (i % helpers.N_NAMES), "AAAA" if i % 3 == 0 else "A") for i in range(n)]


def test_udp_clients_share_one_tcp_circuit(knotd, dnsmux):
    """2,000 queries from 100 concurrent UDP clients: all answered right,
    over exactly one TCP connection to knotd, the same one all along."""
    d = dnsmux(upstream=knotd.url("tcp"))
    items = zone_items(2000)
    with connection_sampler(d.pid, knotd.port) as samp:
        results = helpers.run_udp_load(d.port, items, clients=100, timeout=5.0)
    assert not helpers.summarize(results)
    assert_one_connection(samp, d.pid, knotd.port)

    st = d.stats()
    assert st["queries"] >= 2000
    assert st["answered"] >= 2000
    assert st["circuits_opened"] == 1


def test_tcp_clients_share_one_tcp_circuit(knotd, dnsmux):
    """50 client TCP connections, each with 10 pipelined queries: one
    upstream connection carries them all."""
    d = dnsmux(upstream=knotd.url("tcp"))
    errors = []

    def client(k):
        try:
            qs = [helpers.make_query("n%d.test." % ((k * 10 + j) % helpers.N_NAMES), "A") for j in range(10)]
            wires = {q.id: q.to_wire() for q in qs}
            with helpers.tcp_connect(d.port, timeout=10) as s:
                s.sendall(b"".join(helpers.frame(w) for w in wires.values()))
                for _ in range(len(wires)):
                    r = helpers.recv_frame(s, timeout=10)
                    qw = wires.pop(int.from_bytes(r[:2], "big"), None)
                    if qw is None:
                        errors.append("client %d: answer with unknown id" % k)
                        continue
                    errors.extend(helpers.check_answer(qw, r, helpers.expected_rdata(
                        dns_name(qw), "A")))
        except Exception as e:
            errors.append("client %d: %r" % (k, e))

    with Sampler(lambda: tcp_established(d.pid, knotd.port)) as samp:
        threads = [threading.Thread(target=client, args=(k,)) for k in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert not errors, errors[:10]
    counts = [v for v in samp.values if isinstance(v, int)]
    assert max(counts) == 1, counts
    assert tcp_established(d.pid, knotd.port) == 1


def dns_name(wire):
    return dns.message.from_wire(wire).question[0].name


def test_unix_upstream_one_circuit(knotd, dnsmux, unix_relay):
    """The same over a unix:// stream upstream (a relay in front of knotd):
    2,000 queries, one connected unix socket, all answers right."""
    relay = unix_relay(knotd.host, knotd.port)
    d = dnsmux(upstream="unix://" + relay.path)
    items = zone_items(2000)
    with Sampler(lambda: unix_connected(relay.path)) as samp:
        results = helpers.run_udp_load(d.port, items, clients=100, timeout=5.0)
    assert not helpers.summarize(results)
    counts = [v for v in samp.values if isinstance(v, int)]
    assert max(counts) == 1, counts
    assert unix_connected(relay.path) == 1
    assert relay.accepted == 1, "dnsmux opened %d unix connections" % relay.accepted


def test_second_circuit_only_when_first_full(fault_server, dnsmux):
    """--circuit-inflight 5: 10 queries held by a slow upstream need exactly
    two circuits; all are answered."""
    srv = fault_server(delay=1.0)
    # --circuit-stall above the delay: a slow circuit is not a dead one here
    d = dnsmux("--circuit-inflight", "5", "--circuit-max", "4", "--timeout", "5000", "--circuit-stall", "5000",
               upstream=srv.url("tcp"))
    names = ["c%d.slow.example." % i for i in range(10)]
    results = []
    t = threading.Thread(target=lambda: results.extend(
        helpers.run_udp_load(d.port, [(n, "A") for n in names], clients=10, timeout=8.0, expect=False)))
    t.start()
    try:
        assert srv.wait_received(10, timeout=5.0) == 10
        assert wait_until(lambda: tcp_established(d.pid, srv.port) == 2, 2.0), \
            "expected 2 upstream connections, kernel shows %d" % tcp_established(d.pid, srv.port)
    finally:
        t.join(20)
    assert srv.connections == 2
    for r in results:
        assert not r.error, (r.qname, r.error)
        assert not helpers.check_answer(r.qwire, r.rwire, {answer_a(r.qname)}), r.qname


def test_idle_circuit_closed_and_reopened(knotd, dnsmux):
    """--circuit-idle 500: the circuit closes after idling, and the next
    query opens a new one."""
    d = dnsmux("--circuit-idle", "500", upstream=knotd.url("tcp"))
    _, qw, rw, _ = helpers.udp_query(d.port, "www.test.", "A")
    assert not helpers.check_answer(qw, rw, {helpers.WWW_A})
    assert wait_until(lambda: tcp_established(d.pid, knotd.port) == 1, 1.0)
    assert wait_until(lambda: tcp_established(d.pid, knotd.port) == 0, 0.5 + 2 * MARGIN + 1.0), \
        "idle circuit still open"
    _, qw, rw, _ = helpers.udp_query(d.port, "a.test.", "A")
    assert not helpers.check_answer(qw, rw, helpers.expected_rdata("a.test.", "A"))
    assert wait_until(lambda: tcp_established(d.pid, knotd.port) == 1, 1.0)

