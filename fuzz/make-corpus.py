#!/usr/bin/python3
"""make-corpus.py -- write the seed corpora of the fuzz targets (fuzz/README.md)
from the kind of traffic tests/integration sends: queries with and without
EDNS, with ECS, cookie, padding and keepalive options, TSIG-signed ones, TCP
streams of several framed queries, typical answers; plus the malformed
inputs found so far (an attacker's probes, the fuzzers' findings), so each
stays a regression seed.

    /usr/bin/python3 fuzz/make-corpus.py [fuzz/corpus]

Needs dnspython (python3-dnspython). Deterministic: the same files every run.
Each target's input starts with control bytes (see the header comment of
fuzz/<target>.c); the layouts are built by the *_input functions below."""

import os
import random
import struct
import sys

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.tsigkeyring

OPT_KEEPALIVE, OPT_PADDING, OPT_PRIVATE = 11, 12, 65001
rng = random.Random(7828)


def query(name, rdtype="A", edns=None, options=(), qid=0x1234, do=False, rd=True):
    q = dns.message.make_query(name, rdtype, use_edns=False if edns is None else 0,
                               payload=edns or 1232, options=list(options), want_dnssec=do)
    q.id = qid
    if not rd:
        q.flags &= ~dns.flags.RD
    return q.to_wire()


def opt(code, data):
    return dns.edns.GenericOption(code, data)


def ecs(addr, prefix):
    return dns.edns.ECSOption(addr, prefix)


def frame(wire):
    return struct.pack("!H", len(wire)) + wire


def client_queries():
    """The queries a stub sends (name -> wire)."""
    cookie = opt(10, bytes(range(8)))
    out = {
        "plain-a": query("www.test.", "A"),
        "plain-aaaa-no-rd": query("www.test.", "AAAA", rd=False),
        "edns-1232": query("www.test.", "A", edns=1232),
        "edns-4096-do": query("example.com.", "DNSKEY", edns=4096, do=True),
        "edns-100": query("www.test.", "A", edns=100),
        "edns-ecs-v4": query("www.test.", "A", edns=1232, options=[ecs("192.0.2.0", 24)]),
        "edns-ecs-v6": query("www.test.", "AAAA", edns=1232, options=[ecs("2001:db8::", 56)]),
        "edns-cookie": query("www.test.", "A", edns=1232, options=[cookie]),
        "edns-cookie-server": query("www.test.", "A", edns=1232, options=[opt(10, bytes(range(24)))]),
        "edns-padding": query("www.test.", "A", edns=1232, options=[opt(OPT_PADDING, bytes(77))]),
        "edns-keepalive": query("www.test.", "A", edns=1232, options=[opt(OPT_KEEPALIVE, b"")]),
        "edns-all": query("www.test.", "TXT", edns=1232, do=True,
                          options=[opt(OPT_KEEPALIVE, b""), ecs("198.51.100.0", 22), cookie,
                                   opt(OPT_PADDING, bytes(31))]),
        "mixed-case": query("wWw.TeSt.", "A", edns=1232),
        "long-name": query(".".join(["a" * 63] * 3 + ["b" * 61]) + ".", "A", edns=1232),
        "root-ns": query(".", "NS"),
        "any": query("test.", "ANY", edns=1232),
        "mx": query("test.", "MX"),
        "soa": query("test.", "SOA", edns=1232),
        "chaos-version": dns.message.make_query("version.bind.", "TXT", "CH").to_wire(),
        "axfr": query("test.", "AXFR"),
        "notify": notify(),
        "answer-qr": dns.message.make_response(dns.message.from_wire(query("www.test.", "A"))).to_wire(),
        "short": b"\x12\x34\x01",
        "header-only": struct.pack("!HHHHHH", 0x1111, 0x0100, 1, 0, 0, 0),
        "two-questions": struct.pack("!HHHHHH", 1, 0x0100, 2, 0, 0, 0) + b"\x03www\x04test\x00\x00\x01\x00\x01" * 2,
        "tsig": tsig_query(),
        "tsig-edns": tsig_query(edns=1232),
        "answer-section": query_with_record(),
        # the attacker's probes (issue 7): an option past RDLENGTH; RDLENGTH 1
        "attacker-opt-past-rdlength": bytes.fromhex(
            "abcd0100000100000000000103777777047465737400000100010000" "2904d0000000000004000a4018"),
        "attacker-opt-rdlength-1": bytes.fromhex(
            "abcd010000010000000000010377777704746573740000010001" "00002904d000000000000100"),
        "smuggling-65534": smuggling(65534),
        "smuggling-65531": smuggling(65531),
    }
    out.update(findings_query())
    return out


