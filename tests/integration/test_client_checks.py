"""What dnsmux does with client messages that are not plain queries:
malformed -> FORMERR (dropped if shorter than a header), QR=1 -> dropped,
opcode other than QUERY -> NOTIMP, QDCOUNT != 1 -> FORMERR; each counted,
and normal service goes on."""

import select
import struct

import dns.message
import dns.opcode
import dns.rcode
import pytest

import helpers


def header(qid, flags=0x0100, qd=1, an=0, ns=0, ar=0):
    return struct.pack("!HHHHHH", qid, flags, qd, an, ns, ar)


QUESTION_WWW = b"\x03www\x04test\x00\x00\x01\x00\x01"

MALFORMED = {
    # >= 12 bytes: answered FORMERR
    "header_only": header(0x1111),
    "cut_in_label": header(0x2222) + b"\x03www\x04te",
    "no_qtype": header(0x3333) + b"\x03www\x04test\x00\x00",
    "label_past_end": header(0x4444) + b"\x3fwww\x00\x00\x01\x00\x01",
    "pointer_loop": header(0x5555) + b"\xc0\x0c\x00\x01\x00\x01",
    "counts_lie": header(0x6666, an=3, ar=2) + QUESTION_WWW,
}
SHORT = {
    # < 12 bytes: dropped
    "three_bytes": b"\x01\x02\x03",
    "eleven_bytes": header(0x7777)[:11],
}


def exchange_then_normal(port, bad, timeout=5.0):
    """Send `bad`, then a normal query, from one socket. Returns (replies to
    bad, normal (qwire, rwire)). Replies are collected until the normal
    answer has arrived, then for 0.2 s more."""
    good = helpers.make_query("www.test.", "A", edns=1232)
    while good.id == int.from_bytes(bad[:2], "big"):
        good = helpers.make_query("www.test.", "A", edns=1232)
    gw = good.to_wire()
    others = []
    normal = None
    with helpers.udp_socket() as s:
        s.sendto(bad, ("127.0.0.1", port))
        s.sendto(gw, ("127.0.0.1", port))
        s.settimeout(timeout)
        while normal is None:
            data, _ = s.recvfrom(65535)
            if data[:2] == gw[:2] and len(data) > 12 and helpers.question_bytes(data) == helpers.question_bytes(gw):
                normal = data
            else:
                others.append(data)
        while select.select([s], [], [], 0.2)[0]:
            others.append(s.recvfrom(65535)[0])
    return others, (gw, normal)


def assert_normal(qw, rw):
    assert not helpers.check_answer(qw, rw, {helpers.WWW_A})


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_gets_formerr(knotd, dnsmux, name):
    d = dnsmux(upstream=knotd.url("tcp"))
    bad = MALFORMED[name]
    replies, normal = exchange_then_normal(d.port, bad)
    assert_normal(*normal)
    assert len(replies) == 1, "expected one FORMERR, got %d replies" % len(replies)
    r = replies[0]
    assert r[:2] == bad[:2], "FORMERR with another ID"
    assert r[2] & 0x80, "QR not set"
    assert helpers.rcode_of(r) == dns.rcode.FORMERR
    st = d.stats()
    assert st["malformed"] == 1, st
    assert st["formerr"] == 1, st


@pytest.mark.parametrize("name", sorted(SHORT))
def test_shorter_than_header_dropped(knotd, dnsmux, name):
    d = dnsmux(upstream=knotd.url("tcp"))
    replies, normal = exchange_then_normal(d.port, SHORT[name])
    assert_normal(*normal)
    assert replies == []
    assert d.stats()["malformed"] == 1


def test_qr_set_dropped(knotd, dnsmux):
    """A response (QR=1) sent to the listener is dropped, never answered
    (no reflection loops)."""
    d = dnsmux(upstream=knotd.url("tcp"))
    resp = dns.message.make_response(helpers.make_query("www.test.", "A"))
    replies, normal = exchange_then_normal(d.port, resp.to_wire())
    assert_normal(*normal)
    assert replies == []
    st = d.stats()
    assert st["dropped_qr"] == 1, st
    assert st["formerr"] == 0 and st["notimp"] == 0, st


