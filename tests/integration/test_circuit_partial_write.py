"""A stream circuit whose upstream stops reading for a while: dnsmux's
writes to it end part-way (the kernel takes only part of the bytes), and
the rest must go out as soon as the socket drains, not wait for the next
query to come along.

Guards fault 7: over TLS, after a partial write the ciphertext the TLS
layer still held was sent only when another query arrived; after a burst
with nothing behind it, half the queries sat unsent until their --timeout
(probe: 349 of 706 reached the upstream, 357 SERVFAIL; this test on the
old binary: 353 of 706 reached it, 353 SERVFAIL). The upstream is the
scripted server with a 4 KiB receive buffer that reads nothing for 0.8 s
after its first query on a connection; --circuit-stall is above --timeout,
so no fresh circuit hides the stall. On loopback the kernel lets a send
buffer grow to net.ipv4.tcp_wmem's maximum (4 MiB here), so each query
carries a private EDNS option that makes the burst half as large again as
that: only then does a write end part-way. The tcp:// case is the control
(plain TCP always resumed)."""

import threading

import dns.edns
import pytest

import helpers
from conftest import MARGIN, tls_url
from fault_server import answer_a

N_QUERIES = 706
N_CONNS = 6  # client connections, each pipelining at most --tcp-pipeline (128) queries
TIMEOUT_MS = 5000  # the burst needs ~1.3 s (0.8 of them the pause); room for a loaded machine
PAUSE_S = 0.8
PRIVATE_OPTION = 65001  # RFC 6891 9: local/experimental use


def send_buffer_max():
    """Largest send buffer the kernel gives a TCP socket (net.ipv4.tcp_wmem max)."""
    with open("/proc/sys/net/ipv4/tcp_wmem") as f:
        return int(f.read().split()[2])


def burst_query(name, option_len):
    q = helpers.make_query(name, "A", edns=1232)
    q.use_edns(0, payload=1232, options=[dns.edns.GenericOption(PRIVATE_OPTION, b"x" * option_len)])
    return q


def pipelined_burst(port, names, option_len, conns, timeout):
    """Send the A queries for names over `conns` client TCP connections, all
    of each connection's queries in one write, then read every answer.
    Returns the problems (no answer, wrong answer), one per query."""
    problems = []
    lock = threading.Lock()

    def client(part):
        qs = {}
        for name in part:
            q = burst_query(name, option_len)
            while q.id in qs:
                q = burst_query(name, option_len)
            qs[q.id] = (name, q.to_wire(max_size=65535))
        found = []
        try:
            with helpers.tcp_connect(port, timeout=timeout) as s:
                s.sendall(b"".join(helpers.frame(w) for _, w in qs.values()))
                while qs:
                    r = helpers.recv_frame(s, timeout)
                    name, w = qs.pop(int.from_bytes(r[:2], "big"), (None, None))
                    if name is None:
                        found.append("answer with an unexpected id")
                        continue
                    found += ["%s: %s" % (name, p) for p in helpers.check_answer(w, r, {answer_a(name)})]
        except Exception as e:  # (a thread that died must not look like success)
            found += ["%s: no answer (%r)" % (name, e) for name, _ in qs.values()]
        with lock:
            problems.extend(found)

    threads = [threading.Thread(target=client, args=(names[k::conns],)) for k in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 5)
    return problems


@pytest.mark.parametrize("transport", ["tls", "tcp"])
def test_burst_to_a_paused_upstream_all_answered(tls_fault_server, fault_server, pki, dnsmux, transport):
    """706 queries at once to an upstream that pauses reading: every one of
    them reaches it and is answered right, before --timeout, on the one
    circuit."""
    script = dict(rcvbuf=4096, read_pause=PAUSE_S)
    if transport == "tls":
        srv = tls_fault_server(**script)
        url, extra = tls_url(srv.host, srv.port), ["--ca-file", pki.ca_file]
    else:
        srv = fault_server(**script)
        url, extra = srv.url("tcp"), []
    d = dnsmux(*extra, "--timeout", str(TIMEOUT_MS), "--circuit-stall", str(TIMEOUT_MS + 2000), upstream=url)
    # The circuit is up before the burst, so the burst goes out in many
    # writes as dnsmux reads it (the upstream's pause starts here).
    _, qw, rw, _ = helpers.tcp_query(d.port, "first.pause.example.")
    assert not helpers.check_answer(qw, rw, {answer_a("first.pause.example.")})
    option_len = min(60000, send_buffer_max() * 3 // 2 // N_QUERIES)
    names = ["p%d.pause.example." % i for i in range(N_QUERIES)]
    problems = pipelined_burst(d.port, names, option_len, N_CONNS, TIMEOUT_MS / 1000 + MARGIN + 1.0)
    received = srv.stream_queries()
    st = d.stats()
    assert not problems, "%d of %d queries not answered right (the upstream received %d of them; %s): %s" % (
        len(problems), N_QUERIES, len(received) - 1, st, problems[:5])
    assert srv.read_pauses >= 1, "the upstream never paused: the burst did not meet a full socket"
    assert len(received) == N_QUERIES + 1
    assert srv.connections == 1, "the burst needed %d upstream connections" % srv.connections
    assert st["servfail"] == 0, st
