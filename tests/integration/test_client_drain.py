"""No answer is lost when a TCP or DoT client connection ends: a client
that half-closes (FIN, or close_notify) gets every answer it asked for
(RFC 7766 6.2.4), a stopping dnsmux (SIGTERM) flushes what is queued
before it exits, and dnsmux ends the connection gracefully (its own
close_notify and FIN, never a RST)."""

import signal
import time

import pytest

import helpers
from helpers import stream_client, stream_listener

N_LARGE = 3000  # huge.test answers (~2.6 KB): ~8 MB, far more than the kernel buffers hold


def answer_slowly(c, d, n, budget_s=30.0):
    """Until dnsmux has answered n queries (its `answered` counter): keep
    sending what c has queued, and read only when dnsmux has stopped making
    progress (it waits for us to take answers), 64 KB at a time: a slow
    reader, so that answers pile up in dnsmux. Returns the last count."""
    deadline = time.monotonic() + budget_s
    last = -1
    while time.monotonic() < deadline:
        c.pump(0.05, read=False)
        answered = d.stats()["answered"]
        if answered >= n:
            return answered
        if answered == last:
            c.recv_some(65536)
        last = answered
    return last


def check_all_answered(c, qs, how):
    """Read the rest (20 s at most), then the server's end: every query of
    qs answered right, then close_notify (DoT) and a FIN, not a reset."""
    c.read_until(len(qs), 20.0)
    c.wait_eof(5.0)
    problems = helpers.match_answers(c.frames, qs, "TXT")
    assert not problems, "%s: %s" % (how, problems[:5])
    assert c.eof == "fin", "%s: connection ended by %s after the answers" % (how, c.eof)
    if c.tls is not None:
        assert c.close_notify, "%s: no close_notify from dnsmux before its FIN" % how


def large_exchange(kind, knotd, pki, dnsmux, tmp_path):
    """dnsmux (drain time 5 s), N_LARGE huge.test queries, and a client
    (small receive buffer) with all of them queued, nothing sent yet."""
    d = stream_listener(kind, dnsmux, pki, knotd.url("tcp"), tmp_path, "--timeout", "5000")
    qs = helpers.huge_queries(N_LARGE)
    c = stream_client(kind, d, pki, rcvbuf=65536)
    c.queue(b"".join(helpers.frame(w) for _, w in qs.values()))
    return d, qs, c


@pytest.mark.parametrize("kind", ["tcp", "dot"])
def test_half_closed_client_gets_every_answer(knotd, pki, dnsmux, tmp_path, kind):
    """Fault 5 (half-close): client_close() called uv_close with answers
    still queued once the client had sent its FIN, cancelling them (probe:
    1,085 of 3,000 large answers delivered, though the counters said all
    were answered). 3,000 huge.test queries, then FIN (DoT: close_notify
    and FIN), read slowly: all 3,000 answers, each right, then dnsmux's own
    close_notify/FIN; tcp_writes_cancelled stays 0."""
    d, qs, c = large_exchange(kind, knotd, pki, dnsmux, tmp_path)
    with c:
        if c.tls is not None:
            c.queue_close_notify()
        c.queue_fin()
        answered = answer_slowly(c, d, N_LARGE)
        check_all_answered(c, qs, "after our FIN (dnsmux answered %d)" % answered)
    assert d.stats()["tcp_writes_cancelled"] == 0


@pytest.mark.parametrize("kind", ["tcp", "dot"])
def test_sigterm_flushes_queued_answers(knotd, pki, dnsmux, tmp_path, kind):
    """Fault 5 (SIGTERM): a stopping worker closed client connections with
    their answers still queued (probe: 1,085 of 3,000 delivered). 3,000
    huge.test queries, read slowly until dnsmux has answered them all, then
    SIGTERM, then read the rest: all 3,000 answers, each right, a graceful
    end (close_notify on DoT, FIN), exit code 0, and tcp_writes_cancelled 0
    in the stats printed at exit."""
    d, qs, c = large_exchange(kind, knotd, pki, dnsmux, tmp_path)
    with c:
        answered = answer_slowly(c, d, N_LARGE)
        assert answered == N_LARGE, "dnsmux answered %d of %d before SIGTERM" % (answered, N_LARGE)
        d.send_signal(signal.SIGTERM)
        check_all_answered(c, qs, "after SIGTERM")
    rc = d.wait(15.0)
    assert rc == 0
    st = d.last_stats()
    assert st is not None and st["tcp_writes_cancelled"] == 0, st


@pytest.mark.parametrize("pipeline", [None, 16])
def test_queries_and_close_notify_in_one_write(knotd, pki, dnsmux, tmp_path, pipeline):
    """Fault 6: when DoT queries and the client's close_notify arrived
    together, only --tcp-pipeline of them were started and the rest never
    processed (probe: 128 of 200 answered with the defaults). 200 queries
    and close_notify, encrypted into one buffer and sent in one write: all
    200 answered right, then dnsmux's close_notify and FIN."""
    args = ("--tcp-pipeline", str(pipeline)) if pipeline else ()
    d = stream_listener("dot", dnsmux, pki, knotd.url("tcp"), tmp_path, *args)
    qs = helpers.zone_queries(200, edns=1232)
    with stream_client("dot", d, pki) as c:
        c.queue(b"".join(helpers.frame(w) for _, w in qs.values()))
        c.queue_close_notify()
        assert len(c.out) < 262144  # one send() takes it all
        c.send_some()
        assert not c.out
        c.read_until(len(qs), 10.0)
        c.wait_eof(5.0)
    problems = helpers.match_answers(c.frames, qs)
    assert not problems, problems[:5]
    assert c.close_notify and c.eof == "fin", (c.close_notify, c.eof)
