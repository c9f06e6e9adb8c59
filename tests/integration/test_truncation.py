"""Message size: a truncated (TC=1) UDP-upstream answer is retried over TCP;
UDP clients get answers cut to 512 bytes (no EDNS) or to their EDNS size,
as header + TC=1 + question (+ OPT); TCP clients get everything."""

import subprocess

import dns.flags
import dns.message
import dns.rcode
import pytest

import helpers
from fault_server import answer_a

HUGE = helpers.expected_rdata("huge.test.", "TXT")
BIG = helpers.expected_rdata("big.test.", "TXT")


def test_udp_upstream_tc_retried_over_tcp_knotd(knotd, dnsmux):
    """knotd truncates huge.test (> 1232 bytes) over UDP; a client asking
    with EDNS 4096 still gets all of it, which only TCP could have fetched."""
    d = dnsmux(upstream=knotd.url("udp"))
    q, qw, rw, m = helpers.udp_query(d.port, "huge.test.", "TXT", edns=4096)
    assert not helpers.check_answer(qw, rw, HUGE)
    assert not m.flags & dns.flags.TC
    assert len(rw) > 1232
    assert d.stats()["tc_retries"] >= 1


def test_udp_upstream_tc_retried_over_tcp_same_server(fault_server, dnsmux):
    """A UDP upstream that always sets TC=1: dnsmux asks the same server
    again over TCP and passes on the full answer."""
    srv = fault_server(udp_tc=True)
    d = dnsmux(upstream=srv.url("udp"))
    _, qw, rw, _ = helpers.udp_query(d.port, "Tc.Example.", "A", edns=1232)
    assert not helpers.check_answer(qw, rw, {answer_a("tc.example.")})
    assert not rw[2] & 0x02, "TC passed on to the client"
    udp = [r for r in srv.queries("udp") if r.qname and r.qname.lower() == "tc.example."]
    tcp = [r for r in srv.queries("tcp") if r.qname and r.qname.lower() == "tc.example."]
    assert udp and tcp, "expected the query over UDP, then over TCP (got %d udp, %d tcp)" % (len(udp), len(tcp))
    assert udp[0].t < tcp[0].t
    assert d.stats()["tc_retries"] >= 1


@pytest.mark.parametrize("scheme", ["tcp", "udp"])
def test_large_answer_to_plain_udp_client(knotd, dnsmux, scheme):
    """No EDNS: at most 512 bytes, so big.test comes back TC=1 with the
    question and no records; the client's ID and name case are kept."""
    d = dnsmux(upstream=knotd.url(scheme))
    q = helpers.make_query("BiG.tEsT.", "TXT", edns=None)
    qw = q.to_wire()
    rw = helpers.udp_exchange(qw, d.port)
    assert len(rw) <= 512
    m = dns.message.from_wire(rw)
    assert m.flags & dns.flags.TC
    assert m.flags & dns.flags.QR
    assert m.rcode() == dns.rcode.NOERROR
    assert rw[:2] == qw[:2]
    assert helpers.question_bytes(rw) == helpers.question_bytes(qw)
    assert not m.answer
    assert m.edns < 0, "OPT record in answer to a query without one"


@pytest.mark.parametrize("scheme", ["tcp", "udp"])
def test_large_answer_to_edns1232_client(knotd, dnsmux, scheme):
    """EDNS 1232: huge.test comes back TC=1 with question and OPT; big.test
    (< 1232) comes back whole."""
    d = dnsmux(upstream=knotd.url(scheme))
    q = helpers.make_query("HuGe.TeSt.", "TXT", edns=1232)
    qw = q.to_wire()
    rw = helpers.udp_exchange(qw, d.port)
    assert len(rw) <= 1232
    m = dns.message.from_wire(rw)
    assert m.flags & dns.flags.TC
    assert rw[:2] == qw[:2]
    assert helpers.question_bytes(rw) == helpers.question_bytes(qw)
    assert not m.answer
    assert m.edns == 0, "no OPT record in the truncated answer"

    _, qw, rw, m = helpers.udp_query(d.port, "big.test.", "TXT", edns=1232)
    assert not helpers.check_answer(qw, rw, BIG)
    assert not m.flags & dns.flags.TC


def test_edns_512_client_gets_truncated_big(knotd, dnsmux):
    """EDNS size 512: big.test (about 880 bytes) is truncated to fit, OPT kept."""
    d = dnsmux(upstream=knotd.url("tcp"))
    q = helpers.make_query("big.test.", "TXT", edns=512)
    qw = q.to_wire()
    rw = helpers.udp_exchange(qw, d.port)
    assert len(rw) <= 512
    m = dns.message.from_wire(rw)
    assert m.flags & dns.flags.TC and not m.answer and m.edns == 0


@pytest.mark.parametrize("scheme", ["tcp", "udp"])
def test_tcp_client_gets_full_answer(knotd, dnsmux, scheme):
    d = dnsmux(upstream=knotd.url(scheme))
    _, qw, rw, m = helpers.tcp_query(d.port, "huge.test.", "TXT", edns=None)
    assert not helpers.check_answer(qw, rw, HUGE)
    assert not m.flags & dns.flags.TC
    _, qw, rw, m = helpers.tcp_query(d.port, "huge.test.", "TXT", edns=1232)
    assert not helpers.check_answer(qw, rw, HUGE)


def test_real_clients_dig_and_kdig(knotd, dnsmux):
    """dig without EDNS and without retry sees the TC flag; kdig over TCP
    gets all TXT records."""
    d = dnsmux(upstream=knotd.url("tcp"))
    out = subprocess.run(["dig", "@127.0.0.1", "-p", str(d.port), "+noedns", "+ignore", "+tries=1",
                          "+time=5", "big.test.", "TXT"], capture_output=True, text=True, timeout=20).stdout
    flags = [ln for ln in out.splitlines() if ln.startswith(";; flags:")]
    assert flags and " tc" in flags[0].split(";")[2], out
    out = subprocess.run(["kdig", "@127.0.0.1", "-p", str(d.port), "+tcp", "+time=5", "+retry=0",
                          "huge.test.", "TXT"], capture_output=True, text=True, timeout=20).stdout
    txt = [ln for ln in out.splitlines() if ln.startswith("huge.test.") and "\tTXT\t" in ln]
    assert len(txt) == helpers.HUGE_TXT_COUNT, out
    assert "status: NOERROR" in out
