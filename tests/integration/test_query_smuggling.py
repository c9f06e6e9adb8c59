"""A client's query reaches the upstream as exactly one message, whatever
its length: nothing dnsmux adds may push a frame past 65,535 bytes.

Guards fault 2: the RFC 7828 keepalive option (4 bytes) went into the
first EDNS query on each new circuit without a length check, so a query of
65,532-65,535 bytes got a 2-byte length prefix that wrapped (65,534 ->
`00 02`). The upstream then cut the rest of it into messages of the
sender's choosing: here a query with an ID and question picked by the
attacker, and last a `ff ff` prefix that swallows the next queries of
other clients. The probe is checked first against the old framing
(simulated), so the test is known to send a real attack. It must be the
first query on a fresh circuit (a fresh dnsmux), sent over TCP; the
upstream is the scripted server, over tcp:// and over DoT (padding adds
bytes there too)."""

import struct

import dns.edns
import dns.message
import pytest

import helpers
from conftest import MARGIN, tls_url
from fault_server import answer_a, result_problems

ATTACKER_NAME = "attacker.smuggle.example."
HIDDEN_NAME = "hidden.smuggle.example."
HIDDEN_ID = 0x6666
PRIVATE_OPTION = 65001  # RFC 6891 9: local/experimental use
KEEPALIVE = b"\x00\x0b\x00\x00"  # what the old code appended: option 11, empty
# Header flags per wrapped prefix: the upstream reads the rest as frames,
# and the flags field (prefix 2) or its low byte (prefix 3) is the length
# of the second frame. RD (0x0100) -> 256 bytes; RD+CD (0x0110) -> 4096.
FLAGS_FOR_WRAP = {2: 0x0100, 3: 0x0110}


def hidden_query():
    q = dns.message.make_query(HIDDEN_NAME, "A", use_edns=False)
    q.id = HIDDEN_ID
    return q.to_wire()


def split_frames(stream):
    """What a server reading 2-byte-framed messages makes of these bytes:
    (whole messages, bytes still wanted by the last, unfinished one)."""
    out, p = [], 0
    while p + 2 <= len(stream):
        (ln,) = struct.unpack("!H", stream[p:p + 2])
        if p + 2 + ln > len(stream):
            return out, p + 2 + ln - len(stream)
        out.append(stream[p + 2:p + 2 + ln])
        p += 2 + ln
    return out, 0


def smuggling_query(length):
    """A legal query of `length` bytes (65,532-65,535) for ATTACKER_NAME
    whose one EDNS option, a private one, holds in its data: a framed query
    for HIDDEN_NAME, then a filler frame, and last `ff ff`, laid out for
    where a wrapped prefix makes the upstream look for frames."""
    wrap = (length + len(KEEPALIVE)) & 0xFFFF
    flags = FLAGS_FOR_WRAP.get(wrap, 0x0100)  # (prefix 0 or 1: the random ID decides; no aim)
    head = struct.pack("!HHHHHH", 0x5353, flags, 1, 0, 0, 1) + attacker_question()
    data_at = len(head) + 11 + 4  # past the OPT record's fixed part and the option's code and length
    # where the upstream looks for its third frame, past frames 1 and 2
    frame3_at = 5 + ((flags & 0xFF) << 8) if wrap == 3 else 4 + flags
    hidden = helpers.frame(hidden_query())
    filler_at = frame3_at + len(hidden)
    filler = helpers.frame(b"\x00" * (length - 2 - filler_at - 2))
    data = b"\x00" * (frame3_at - data_at) + hidden + filler + b"\xff\xff"
    opt_rr = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 4 + len(data)) + struct.pack("!HH", PRIVATE_OPTION,
                                                                                        len(data))
    wire = head + opt_rr + data
    assert len(wire) == length
    return wire


def attacker_question():
    return dns.message.make_query(ATTACKER_NAME, "A").question[0].name.to_wire() + struct.pack("!HH", 1, 1)


