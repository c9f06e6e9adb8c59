"""Which well-formed queries go on a shared circuit: zone transfers, TKEY,
meta-types and unknown classes are answered by dnsmux itself and never
reach the upstream; an EDNS UDP size below 512 goes out as 512 (RFC 6891
6.2.5: values below 512 are treated as 512).

Guards the forwarding rule of the fix for fault 3: the old binary put
every one of these on the circuit the other clients share (an AXFR or
IXFR answer is a stream of messages, TKEY and meta-types are no question
a resolver answers). Upstream: the scripted server, which records what
arrives; the query and then a marker query go out from one client socket,
so once the marker has arrived, so would have the query."""

import struct

import dns.rcode
import pytest

import helpers
from fault_server import answer_a

REFUSED, NOTIMP, FORMERR, NOERROR = dns.rcode.REFUSED, dns.rcode.NOTIMP, dns.rcode.FORMERR, dns.rcode.NOERROR

# name: (QTYPE, QCLASS, rcodes dnsmux may answer with; None: forwarded)
QUERIES = {
    "axfr": (252, 1, {REFUSED}),
    "ixfr": (251, 1, {REFUSED}),
    "tkey": (249, 1, {REFUSED}),
    "class_42": (1, 42, {REFUSED}),
    "maila": (254, 1, {NOTIMP}),
    "mailb": (253, 1, {NOTIMP}),
    "meta_128": (128, 1, {NOTIMP}),
    # meta-types that cannot be asked for at all (RFC 6891 6.1.1, RFC 8945 5.1)
    "tsig": (250, 1, {NOTIMP, FORMERR}),
    "opt": (41, 1, {NOTIMP, FORMERR}),
    "any": (255, 1, None),  # (control: a data question is forwarded)
}


def raw_query(qtype, qclass, qid=0x2000, edns=None):
    w = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0 if edns is None else 1)
    w += b"\x03www\x04test\x00" + struct.pack("!HH", qtype, qclass)
    if edns is not None:
        w += b"\x00" + struct.pack("!HHIH", 41, edns, 0, 0)
    return w


def then_marker(port, srv, wire):
    """Send wire, then a marker query from the same socket; returns (reply
    to wire, what the upstream received up to the marker, marker excluded)."""
    marker = helpers.make_query("marker.policy.example.", "A").to_wire()
    with helpers.udp_socket() as s:
        s.settimeout(5.0)
        s.sendto(wire, ("127.0.0.1", port))
        s.sendto(marker, ("127.0.0.1", port))
        replies = {}
        while len(replies) < 2:
            data, _ = s.recvfrom(65535)
            replies[data[:2]] = data
    assert not helpers.check_answer(marker, replies[marker[:2]], {answer_a("marker.policy.example.")})
    got = srv.stream_queries()
    assert got and got[-1].qname == "marker.policy.example."
    return replies[wire[:2]], got[:-1]


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_answered_here_or_forwarded(fault_server, dnsmux, name):
    qtype, qclass, rcodes = QUERIES[name]
    srv = fault_server()
    d = dnsmux(upstream=srv.url("tcp"))
    wire = raw_query(qtype, qclass)
    reply, forwarded = then_marker(d.port, srv, wire)
    assert reply[2] & 0x80 and helpers.question_bytes(reply) == helpers.question_bytes(wire)
    rcode = helpers.rcode_of(reply)
    if rcodes is None:
        assert rcode == NOERROR and len(forwarded) == 1, (dns.rcode.to_text(rcode), forwarded)
    else:
        assert not forwarded, "forwarded to the upstream: %s" % forwarded
        assert rcode in rcodes, "%s, expected %s" % (dns.rcode.to_text(rcode), [dns.rcode.to_text(r) for r in rcodes])


@pytest.mark.parametrize("size", [0, 100, 511])
def test_edns_size_below_512_forwarded_as_512(fault_server, dnsmux, size):
    srv = fault_server()
    d = dnsmux(upstream=srv.url("tcp"))
    wire = raw_query(1, 1, edns=size)
    reply, forwarded = then_marker(d.port, srv, wire)
    assert not helpers.check_answer(wire, reply, {answer_a("www.test.")})
    assert [m.msg.payload for m in forwarded] == [512]
