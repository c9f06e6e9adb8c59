"""The TCP listener as RFC 7766 asks: pipelined queries on one connection,
messages split across reads, an idle timeout, and caps on connections and
on queries in flight per connection."""

import subprocess
import threading
import time

import dns.rcode
import pytest

import helpers
from conftest import MARGIN, Sampler, tcp_clients, wait_until
from fault_server import answer_a


def test_pipelined_queries_in_one_write(knotd, dnsmux):
    d = dnsmux(upstream=knotd.url("tcp"))
    qs = helpers.zone_queries(50)
    with helpers.tcp_connect(d.port) as s:
        s.sendall(b"".join(helpers.frame(w) for _, w in qs.values()))
        assert not helpers.read_answers(s, qs)
        # and the connection is still usable afterwards
        more = helpers.zone_queries(5, 100)
        s.sendall(b"".join(helpers.frame(w) for _, w in more.values()))
        assert not helpers.read_answers(s, more)


def chunks_one_byte(data):
    return [data[i:i + 1] for i in range(len(data))]


def chunks_length_then_body(data):
    return [data[:2], data[2:]]


def chunks_length_split(data):
    return [data[:1], data[1:7], data[7:]]


SPLITS = {"one_byte_at_a_time": chunks_one_byte, "length_then_body": chunks_length_then_body,
          "length_split": chunks_length_split}


@pytest.mark.parametrize("how", sorted(SPLITS))
def test_query_split_across_writes(knotd, dnsmux, how):
    d = dnsmux(upstream=knotd.url("tcp"))
    qs = helpers.zone_queries(2)
    data = b"".join(helpers.frame(w) for _, w in qs.values())
    with helpers.tcp_connect(d.port) as s:
        for c in SPLITS[how](data):
            s.sendall(c)
            time.sleep(0.003)  # separate segments (TCP_NODELAY is on), not synchronisation
        assert not helpers.read_answers(s, qs)


def test_two_messages_straddling_writes(knotd, dnsmux):
    """First write: one whole message and the first 3 bytes of the next."""
    d = dnsmux(upstream=knotd.url("tcp"))
    qs = helpers.zone_queries(2)
    frames = [helpers.frame(w) for _, w in qs.values()]
    with helpers.tcp_connect(d.port) as s:
        s.sendall(frames[0] + frames[1][:3])
        time.sleep(0.05)  # let the first read happen with half a message in the buffer
        s.sendall(frames[1][3:])
        assert not helpers.read_answers(s, qs)


def test_idle_connection_closed(knotd, dnsmux):
    """--tcp-idle 700: a connection that is idle (after a query, or from
    the start) is closed by dnsmux after about that long."""
    d = dnsmux("--tcp-idle", "700", upstream=knotd.url("tcp"))
    with helpers.tcp_connect(d.port) as used, helpers.tcp_connect(d.port) as silent:
        qs = helpers.zone_queries(1)
        used.sendall(helpers.frame(next(iter(qs.values()))[1]))
        assert not helpers.read_answers(used, qs)
        t0 = time.monotonic()
        closed_used = helpers.wait_closed(used, 0.7 + 2 * MARGIN + 1.0)
        closed_silent = helpers.wait_closed(silent, 0.7 + 2 * MARGIN + 1.0)
        waited = time.monotonic() - t0
    assert closed_used is not None, "connection idle after a query not closed"
    assert closed_used >= 0.5, "closed after %.2fs, before the idle timeout" % closed_used
    assert closed_silent is not None, "connection that never sent anything not closed (%.1fs)" % waited


def test_active_connection_not_closed(knotd, dnsmux):
    """--tcp-idle is an idle timeout, not a lifetime: a connection with a
    query every 200 ms stays open for 3 s with --tcp-idle 1000."""
    d = dnsmux("--tcp-idle", "1000", upstream=knotd.url("tcp"))
    with helpers.tcp_connect(d.port) as s:
        t_end = time.monotonic() + 3.0
        i = 0
        while time.monotonic() < t_end:
            qs = helpers.zone_queries(1, i)
            s.sendall(helpers.frame(next(iter(qs.values()))[1]))
            assert not helpers.read_answers(s, qs, timeout=5.0)
            i += 1
            time.sleep(0.2)  # the pacing under test
        assert helpers.wait_closed(s, 1.0 + MARGIN + 1.0) is not None, "not closed once idle"


