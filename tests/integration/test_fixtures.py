"""Self-checks of the test fixtures (no dnsmux): the knotd origin serves the
zone the other tests rely on, with the answer sizes they assume, and the
fault server does what its script says. If these fail, the dnsmux tests'
verdicts mean nothing."""

import dns.flags
import dns.message

import helpers
from fault_server import BOGUS_A, answer_a


def test_knotd_zone_and_sizes(knotd):
    _, _, _, m = helpers.udp_query(knotd.port, "www.test.", "A")
    assert helpers.rdata_set(m) == {helpers.WWW_A}
    _, _, _, m = helpers.udp_query(knotd.port, "n7.test.", "AAAA")
    assert helpers.rdata_set(m) == helpers.expected_rdata("n7.test.", "AAAA")
    _, _, _, m = helpers.udp_query(knotd.port, "anything.bench.test.", "A")
    assert helpers.rdata_set(m) == {helpers.BENCH_A}

    # big.test: more than 512 bytes, fits in 1232
    _, _, d, m = helpers.udp_query(knotd.port, "big.test.", "TXT", edns=1232)
    assert 512 < len(d) < 1232 and not m.flags & dns.flags.TC
    # huge.test: knotd truncates over UDP (its udp-max-payload is 1232) ...
    _, _, d, m = helpers.udp_query(knotd.port, "huge.test.", "TXT", edns=4096)
    assert m.flags & dns.flags.TC and not m.answer
    # ... and sends 1232 < size < 4000 over TCP
    _, _, d, m = helpers.tcp_query(knotd.port, "huge.test.", "TXT")
    assert 1232 < len(d) < 4000
    assert helpers.rdata_set(m) == helpers.expected_rdata("huge.test.", "TXT")


def test_knotd_restart_same_port(knotd_factory):
    k = knotd_factory()
    port = k.port
    k.kill()
    assert not k.answers(tcp=True)
    k.start()
    assert k.port == port and k.answers(tcp=True)


def test_fault_server_reverse_and_bogus(fault_server):
    s = fault_server(reverse=4, wrong_id=True, wrong_question=True)
    qs = [helpers.make_query("q%d.fault." % i, "A") for i in range(4)]
    with helpers.tcp_connect(s.port) as c:
        c.sendall(b"".join(helpers.frame(q.to_wire()) for q in qs))
        got = [dns.message.from_wire(helpers.recv_frame(c)) for _ in range(12)]
    real = [m for m in got if helpers.rdata_set(m) != {BOGUS_A}]
    assert [m.id for m in real] == [q.id for q in reversed(qs)]
    assert all(helpers.rdata_set(m) == {answer_a(m.question[0].name)} for m in real)
    assert s.bogus_sent["wrong_id"] == 4 and s.bogus_sent["wrong_question"] == 4
    assert s.max_batch == 4


def test_fault_server_udp_tc(fault_server):
    s = fault_server(udp_tc=True)
    _, _, _, m = helpers.udp_query(s.port, "x.fault.", "A")
    assert m.flags & dns.flags.TC and not m.answer
    _, _, _, m = helpers.tcp_query(s.port, "x.fault.", "A")
    assert helpers.rdata_set(m) == {answer_a("x.fault.")}