def notify():
    q = dns.message.make_query("test.", "SOA")
    q.set_opcode(dns.opcode.NOTIFY)
    return q.to_wire()


def tsig_query(edns=None):
    q = dns.message.make_query("www.test.", "A", use_edns=False if edns is None else 0, payload=edns or 1232)
    q.id = 0x4242
    q.use_tsig(dns.tsigkeyring.from_text({"key.": "c2VjcmV0c2VjcmV0c2VjcmV0"}), keyname="key.",
               algorithm=dns.tsig.HMAC_SHA256)
    return q.to_wire()


def query_with_record():
    """An odd client's query with an answer-section record (compressed owner)."""
    q = dns.message.make_query("www.test.", "A", use_edns=0)
    q.answer.append(dns.rrset.from_text("www.test.", 60, "IN", "A", "192.0.2.1"))
    return q.to_wire()


def smuggling(size):
    """A query of size bytes whose EDNS private option holds a framed query:
    a circuit that lets the 16-bit length wrap sends that inner query as a
    message of its own (the case the 4-byte keepalive option made at 65,534)."""
    inner = frame(query("smuggled.test.", "A", qid=0x5151))
    head = query("www.test.", "A", edns=1232)  # its OPT ends it, RDLENGTH 0
    body = size - len(head) - 4
    data = inner + bytes(body - len(inner))
    # by hand: dnspython will not render a message this close to 65,535 bytes
    return head[:-2] + struct.pack("!HHH", 4 + body, OPT_PRIVATE, body) + data


def findings_query():
    """Inputs the fuzzers found (fuzz/README.md, "Findings"), as messages."""
    hdr = struct.pack("!HHHHHH", 0x002D, 0x0000, 1, 0, 0, 1)
    return {
        # an additional record owned by a pointer to offset 0: the ID byte 0x00
        "finding-id-pointer": hdr + b"\x00\x00\x22\x00\x01" + b"\xc0\x00\x29\x00\x00\x00\x12\x00\x00\x00\x00\x00",
        # an NS record whose RDATA points at offset 0: ID 0x0141 and RD read as 1 'A' 1 0x00 0
        "finding-id-pointer-rdata": struct.pack("!HHHHHH", 0x0141, 0x0100, 1, 0, 1, 0)
        + b"\x03www\x04test\x00\x00\x01\x00\x01" + b"\x04test\x00\x00\x02\x00\x01\x00\x00\x00\x3c\x00\x02\xc0\x00",
        # an OPT of UDP size 1 and no options, which libknot rejects
        "finding-opt-udp-1": hdr + b"\x00\x00\x22\x00\x01" + b"\x00\x00\x29\x00\x01\x00\x00\x00\x00\x00\x00",
        # an answer-section record owned by a pointer to ARCOUNT's low byte (0: the root)
        "finding-arcount-pointer": struct.pack("!HHHHHH", 0x0707, 0x0100, 1, 1, 0, 0)
        + b"\x03www\x04test\x00\x00\x01\x00\x01" + b"\xc0\x0b\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xc0\x00\x02\x01",
    }


# ---- fuzz_query: [flags][upstream ID][upstream timeout][padding length] + message

QUERY_CTL = [
    bytes([0x00, 0xab, 0xcd, 0, 0, 0]),        # no keepalive, no padding (TCP, asked already)
    bytes([0x01, 0x12, 0x34, 0x00, 0x64, 0]),  # keepalive asked; no timeout given back
    bytes([0x05, 0xbe, 0xef, 0x01, 0x2c, 0]),  # keepalive asked, 30 s given
    bytes([0x0b, 0x00, 0x01, 0, 0, 0x40]),     # TLS: padding, answer padded
    bytes([0x1f, 0xff, 0xff, 0x00, 0x0a, 0x80]),  # TLS, first query: both, answer padded first
]


def query_inputs():
    out = {}
    for name, wire in client_queries().items():
        if name.startswith(("finding", "edns-all")):
            ctls = QUERY_CTL  # every combination of keepalive and padding
        elif name == "smuggling-65534":
            ctls = [QUERY_CTL[1], QUERY_CTL[3], QUERY_CTL[4]]  # the ones that grow it (64 KiB each)
        else:
            ctls = [rng.choice(QUERY_CTL)]
        for i, ctl in enumerate(ctls):
            out["%s-%d" % (name, i)] = ctl + wire
    return out