def old_framing(wire, up_id=0x1234):
    """The bytes the old code put on the circuit for this query: its ID
    rewritten, the keepalive option appended, a 16-bit length that wraps."""
    m = bytearray(struct.pack("!H", up_id) + wire[2:])
    rdlen_at = 12 + len(attacker_question()) + 9  # the OPT record's RDLENGTH
    (rdlen,) = struct.unpack("!H", m[rdlen_at:rdlen_at + 2])
    m[rdlen_at:rdlen_at + 2] = struct.pack("!H", rdlen + len(KEEPALIVE))
    m += KEEPALIVE
    return struct.pack("!H", len(m) & 0xFFFF) + bytes(m)


def assert_probe_smuggles(wire):
    """The test's premise: the probe parses as one legal query; framed as
    the old code did, an upstream reads it as several messages and, where
    the prefix wraps to 2 or 3, finds the hidden query among them and then
    waits for 65,535 more bytes -- other clients' queries."""
    msg = dns.message.from_wire(wire)
    assert msg.question[0].name.to_text() == ATTACKER_NAME
    frames, wanted = split_frames(old_framing(wire))
    assert frames[:1] != [wire[2:]]
    if (len(wire) + len(KEEPALIVE)) & 0xFFFF in FLAGS_FOR_WRAP:
        assert hidden_query() in frames
        assert wanted == 65535 - len(KEEPALIVE)


def check_upstream_saw(srv, attacker_wire, victims):
    """Problems with what the upstream received: exactly one whole message
    per query sent, each parses, none is the hidden query, the attacker's
    arrived with its option data intact."""
    problems = []
    got = srv.stream_queries()
    names = sorted(m.qname.lower() for m in got if m.qname)
    unparsed = [m.length for m in got if m.msg is None]
    if unparsed:
        problems.append("%d messages did not parse (lengths %s)" % (len(unparsed), unparsed[:10]))
    if HIDDEN_NAME in names:
        problems.append("the hidden query reached the upstream")
    if names != sorted([ATTACKER_NAME] + victims):
        problems.append("received %d messages for %d queries: %s" % (len(got), 1 + len(victims), names[:5]))
    sent_opt = dns.message.from_wire(attacker_wire).options
    for m in got:
        if m.qname and m.qname.lower() == ATTACKER_NAME:
            opts = [o for o in m.msg.options if o.otype == PRIVATE_OPTION]
            if [o.data for o in opts] != [o.data for o in sent_opt if o.otype == PRIVATE_OPTION]:
                problems.append("the attacker's option was changed on the way")
    return problems


@pytest.mark.parametrize("length", [65532, 65533, 65534, 65535])
@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_longest_queries_reach_upstream_whole(fault_server, tls_fault_server, pki, dnsmux, transport, length):
    """The probe as the first query on a fresh circuit (over TCP from the
    client), then 20 other clients' queries: the upstream receives exactly
    one message per query, each one parses, the hidden query is not among
    them, and everyone gets the right answer. Old binary: the upstream got
    fragments (2-byte, 256-byte, ... messages that do not parse), the
    hidden query with ID 0x6666, and the victims' queries vanished into
    the last frame."""
    if transport == "tls":
        srv = tls_fault_server()
        d = dnsmux("--ca-file", pki.ca_file, upstream=tls_url(srv.host, srv.port))
    else:
        srv = fault_server()
        d = dnsmux(upstream=srv.url("tcp"))
    wire = smuggling_query(length)
    assert_probe_smuggles(wire)
    victims = ["v%d.smuggle.example." % i for i in range(20)]
    with helpers.tcp_connect(d.port, timeout=5.0) as s:
        s.sendall(helpers.frame(wire))
        assert srv.wait_received(1, timeout=5.0) >= 1, "nothing reached the upstream"
        results = helpers.run_udp_load(d.port, [(n, "A") for n in victims], clients=10,
                                       timeout=2.0 + MARGIN + 1.0, expect=False)
        attacker_answer = helpers.recv_frame(s, 2.0 + MARGIN + 1.0)
    problems = check_upstream_saw(srv, wire, victims) + result_problems(results)
    problems += ["attacker: %s" % p for p in helpers.check_answer(wire, attacker_answer, {answer_a(ATTACKER_NAME)})]
    assert not problems, (problems[:10], d.stats())
