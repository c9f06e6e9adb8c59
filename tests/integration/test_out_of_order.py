"""Upstream answers in any order (RFC 7766 6.2.1.1), and upstream answers
that must be thrown away: wrong ID, wrong question, QR=0, garbage. Every
client still gets its own answer, with its own ID and the exact case of
its question name."""

import random
import threading

import pytest

import helpers
from fault_server import answer_a


def mixed_names(n, tag, seed):
    rng = random.Random(seed)
    return [helpers.mixed_case("q%d.%s.example." % (i, tag), rng) for i in range(n)]


def check_results(results):
    bad = []
    for r in results:
        if r.error:
            bad.append("%s: %s" % (r.qname, r.error))
            continue
        p = helpers.check_answer(r.qwire, r.rwire, {answer_a(r.qname)})
        if p:
            bad.append("%s: %s" % (r.qname, "; ".join(p)))
    return bad


def test_reverse_order_and_bogus_answers_udp_clients(fault_server, dnsmux):
    """The upstream collects 10 queries and answers them last-first, each
    real answer preceded by one with a wrong ID, one with another question
    and one with QR=0, and with the name in another case."""
    srv = fault_server(reverse=10, batch_wait=0.2, wrong_id=True, wrong_question=True, wrong_qr=True,
                       random_case=True)
    d = dnsmux("--timeout", "5000", upstream=srv.url("tcp"))
    names = mixed_names(200, "ooo", 1)
    results = helpers.run_udp_load(d.port, [(n, "A") for n in names], clients=20, timeout=8.0, expect=False)
    bad = check_results(results)
    assert not bad, bad[:10]

    # dnsmux really had 10 queries in flight on one connection, under
    # distinct upstream-side IDs
    assert srv.max_batch >= 10
    assert srv.connections == 1
    assert srv.dup_ids_in_flight == 0

    st = d.stats()
    assert st["mismatched"] > 0
    # wrong question and QR=0 come with an ID that is in flight: mismatched;
    # an ID never in flight may be counted as mismatched or late.
    assert st["mismatched"] >= srv.bogus_sent["wrong_question"] + srv.bogus_sent["wrong_qr"], st
    assert st["mismatched"] + st["late"] >= sum(srv.bogus_sent.values()), (st, srv.bogus_sent)


def test_reverse_order_pipelined_tcp_client(fault_server, dnsmux):
    """One client TCP connection with 40 pipelined mixed-case queries, the
    upstream answering in reverse with bogus answers mixed in."""
    srv = fault_server(reverse=8, batch_wait=0.2, wrong_id=True, wrong_question=True, random_case=True)
    d = dnsmux("--timeout", "5000", upstream=srv.url("tcp"))
    names = mixed_names(40, "pipe", 2)
    ids = random.Random(3).sample(range(65536), len(names))
    wires = {}
    for n, qid in zip(names, ids):
        wires[qid] = (n, helpers.make_query(n, "A", qid=qid).to_wire())
    with helpers.tcp_connect(d.port, timeout=10) as s:
        s.sendall(b"".join(helpers.frame(w) for _, w in wires.values()))
        got = {}
        for _ in range(len(wires)):
            r = helpers.recv_frame(s, timeout=10)
            got[int.from_bytes(r[:2], "big")] = r
    assert set(got) == set(wires)
    for qid, (n, w) in wires.items():
        assert not helpers.check_answer(w, got[qid], {answer_a(n)}), n
    assert d.stats()["mismatched"] > 0


@pytest.mark.parametrize("kind", ["short", "random", "truncated", "rdlength", "header-pointer"])
def test_garbage_from_tcp_upstream(fault_server, dnsmux, kind):
    """Junk frames before each answer on the circuit: discarded, and every
    client still gets its right answer (on this circuit or a new one)."""
    srv = fault_server(garbage=kind)
    d = dnsmux("--timeout", "4000", upstream=srv.url("tcp"))
    names = mixed_names(30, "junk", 4)
    results = helpers.run_udp_load(d.port, [(n, "A") for n in names], clients=5, timeout=6.0, expect=False)
    bad = check_results(results)
    assert not bad, bad[:10]
    assert srv.bogus_sent["garbage"] > 0
    assert d.alive()


@pytest.mark.parametrize("script", [
    dict(wrong_id=True), dict(wrong_question=True), dict(wrong_qr=True), dict(garbage="random"),
    dict(garbage="truncated"), dict(wrong_id=True, wrong_question=True, wrong_qr=True, random_case=True),
], ids=["wrong_id", "wrong_question", "wrong_qr", "garbage", "truncated", "all"])
def test_bogus_answers_from_udp_upstream(fault_server, dnsmux, script):
    """Over a udp:// upstream the bogus datagram arrives first on the
    query's socket; dnsmux must keep waiting for the real one."""
    srv = fault_server(**script)
    d = dnsmux("--timeout", "4000", "--udp-retry", "3000", upstream=srv.url("udp"))
    names = mixed_names(20, "udp", 5)
    results = helpers.run_udp_load(d.port, [(n, "A") for n in names], clients=5, timeout=6.0, expect=False)
    bad = check_results(results)
    assert not bad, bad[:10]
    st = d.stats()
    if script.get("wrong_question") or script.get("wrong_qr"):
        assert st["mismatched"] > 0, st


def test_concurrent_identical_questions(fault_server, dnsmux):
    """Many clients asking the very same question at once, answered in
    reverse: each gets its own ID back (the upstream-side IDs differ)."""
    srv = fault_server(reverse=10, batch_wait=0.2)
    d = dnsmux("--timeout", "5000", upstream=srv.url("tcp"))
    results = []
    lock = threading.Lock()

    def one(k):
        r = helpers.run_udp_load(d.port, [("Same.Name.example.", "A")] * 5, clients=1, timeout=8.0, expect=False)
        with lock:
            results.extend(r)

    threads = [threading.Thread(target=one, args=(k,)) for k in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 100
    bad = check_results(results)
    assert not bad, bad[:10]
    # an upstream-side ID is never given to two queries in flight at once
    assert srv.dup_ids_in_flight == 0
