"""How a circuit writes and acknowledges (doc/dnsmux.md, Circuits).

* Nagle on the far end: Unbound writes DoT answers without TCP_NODELAY, so
  it holds an answer while the previous one is unacknowledged. dnsmux must
  acknowledge promptly when answers are due and it has no query to carry the
  ACK; else a burst of queries waits for Linux's delayed ACK (40 ms).
* Coalescing under load: with 64 queries outstanding on a circuit, new ones
  are held back up to 1 ms or until 64 wait, then written together; below
  the mark, and after the hold, nothing waits longer.

Origins: a real Unbound serving DoT (fixture unbound_dot, forwarding to
knotd), and the scripted server (fault_server) that never answers, to keep
queries outstanding."""

import socket
import time

import dns.message
import dns.rcode

import helpers
from conftest import MARGIN, wait_until

# Linux's delayed-ACK timer is at least 40 ms (TCP_DELACK_MIN): a burst that
# waits for it takes longer than this; one that does not takes a few ms.
DELACK_MIN_S = 0.040


def burst(port, names, types=None, timeout=5.0):
    """Send one UDP query per name (type A, or types[i]) back to back from
    one socket, then read all the answers. Returns (seconds until the last
    answer, answers by ID)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        wires = {}
        for i, n in enumerate(names):
            q = dns.message.make_query(n, types[i] if types else "A")
            q.id = i + 1
            wires[q.id] = q
        t0 = time.monotonic()
        for q in wires.values():
            s.sendto(q.to_wire(), ("127.0.0.1", port))
        got = {}
        while len(got) < len(wires):
            r = dns.message.from_wire(s.recv(4096))
            got[r.id] = r
        return time.monotonic() - t0, got
    finally:
        s.close()


def test_burst_to_unbound_is_not_held_by_nagle(unbound_dot, pki, dnsmux):
    """Bursts of 50 queries through one DoT circuit to Unbound, answered
    from its cache (so it writes them back to back, each one held by Nagle
    until our ACK of the previous): every burst is answered in well under
    Linux's 40 ms delayed ACK, and dnsmux counts the ACKs it sent alone."""
    d = dnsmux("--ca-file", pki.ca_file, upstream=unbound_dot.url())
    names = ["n%d.test." % i for i in range(50)]
    elapsed, got = burst(d.port, names)  # warm Unbound's cache and the circuit
    assert all(r.rcode() == dns.rcode.NOERROR and r.answer for r in got.values())
    times = []
    for _ in range(5):
        elapsed, got = burst(d.port, names)
        assert len(got) == 50
        assert all(r.rcode() == dns.rcode.NOERROR and r.answer for r in got.values())
        times.append(elapsed)
        time.sleep(0.1)
    # a loaded CI machine may stretch one burst; a held one takes >= 40 ms every time
    assert sorted(times)[2] < DELACK_MIN_S * 0.75, "bursts of 50 took %s s: answers waited for delayed ACKs" % [
        round(t, 4) for t in times]
    st = d.stats()
    assert st["circuit_acks"] >= 1, st
    assert st["tls_handshakes"] == 1, st


def test_pair_to_unbound_is_not_held_by_nagle(unbound_dot, pki, dnsmux):
    """An A and an AAAA query sent together (what every stub does), answered
    from Unbound's cache, on a circuit that has carried one query before:
    the second answer does not wait for a delayed ACK."""
    names = ["n%d.test." % i for i in range(6)]
    for n in names:  # Unbound's cache: it answers the pairs back to back
        for t in ("A", "AAAA"):
            assert unbound_dot.query(n, t) is not None
    times = []
    for n in names:
        d = dnsmux("--ca-file", pki.ca_file, upstream=unbound_dot.url())
        r = helpers.udp_query(d.port, "n0.test.")[3]  # opens the circuit
        assert r.rcode() == dns.rcode.NOERROR
        elapsed, got = burst(d.port, [n, n], types=("A", "AAAA"))
        assert len(got) == 2
        times.append(elapsed)
        d.stop()
    # without the ACK some of these pairs take 40-45 ms (the kernel's minimum
    # delayed ACK); with it about 1 ms
    assert max(times) < DELACK_MIN_S, times


# the silent upstream must not be declared dead (--circuit-stall) nor the
# queries given up (--timeout) while a test looks at the circuit
HOLD_ARGS = ("--timeout", "4000", "--circuit-stall", "4000")


def send_queries(port, names, gap=0.0):
    """Send one UDP query per name (no waiting for answers); returns the socket."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for n in names:
        s.sendto(helpers.make_query(n, "A").to_wire(), ("127.0.0.1", port))
        if gap:
            time.sleep(gap)
    return s


def test_coalescing_under_load_holds_briefly(fault_server, dnsmux):
    """64 queries outstanding on a silent upstream: a further query is still
    written within a few ms (the 1 ms hold, not forever), and 40 more that
    trickle in 0.3 ms apart go out in far fewer than 40 writes."""
    srv = fault_server(silent=True)
    d = dnsmux(*HOLD_ARGS, upstream=srv.url())
    socks = [send_queries(d.port, ["held%d.example." % i for i in range(64)])]
    try:
        assert srv.wait_received(64, timeout=5.0 + MARGIN) >= 64
        assert d.stats()["circuits_opened"] == 1

        t0 = time.monotonic()
        socks.append(send_queries(d.port, ["late.example."]))
        assert wait_until(lambda: len(srv.received) >= 65, 1.0 + MARGIN), \
            "a query behind 64 outstanding ones was never written"
        late = srv.received[64]
        assert late.qname == "late.example."
        assert late.t - t0 < 0.1 * MARGIN, "held %.3f s" % (late.t - t0)

        w0 = d.stats()["circuit_writes"]
        socks.append(send_queries(d.port, ["trickle%d.example." % i for i in range(40)], gap=0.0003))
        assert srv.wait_received(105, timeout=5.0 + MARGIN) >= 105
        writes = d.stats()["circuit_writes"] - w0
        assert 1 <= writes <= 24, "40 queries behind 64 outstanding took %d writes" % writes
    finally:
        for s in socks:
            s.close()


def test_below_the_mark_nothing_waits(fault_server, dnsmux):
    """Few queries outstanding: 20 queries sent 2 ms apart are written one
    by one (one write each), none held back for company."""
    srv = fault_server(silent=True)
    d = dnsmux(*HOLD_ARGS, upstream=srv.url())
    s = send_queries(d.port, ["first.example."])
    try:
        assert srv.wait_received(1, timeout=5.0 + MARGIN) >= 1
        w0 = d.stats()["circuit_writes"]
        s2 = send_queries(d.port, ["one%d.example." % i for i in range(20)], gap=0.002)
        s2.close()
        assert srv.wait_received(21, timeout=5.0 + MARGIN) >= 21
        writes = d.stats()["circuit_writes"] - w0
        assert writes >= 15, "20 queries 2 ms apart with 1-20 outstanding took only %d writes" % writes
    finally:
        s.close()