# ---- fuzz_tcp_framing: [8-byte seed of the read sizes] + stream

def tcp_inputs():
    qs = client_queries()
    plain = [qs[k] for k in ("plain-a", "edns-1232", "edns-cookie", "mixed-case", "tsig", "edns-all")]
    streams = {
        "one": frame(qs["plain-a"]),
        "pipelined-6": b"".join(frame(w) for w in plain),
        "pipelined-then-partial": b"".join(frame(w) for w in plain) + frame(qs["any"])[:9],
        "split-length": frame(qs["soa"]) + b"\x00",
        "zero-length-frame": b"\x00\x00" + frame(qs["plain-a"]),
        "garbage-between": frame(qs["plain-a"]) + frame(b"\xff" * 40) + frame(qs["edns-1232"]),
        "attacker-probes": frame(qs["attacker-opt-past-rdlength"]) + frame(qs["attacker-opt-rdlength-1"])
        + frame(qs["plain-a"]),
        # past the 16 KiB at which frontend/tcp.c gives a grown buffer back;
        # not 64 KiB: the target's cost grows with the input, and libFuzzer
        # grows inputs to the largest seed
        "large-20000": frame(smuggling(20000)) + frame(qs["plain-a"]),
    }
    return {name: struct.pack("!Q", rng.getrandbits(64)) + s for name, s in streams.items()}


# ---- fuzz_upstream_stream: [queries - 1][8-byte seed] + query records + stream

def up_record(flags, client_id, up_id, qtype, max_answer, name):
    """One query record; up_id is what rnd_u16 makes of the two bytes (little-endian)."""
    text = name.rstrip(".").encode()
    return (bytes([flags]) + struct.pack("!H", client_id) + struct.pack("<H", up_id)
            + struct.pack("!HH", qtype, max_answer) + bytes([len(text)]) + text)