def query_on(sock, timeout):
    """Send one query on sock; True if answered right, False if closed or
    no answer in time."""
    qs = helpers.zone_queries(1)
    try:
        sock.sendall(helpers.frame(next(iter(qs.values()))[1]))
        return not helpers.read_answers(sock, qs, timeout)
    except (OSError, EOFError):
        return False


def test_client_connection_cap(knotd, dnsmux):
    """--tcp-max-clients 4: never more than 4 client connections served at
    once; when one goes away a new client is served again."""
    d = dnsmux("--tcp-max-clients", "4", "--tcp-idle", "30000", upstream=knotd.url("tcp"))
    socks = []
    try:
        with Sampler(lambda: tcp_clients(d.pid, d.port)) as samp:
            for _ in range(4):
                s = helpers.tcp_connect(d.port)
                socks.append(s)
                assert query_on(s, 5.0)
            extra = [helpers.tcp_connect(d.port) for _ in range(2)]
            socks += extra
            served = [None] * len(socks)

            def probe(i):
                served[i] = query_on(socks[i], 2.0)

            threads = [threading.Thread(target=probe, args=(i,)) for i in range(len(socks))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(10)
        assert sum(bool(x) for x in served) <= 4, "served %s with a cap of 4" % served
        counts = [v for v in samp.values if isinstance(v, int)]
        assert max(counts) <= 4, "dnsmux held %d client connections" % max(counts)

        # free a slot (and drop the connections that were not served, which
        # may sit in the accept queue): a new client gets served (retry: the
        # slot frees asynchronously)
        first_served = served.index(True) if True in served else 0
        for i, ok in enumerate(served):
            if not ok or i == first_served:
                socks[i].close()

        def new_client_served():
            try:
                with helpers.tcp_connect(d.port, timeout=2.0) as s:
                    return query_on(s, 1.0)
            except OSError:
                return False

        assert wait_until(new_client_served, 8.0, interval=0.1), "no client served after a slot was freed"
    finally:
        for s in socks:
            s.close()


def test_pipeline_cap_per_connection(fault_server, dnsmux):
    """--tcp-pipeline 4: with a slow upstream, one client connection never
    has more than 4 queries in flight upstream; all 12 are answered."""
    srv = fault_server(delay=0.4)
    d = dnsmux("--tcp-pipeline", "4", "--timeout", "8000", upstream=srv.url("tcp"))
    names = ["p%d.pipe.example." % i for i in range(12)]
    qs = {}
    for i, n in enumerate(names):
        qs[1000 + i] = (n, helpers.make_query(n, "A", qid=1000 + i).to_wire())
    got = {}
    with helpers.tcp_connect(d.port) as s:
        s.sendall(b"".join(helpers.frame(w) for _, w in qs.values()))
        for _ in range(len(qs)):
            r = helpers.recv_frame(s, timeout=10.0)
            got[int.from_bytes(r[:2], "big")] = r
    assert set(got) == set(qs)
    assert srv.max_outstanding <= 4, "upstream saw %d in flight from one client" % srv.max_outstanding
    ok = 0
    for qid, (n, w) in qs.items():
        r = got[qid]
        if helpers.rcode_of(r) == dns.rcode.NOERROR:
            assert not helpers.check_answer(w, r, {answer_a(n)})
            ok += 1
        else:
            assert helpers.rcode_of(r) == dns.rcode.SERVFAIL
    assert ok >= 4


def test_kdig_over_tcp(knotd, dnsmux):
    d = dnsmux(upstream=knotd.url("tcp"))
    out = subprocess.run(["kdig", "@127.0.0.1", "-p", str(d.port), "+tcp", "+time=5", "+retry=0",
                          "www.test.", "A"], capture_output=True, text=True, timeout=20).stdout
    assert "status: NOERROR" in out, out
    assert "(TCP)" in out, out
    assert helpers.WWW_A in out, out