@pytest.mark.parametrize("opcode", [dns.opcode.IQUERY, dns.opcode.STATUS, 3, dns.opcode.NOTIFY,
                                    dns.opcode.UPDATE, 6], ids=["IQUERY", "STATUS", "3", "NOTIFY", "UPDATE", "6"])
def test_other_opcodes_notimp(knotd, dnsmux, opcode):
    d = dnsmux(upstream=knotd.url("tcp"))
    q = helpers.make_query("test.", "SOA")
    w = bytearray(q.to_wire())
    w[2] = (w[2] & 0x87) | (int(opcode) << 3)
    w[3] |= 0x30  # AD and CD asked: an opcode not implemented echoes neither (as knotd answers it)
    replies, normal = exchange_then_normal(d.port, bytes(w))
    assert_normal(*normal)
    assert len(replies) == 1, replies
    r = replies[0]
    assert r[:2] == w[:2]
    assert r[2] & 0x80
    assert helpers.rcode_of(r) == dns.rcode.NOTIMP
    assert (r[2] >> 3) & 0x0F == int(opcode), "opcode not echoed"
    assert r[2] & 0x01, "RD not echoed"
    assert not r[3] & 0xB0, "NOTIMP with RA, AD or CD set: %02x" % r[3]
    assert d.stats()["notimp"] == 1


@pytest.mark.parametrize("qdcount", [0, 2])
def test_question_count_not_one_formerr(knotd, dnsmux, qdcount):
    d = dnsmux(upstream=knotd.url("tcp"))
    bad = header(0x4242, qd=qdcount) + QUESTION_WWW * qdcount
    replies, normal = exchange_then_normal(d.port, bad)
    assert_normal(*normal)
    assert len(replies) == 1, replies
    assert replies[0][:2] == bad[:2]
    assert helpers.rcode_of(replies[0]) == dns.rcode.FORMERR
    assert d.stats()["formerr"] == 1


def test_checks_over_tcp_keep_the_connection(knotd, dnsmux):
    """Over TCP: NOTIMP and FORMERR are answered on the connection, which
    then still serves a normal query."""
    d = dnsmux(upstream=knotd.url("tcp"))
    notify = bytearray(helpers.make_query("test.", "SOA").to_wire())
    notify[2] = (notify[2] & 0x87) | (dns.opcode.NOTIFY << 3)
    two_q = header(0x4343, qd=2) + QUESTION_WWW * 2
    good = helpers.make_query("www.test.", "A").to_wire()
    with helpers.tcp_connect(d.port) as s:
        s.sendall(helpers.frame(bytes(notify)))
        r = helpers.recv_frame(s)
        assert r[:2] == notify[:2] and helpers.rcode_of(r) == dns.rcode.NOTIMP
        s.sendall(helpers.frame(two_q))
        r = helpers.recv_frame(s)
        assert r[:2] == two_q[:2] and helpers.rcode_of(r) == dns.rcode.FORMERR
        s.sendall(helpers.frame(good))
        assert_normal(good, helpers.recv_frame(s))


def test_many_bad_then_load(knotd, dnsmux):
    """A burst of every kind of bad message, then a normal load: all normal
    queries answered, every bad one counted."""
    d = dnsmux(upstream=knotd.url("tcp"))
    resp = dns.message.make_response(helpers.make_query("www.test.", "A")).to_wire()
    with helpers.udp_socket() as s:
        for _ in range(20):
            for w in list(MALFORMED.values()) + list(SHORT.values()) + [resp]:
                s.sendto(w, ("127.0.0.1", d.port))
    results = helpers.run_udp_load(d.port, [("n%d.test." % i, "A") for i in range(200)], clients=20)
    assert not helpers.summarize(results)
    st = d.wait_stats(lambda s: s["malformed"] >= 20 * (len(MALFORMED) + len(SHORT)), timeout=5.0)
    assert st["malformed"] == 20 * (len(MALFORMED) + len(SHORT)), st
    assert st["dropped_qr"] == 20, st
    assert d.alive()