def up_answer(name, qtype, up_id, n_a=1, edns=None, options=(), rcode=0):
    """An upstream's answer: the question echoed, n_a records, an OPT with options."""
    q = dns.message.make_query(name, qtype, use_edns=False if edns is None else 0, payload=edns or 1232)
    r = dns.message.make_response(q)
    r.id = up_id
    r.set_rcode(rcode)
    if edns is not None:
        r.use_edns(0, payload=edns, options=list(options))
    rdtype = dns.rdatatype.from_text(qtype)
    if n_a and rdtype == dns.rdatatype.A:
        r.answer.append(dns.rrset.from_text_list(name, 300, "IN", "A",
                                                 ["192.0.%d.%d" % (i // 250, i % 250 + 1) for i in range(n_a)]))
    elif n_a and rdtype == dns.rdatatype.TXT:
        r.answer.append(dns.rrset.from_text_list(name, 300, "IN", "TXT", ['"t%03d %s"' % (i, "x" * 200)
                                                                          for i in range(n_a)]))
    return r.to_wire(max_size=65535)


def upstream_inputs():
    A, TXT = 1, 16
    ka = opt(OPT_KEEPALIVE, struct.pack("!H", 300))
    pad = opt(OPT_PADDING, bytes(100))
    cases = {}
    # three queries over TCP (the first asks keepalive), answered out of order
    recs = [up_record(0x09, 0x0101, 0x1111, A, 1232, "www.test"),
            up_record(0x01, 0x0202, 0x2222, A, 512, "a.test"),
            up_record(0x00, 0x0303, 0x3333, TXT, 4096, "txt.test")]
    stream = (frame(up_answer("a.test.", "A", 0x2222, 2, edns=1232)) + frame(up_answer("txt.test.", "TXT", 0x3333, 3))
              + frame(up_answer("www.test.", "A", 0x1111, 1, edns=1232, options=[ka])))
    cases["tcp-out-of-order"] = (2, recs, stream)
    # over TLS: answers padded, one with the question in another case (0x20)
    recs = [up_record(0x0d, 0x0a0a, 0x0a0a, A, 1232, "WwW.TeSt"),
            up_record(0x05, 0x0b0b, 0x0b0b, A, 1232, "mail.test")]
    stream = (frame(up_answer("www.test.", "A", 0x0a0a, 1, edns=1232, options=[ka, pad]))
              + frame(up_answer("mail.test.", "A", 0x0b0b, 1, edns=1232, options=[pad])))
    cases["tls-padded-0x20"] = (1, recs, stream)
    # a query without EDNS over TLS gets an OPT of ours; the answer carries it back
    recs = [up_record(0x04, 0x0c0c, 0x0c0c, A, 512, "noedns.test")]
    stream = frame(up_answer("noedns.test.", "A", 0x0c0c, 1, edns=1232, options=[pad]))
    cases["tls-added-opt"] = (0, recs, stream)
    # mismatches: wrong ID, wrong question, QR=0, a late answer (given up), a duplicate
    recs = [up_record(0x01, 0x0d0d, 0x0d0d, A, 1232, "www.test"),
            up_record(0x11, 0x0e0e, 0x0e0e, A, 1232, "late.test")]
    good = up_answer("www.test.", "A", 0x0d0d, 1, edns=1232)
    qr0 = bytearray(good)
    qr0[2] &= 0x7f
    stream = (frame(up_answer("www.test.", "A", 0x0d0e, 1, edns=1232)) + frame(up_answer("www.tesu.", "A", 0x0d0d, 1))
              + frame(bytes(qr0)) + frame(up_answer("late.test.", "A", 0x0e0e, 1)) + frame(good) + frame(good))
    cases["mismatched-late-duplicate"] = (1, recs, stream)
    # a large answer for a 512-byte client: truncated, TC=1
    recs = [up_record(0x01, 0x0f0f, 0x0f0f, A, 512, "big.test")]
    stream = frame(up_answer("big.test.", "A", 0x0f0f, 60, edns=1232))
    cases["truncate-for-512"] = (0, recs, stream)
    # garbage, a short message, a partial frame at the end
    recs = [up_record(0x00, 0x1010, 0x1010, A, 1232, "www.test")]
    ans = up_answer("www.test.", "A", 0x1010, 1)
    stream = frame(b"\x10\x10") + frame(ans[:20]) + frame(ans) + frame(ans)[:10]
    cases["garbage-and-partial"] = (0, recs, stream)
    # two queries whose randomness collides: the second draws again (zeros)
    recs = [up_record(0x00, 0x1111, 0x4444, A, 1232, "one.test"),
            up_record(0x00, 0x2222, 0x4444, A, 1232, "two.test")]
    stream = frame(up_answer("two.test.", "A", 0x0000, 1)) + frame(up_answer("one.test.", "A", 0x4444, 1))
    cases["id-collision"] = (1, recs, stream)
    out = {}
    for name, (nq_minus_1, recs, stream) in cases.items():
        head = bytes([nq_minus_1]) + struct.pack("!Q", rng.getrandbits(64))
        out[name] = head + b"".join(recs) + stream
    return out


# ---- fuzz_udp_answer: [max][reply buffer / 2][rcode] + message

def udp_inputs():
    answers = {
        "a-1": up_answer("www.test.", "A", 0x1234, 1),
        "a-40-edns": up_answer("www.test.", "A", 0x1234, 40, edns=1232),
        "txt-20-edns": up_answer("txt.test.", "TXT", 0x1234, 20, edns=4096),
        "nxdomain": up_answer("nx.test.", "A", 0x1234, 0, rcode=dns.rcode.NXDOMAIN),
        "padded": up_answer("www.test.", "A", 0x1234, 3, edns=1232, options=[opt(OPT_PADDING, bytes(300))]),
        "no-question": struct.pack("!HHHHHH", 0x1234, 0x8180, 0, 0, 0, 0),
        "cut": up_answer("www.test.", "A", 0x1234, 40, edns=1232)[:300],
    }
    sizes = [512, 1232, 512, 4096, 600, 512, 512]
    out = {}
    for (name, wire), max_answer in zip(answers.items(), sizes):
        ctl = struct.pack("!H", max_answer - 512) + bytes([rng.randrange(256), rng.choice([2, 3, 4, 5])])
        out[name] = ctl + wire
    for name, wire in list(client_queries().items())[:8]:  # queries too: error replies to them
        out["query-" + name] = struct.pack("!H", 0) + bytes([135, 2]) + wire
    return out


def write(root, target, files):
    d = os.path.join(root, target)
    os.makedirs(d, exist_ok=True)
    for name, data in sorted(files.items()):
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    print("%s: %d seeds, %d bytes" % (target, len(files), sum(len(v) for v in files.values())))


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
    write(root, "fuzz_query", query_inputs())
    write(root, "fuzz_tcp_framing", tcp_inputs())
    write(root, "fuzz_upstream_stream", upstream_inputs())
    write(root, "fuzz_udp_answer", udp_inputs())


if __name__ == "__main__":
    main()
