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

import base64
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

# ---- HTTP/2 by hand (the DoH targets): frames, HPACK literals

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 1, 1, 4, 8, 32


def h2frame(ftype, flags, sid, payload=b""):
    return struct.pack("!I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack("!I", sid) + payload


def hpack_int(value, bits, first=0):
    top = (1 << bits) - 1
    if value < top:
        return bytes([first | value])
    out, value = [first | top], value - top
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    return bytes(out + [value])


def hpack(fields, index=False):
    """A header block of literals (new names; incremental indexing when
    index, which a later block may then name by index 62 and up)."""
    out = b""
    for name, value in fields:
        name, value = name.encode() if isinstance(name, str) else name, value.encode() if isinstance(value, str) else value
        out += b"\x40" if index else b"\x00"  # a literal with a new name (RFC 7541 6.2.1, 6.2.2)
        out += hpack_int(len(name), 7) + name + hpack_int(len(value), 7) + value
    return out


def h2_settings(*pairs):
    return h2frame(SETTINGS, 0, 0, b"".join(struct.pack("!HI", k, v) for k, v in pairs))


def request(method, path, extra=(), scheme="https"):
    return [(":method", method), (":scheme", scheme), (":authority", "dns.test"), (":path", path)] + list(extra)


CT_DNS = ("content-type", "application/dns-message")


def b64url(wire):
    return base64.urlsafe_b64encode(wire).rstrip(b"=").decode()


# ---- fuzz_doh: [flags][pipeline cap - 1][8-byte seed] + the client's bytes

DOH_H2, DOH_OWN_PREFACE, DOH_TLS, DOH_ABORT, DOH_PROXY = 1, 2, 4, 8, 16


def h1(method, path, headers=(), body=b"", version="1.1"):
    head = "%s %s HTTP/%s\r\nHost: dns.test\r\n" % (method, path, version)
    head += "".join("%s: %s\r\n" % kv for kv in headers)
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in headers):
        head += "Content-Length: %d\r\n" % len(body)
    return head.encode() + b"\r\n" + body


def chunked(body, size):
    return b"".join(b"%x\r\n" % len(body[i:i + size]) + body[i:i + size] + b"\r\n"
                    for i in range(0, len(body), size)) + b"0\r\n\r\n"


def doh_h1_streams(qs):
    w, e = qs["plain-a"], qs["edns-1232"]
    ct = [("Content-Type", "application/dns-message")]
    return {
        "get-post-resolve": h1("GET", "/dns-query?dns=" + b64url(w)) + h1("POST", "/dns-query", ct, e)
        + h1("GET", "/nothere") + h1("GET", "/resolve?name=www.test&type=AAAA&do=1&cd=0", [("Connection", "close")]),
        "resolve-ct-wire": h1("GET", "/resolve?name=www%2Etest.&type=28&ct=application/dns-message"),
        "http10-close": h1("POST", "/dns-query", ct + [("Connection", "close")], w, version="1.0"),
        "http10-keepalive": h1("GET", "/dns-query?dns=" + b64url(w), [("Connection", "keep-alive")], version="1.0") * 2,
        "chunked-post": h1("POST", "/dns-query", ct + [("Transfer-Encoding", "chunked")], chunked(e, 7)),
        "head-and-others": h1("HEAD", "/dns-query") + h1("PUT", "/dns-query", ct, w) + h1("DELETE", "/resolve"),
        "bad-requests": h1("POST", "/dns-query", [("Content-Type", "text/plain")], w)
        + h1("GET", "/dns-query?dns=%%%%") + h1("GET", "/dns-query?dns=AAAA") + h1("GET", "/dns-query")
        + h1("POST", "/dns-query", ct, b"\x00" * 5) + h1("GET", "/resolve?type=A")
        + h1("GET", "/resolve?name=www.test&type=NOSUCHTYPE") + h1("GET", "/dns-query?dns=" + b64url(w) + "%3D")
        + h1("POST", "/dns-query", ct + [("Content-Length", "70000")]),
        "pipelined-6": b"".join(h1("GET", "/dns-query?dns=" + b64url(qs[k]))
                                for k in ("plain-a", "edns-cookie", "mixed-case", "tsig", "edns-all", "any")),
        "content-types": h1("POST", "/dns-query", [("Content-Type", "Application/DNS-Message; charset=x")], w)
        + h1("POST", "/dns-query", [("Content-Type", "application/dns-message\t")], w)
        + h1("POST", "/dns-query", [("content-type", "application/dns-messagex")], w),
        "forwarded": h1("GET", "/dns-query?dns=" + b64url(w), [("X-Forwarded-For", "198.51.100.7, 203.0.113.9")])
        + h1("GET", "/dns-query?dns=" + b64url(e), [("Forwarded", 'for="[2001:db8::1]:4711";proto=https')]),
        "upgrade": h1("GET", "/dns-query?dns=" + b64url(w), [("Connection", "Upgrade"), ("Upgrade", "h2c")])
        + h1("GET", "/nothere"),
        "long-url": h1("GET", "/dns-query?dns=" + "A" * 9000),
        "garbage-after-close": h1("GET", "/dns-query?dns=" + b64url(w), [("Connection", "close")]) + b"NOT HTTP\r\n\r\n",
    }


def doh_h2_streams(qs):
    w, e = qs["plain-a"], qs["edns-1232"]
    settings = h2_settings()
    get = lambda sid, path, flags=END_STREAM | END_HEADERS, extra=(): h2frame(HEADERS, flags, sid, hpack(request("GET", path, extra)))
    post = lambda sid, body: h2frame(HEADERS, END_HEADERS, sid, hpack(request("POST", "/dns-query", [CT_DNS]))) \
        + h2frame(DATA, END_STREAM, sid, body)
    block = hpack(request("POST", "/dns-query", [CT_DNS, ("content-length", str(len(e)))]))
    return {
        "get-post-404-head": settings + get(1, "/dns-query?dns=" + b64url(w)) + post(3, e) + get(5, "/x")
        + h2frame(HEADERS, END_STREAM | END_HEADERS, 7, hpack(request("HEAD", "/dns-query"))),
        "resolve": settings + get(1, "/resolve?name=www.test&type=AAAA") + get(3, "/resolve?name=..&type=A"),
        "continuation": settings + h2frame(HEADERS, 0, 1, block[:20]) + h2frame(CONTINUATION, 0, 1, block[20:41])
        + h2frame(CONTINUATION, END_HEADERS, 1, block[41:]) + h2frame(DATA, END_STREAM, 1, e),
        "padded-priority": settings + h2frame(HEADERS, END_HEADERS | PADDED | PRIORITY_FLAG, 1,
                                              b"\x03" + struct.pack("!IB", 0, 15)
                                              + hpack(request("POST", "/dns-query", [CT_DNS])) + b"\x00" * 3)
        + h2frame(DATA, PADDED, 1, b"\x02" + e[:10] + b"\x00\x00") + h2frame(DATA, END_STREAM, 1, e[10:]),
        "many-streams": settings + b"".join(get(2 * i + 1, "/dns-query?dns=" + b64url(qs["plain-a"][:2] + bytes([i])
                                                                                 + qs["plain-a"][3:])) for i in range(20)),
        "client-reset-ping-window": settings + get(1, "/dns-query?dns=" + b64url(w))
        + h2frame(RST_STREAM, 0, 1, struct.pack("!I", 8)) + h2frame(PING, 0, 0, b"12345678")
        + h2frame(WINDOW_UPDATE, 0, 0, struct.pack("!I", 1000)) + post(3, e) + h2frame(PRIORITY, 0, 3, b"\0\0\0\1\x10"),
        "window-0": h2_settings((4, 0)) + post(1, e) + get(3, "/dns-query?dns=" + b64url(w))
        + h2frame(WINDOW_UPDATE, 0, 1, struct.pack("!I", 10)),
        "trailers": settings + h2frame(HEADERS, END_HEADERS, 1, hpack(request("POST", "/dns-query", [CT_DNS])))
        + h2frame(DATA, 0, 1, e) + h2frame(HEADERS, END_STREAM | END_HEADERS, 1, hpack([("x-trailer", "1")])),
        "hpack-indexed": settings + h2frame(HEADERS, END_STREAM | END_HEADERS, 1,
                                            hpack(request("GET", "/dns-query?dns=" + b64url(w)), index=True))
        + h2frame(HEADERS, END_STREAM | END_HEADERS, 3, bytes([0xc1, 0xc0, 0xbf, 0xbe])),
        "client-goaway": settings + get(1, "/dns-query?dns=" + b64url(w)) + h2frame(GOAWAY, 0, 0, struct.pack("!II", 0, 0))
        + get(3, "/dns-query?dns=" + b64url(e)),
        "bad-frames": settings + h2frame(DATA, END_STREAM, 1, e) + h2frame(PUSH_PROMISE, END_HEADERS, 1, b"\0\0\0\2"),
        # a stream left open at the end (h2.c leaked it; finding)
        "open-at-close": settings + get(1, "/dns-query?dns=" + b64url(w)) + h2frame(HEADERS, END_HEADERS, 3, block)
        + h2frame(DATA, 0, 3, e[:5]),
    }


def doh_inputs():
    qs = client_queries()
    out = {}
    for name, stream in doh_h1_streams(qs).items():
        flags = DOH_TLS if name == "pipelined-6" else DOH_PROXY if name == "forwarded" else 0
        cap = 0 if name in ("bad-requests", "pipelined-6") else 15
        out["h1-" + name] = bytes([flags, cap]) + struct.pack("!Q", rng.getrandbits(64)) + stream
    for name, stream in doh_h2_streams(qs).items():
        flags = DOH_H2 | (DOH_TLS if name == "many-streams" else DOH_ABORT if name == "client-reset-ping-window" else 0)
        out["h2-" + name] = bytes([flags, 3]) + struct.pack("!Q", rng.getrandbits(64)) + stream
    out["h2-own-preface"] = bytes([DOH_H2 | DOH_OWN_PREFACE, 7]) + bytes(8) + H2_PREFACE + h2_settings() \
        + h2frame(HEADERS, END_STREAM | END_HEADERS, 1, hpack(request("GET", "/dns-query?dns=" + b64url(qs["plain-a"]))))
    out["h2-no-preface"] = bytes([DOH_H2 | DOH_OWN_PREFACE, 7]) + bytes(8) + b"GET / HTTP/1.1\r\n\r\n"
    # HEAD over HTTP/2 got a body (finding): the request alone
    out["finding-h2-head"] = bytes([DOH_H2, 1]) + bytes(8) + h2_settings() \
        + h2frame(HEADERS, END_STREAM | END_HEADERS, 1, hpack(request("HEAD", "/dns-query")))
    return out


# ---- fuzz_h2_upstream: [flags][queries - 1][8-byte seed] + (up_id, length, message)... + server bytes or script

UP_GET, UP_SCRIPTED, UP_SETTINGS, UP_RESUBMIT = 1, 2, 4, 8
# script ops (fuzz_h2_upstream.c script_step): op, argument
ANSWER, WRONG_CT, STATUS, EMPTY, TOO_LONG, REFUSE, RESET, GOAWAY_OP, MAX_STREAMS, PING_OP, SPLICE, SUBMIT = \
    0, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13


def h2up(flags, queries, tail):
    recs = b"".join(struct.pack("!HB", uid, len(m)) + m for uid, m in queries)
    return bytes([flags, len(queries) - 1]) + struct.pack("!Q", rng.getrandbits(64)) + recs + tail


def script(*ops):
    return b"".join(bytes([op, arg]) for op, arg in ops)


def h2_upstream_inputs():
    qs = client_queries()
    queries = [(0x1111, qs["plain-a"]), (0x2222, qs["edns-1232"]), (0x3333, qs["edns-all"]), (0x4444, qs["any"])]
    few = queries[:3]
    s = {
        "script-answers": h2up(UP_SCRIPTED, queries, script((ANSWER, 0), (ANSWER, 0), (SUBMIT, 1), (ANSWER, 0),
                                                            (ANSWER, 0))),
        "script-get": h2up(UP_SCRIPTED | UP_GET, few, script((ANSWER, 0), (ANSWER, 1), (ANSWER, 2))),
        "script-failures": h2up(UP_SCRIPTED, queries, script((WRONG_CT, 0), (STATUS, 1), (EMPTY, 0), (TOO_LONG, 9))),
        "script-resets": h2up(UP_SCRIPTED | UP_RESUBMIT, few, script((REFUSE, 0), (RESET, 1), (ANSWER, 0), (ANSWER, 0))),
        "script-goaway": h2up(UP_SCRIPTED, queries, script((ANSWER, 0), (GOAWAY_OP, 1), (ANSWER, 0), (SUBMIT, 1))),
        "script-max-streams": h2up(UP_SCRIPTED, queries, script((MAX_STREAMS, 1), (SUBMIT, 1), (SUBMIT, 1), (ANSWER, 0),
                                                                (ANSWER, 0), (PING_OP, 0), (ANSWER, 0))),
        # requests held back by SETTINGS_MAX_CONCURRENT_STREAMS 0, then GOAWAY (finding: never reported)
        "finding-held-at-goaway": h2up(UP_SCRIPTED, few, script((MAX_STREAMS, 0), (SUBMIT, 1), (SUBMIT, 1),
                                                                (GOAWAY_OP, 0x80))),
        "script-cancel": h2up(UP_SCRIPTED, queries, script((SUBMIT, 0), (ANSWER, 0), (SUBMIT, 0), (ANSWER, 0))),
        "script-splice": h2up(UP_SCRIPTED, few, script((SPLICE, 9)) + h2frame(PING, 0, 0, b"abcdefgh")[:9]
                              + script((ANSWER, 0), (ANSWER, 0))),
    }
    ans = lambda q: q[:2] + bytes([q[2] | 0x80]) + q[3:]
    resp = lambda sid, body, flags=END_STREAM: h2frame(HEADERS, END_HEADERS, sid, hpack([(":status", "200"), CT_DNS])) \
        + h2frame(DATA, flags, sid, body)
    srv = h2frame(SETTINGS, 0, 0) + h2frame(SETTINGS, ACK, 0)
    raw = {
        "raw-answer": srv + resp(1, ans(qs["plain-a"])),
        "raw-out-of-order": srv + resp(3, ans(qs["edns-1232"])) + resp(1, ans(qs["plain-a"])),
        "raw-padded-continuation": srv + h2frame(HEADERS, PADDED, 1, b"\x04" + hpack([(":status", "200")]) + bytes(4))
        + h2frame(CONTINUATION, END_HEADERS, 1, hpack([CT_DNS])) + h2frame(DATA, PADDED | END_STREAM, 1,
                                                                           b"\x01" + ans(qs["plain-a"]) + b"\x00"),
        "raw-goaway-rst": srv + h2frame(RST_STREAM, 0, 3, struct.pack("!I", 7)) + resp(1, ans(qs["plain-a"]))
        + h2frame(GOAWAY, 0, 0, struct.pack("!II", 1, 0)),
        "raw-window-settings": h2_settings((3, 1), (4, 0), (5, 20000)) + h2frame(WINDOW_UPDATE, 0, 1, struct.pack("!I", 5))
        + h2frame(PING, 0, 0, bytes(8)) + resp(1, ans(qs["plain-a"])),
        "raw-status-404": srv + h2frame(HEADERS, END_HEADERS | END_STREAM, 1, hpack([(":status", "404")])),
        # a response cut by RST_STREAM NO_ERROR before its END_STREAM (finding: taken as the answer)
        "finding-rst-no-error-before-end-stream": srv + resp(1, ans(qs["plain-a"]), 0)
        + h2frame(RST_STREAM, 0, 1, struct.pack("!I", 0)),
        "raw-no-settings": resp(1, ans(qs["plain-a"])),
    }
    for name, stream in raw.items():
        s[name] = h2up(UP_GET if name == "raw-out-of-order" else 0, few, stream)
    return s


# ---- fuzz_yaml: the file itself (the examples, and broken ones)

def yaml_inputs():
    ex = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples")
    out = {}
    for name in sorted(os.listdir(ex)):
        if name.endswith(".yaml"):
            with open(os.path.join(ex, name), "rb") as f:
                out["example-" + name[:-5]] = f.read()
    pools = "pools:\n  a: {members: [tcp://127.0.0.1:1, {url: 'tls://192.0.2.1#x.test', weight: 3}]}\n"
    out.update({
        "empty": b"",
        "not-yaml": b"listen: [127.0.0.1:53\n\tpools: {\n",
        "not-a-mapping": b"- 1\n- 2\n",
        "unknown-keys": b"threads: 2\nthread: 3\nlog: {level: loud, target: syslog, queries: on}\netcd: {}\n",
        "bad-values": b"threads: x\ntimeout: 5y\nudp-retry: -1\nmax-inflight: 99999999999\ncircuits: {idle: 1h, max: 99}\n",
        "listeners": b"listen:\n  - 127.0.0.1:53\n  - url: https://[::1]:443\n    path: /q\n    trusted-proxies: [127.0.0.1, x]\n"
                     b"  - url: http://127.0.0.1:8053\n    path: /other\n  - {acl: [any]}\n  - tcp://1.2.3.4\n",
        "routes": (pools + "routes:\n  - {suffix: corp., pool: a, qtype: [A, AAAA, NOPE], client: [10.0.0.0/8, '!private', any]}\n"
                   "  - {regex: '^[ab]*\\\\.x\\\\.$', pool: a, cache: false}\n  - {regex: '(', pool: a}\n"
                   "  - {suffix: ., pool: b}\n  - {pool: a}\n  - x\n").encode(),
        "health": (pools.replace("}]}", "}], health: {query: id.server. CH TXT, interval: 1s, fall: 2, rise: 9, "
                                        "when-all-down: servfail}, policy: fastest, retries: 2, timeout: 1s}")
                   + "listen: [127.0.0.1:53]\n").encode(),
        "anchors": b"pools:\n  a: &m {members: [tcp://127.0.0.1:1]}\n  b: *m\nlisten: &l [127.0.0.1:53]\nroutes:\n"
                   b"  - &r {suffix: x., pool: a}\n  - *r\n",
        # found: a key given twice (routes: wrote past its array), newlines in scalars and keys
        "finding-routes-twice": (pools + "routes:\n  - {suffix: a., pool: a}\n  - {suffix: b., pool: a}\n"
                                 "routes:\n  - {suffix: c., pool: a, client: [any], client: [10.0.0.0/8]}\n").encode(),
        "finding-tls-twice": b"tls: {cert: /etc/a.pem, key: /etc/a.key, ca-file: /etc/ca.pem}\ntls: {cert: /b}\n",
        "finding-newlines": b"threads: \"1\\n2\"\n\"a\\nb\": 1\nlisten:\n  - 127.0.0.1:53\n    \n    x\n",
        # review: what followed a "---" was ignored, not YAML included
        "finding-second-document": b"threads: 2\n---\nthreads: nonsense\n",
        "finding-second-document-not-yaml": b"listen: [127.0.0.1:53]\n---\n[unclosed\n",
    })
    return out


def etcd_inputs():
    """fuzz_etcd: control byte (mode 0 value, 1 watch stream, 2 range NUL stream), 8 seed bytes, then the input;
    keys and values in base64 as etcd's JSON gateway writes them."""
    import json
    seed = bytes(range(1, 9))

    def b64(s):
        return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()

    def kv(key, value=None, rev=2):
        d = {"key": b64(key), "create_revision": str(rev), "mod_revision": str(rev), "version": "1"}
        if value is not None:
            d["value"] = b64(value)
        return d

    def hdr(rev):
        return {"cluster_id": "7801232528081817440", "member_id": "13458989633860879742",
                "revision": str(rev), "raft_term": "2"}

    def dumps(o):
        return json.dumps(o, separators=(",", ":")).encode()

    def put(key, value, rev):
        return {"kv": kv(key, value, rev)}  # PUT is enum 0: grpc-gateway leaves "type" out

    def delete(key, rev):
        return {"type": "DELETE", "kv": {"key": b64(key), "mod_revision": str(rev)}}

    def watch(*msgs):
        return b"".join(dumps({"result": m}) + b"\n" for m in msgs)

    values = {
        "dnsrouter": "10.1.1.15:5300,^[ab]*\\.miek\\.nl\\.$",
        "dnsrouter-v6": "[2001:db8::1]:53,^shard[0-9]+\\.example\\.$",
        "dnsrouter-comma": "192.0.2.1:53,^a{1,3}\\.$",
        "json-regex": '{"upstream": "tls://192.0.2.1:853?pin=sha256/' + "A" * 43 + '=#dns.example", "regex": "^x\\\\."}',
        "json-suffix": '{"upstream": "https://192.0.2.2/dns-query#doh.example", "suffix": "Shard.Example.COM"}',
        "json-unix": '{"upstream": "unix:///run/knot/dns.sock", "suffix": "."}',
        "bad-no-port": "10.1.1.15,^a$",
        "bad-regex": "10.1.1.15:53,([a-",
        "bad-json-key": '{"upstream": "udp://1.2.3.4", "regex": "^a$", "weight": 2}',
        "bad-json-both": '{"upstream": "udp://1.2.3.4", "regex": "^a$", "suffix": "a."}',
        "bad-json-dup": '{"upstream": "udp://1.2.3.4", "upstream": "udp://1.2.3.5", "suffix": "a."}',
        "bad-mdns": '{"upstream": "mdns://", "suffix": "local."}',
    }
    out = {"value-" + k: b"\0" + seed + v.encode() for k, v in values.items()}
    created = {"header": hdr(7), "created": True}
    events = {"header": hdr(9), "events": [put("/dnsrouter/b", "[::1]:5300,^b\\.$", 8), delete("/dnsrouter/a", 9)]}
    stream = watch(created, events, {"header": hdr(10), "events": [put("/dnsrouter/c", "garbage", 10)]})
    out.update({
        "watch": b"\1" + seed + stream,
        "watch-json-values": b"\1" + seed + watch(created, {"header": hdr(3), "events": [
            put("/dnsrouter/j", values["json-suffix"], 3), put("/dnsrouter/k", values["json-regex"], 3)]}),
        "watch-cancelled": b"\1" + seed + watch(created, {"header": hdr(12), "canceled": True, "compact_revision": "11"}),
        "watch-error": b"\1" + seed + dumps({"error": {"grpc_code": 14, "http_code": 503, "message": "transport is closing",
                                                      "http_status": "Service Unavailable"}}),
        "watch-outside-prefix": b"\1" + seed + watch({"header": hdr(4), "events": [put("/other/x", "1.2.3.4:53,^x$", 4)]}),
    })
    rng_ = {"header": hdr(7), "kvs": [kv("/dnsrouter/a", values["dnsrouter"], 3), kv("/dnsrouter/b", "junk", 4),
                                      kv("/dnsrouter/c", values["json-suffix"], 5)], "count": "3"}
    out.update({
        "range-then-watch": b"\2" + seed + dumps(rng_) + b"\0" + stream,
        "range-empty": b"\2" + seed + dumps({"header": hdr(1)}) + b"\0",
        "range-many": b"\2" + seed + dumps({"header": hdr(90), "kvs": [
            kv("/dnsrouter/%02d" % i, "10.0.%d.%d:53,^s%d\\." % (i // 8, i % 8 + 1, i % 5), i + 2) for i in range(20)]})
        + b"\0" + watch({"header": hdr(91), "events": [delete("/dnsrouter/07", 91)]}),
        "range-not-one": b"\2" + seed + b'{"kvs":[]}\0',
    })
    return out


# ---- fuzz_cache: ops [op][arg]; a put (op 0) then [len][header][records]

def cache_inputs():
    def rr_a(ttl, i=1):
        return struct.pack("!HHHIH4B", 0xc00c, 1, 1, ttl, 4, 192, 0, 2, i & 0xff)

    def soa(ttl, minimum):
        rd = b"\x02ns\x01t\x00" + b"\x02hm\x01t\x00" + struct.pack("!IIIII", 1, 3600, 600, 86400, minimum)
        return b"\x01t\x00" + struct.pack("!HHIH", 6, 1, ttl, len(rd)) + rd

    def opt_rr(opts=b""):
        return b"\x00" + struct.pack("!HHIH", 41, 1232, 0, len(opts)) + opts

    def put(key, rcode, an, ns, ar, records):
        hdr = struct.pack("!HBBHHHH", 0x1234, 0x81, 0x80 | rcode, 1, an, ns, ar)
        return bytes([0, key]) + struct.pack("!H", len(records)) + hdr + records

    def get(key):
        return bytes([1, key])

    cookie = opt_rr(struct.pack("!HH", 10, 16) + bytes(range(16)) + struct.pack("!HH", 3, 2) + b"ns")
    many = b"".join(rr_a(300, i) for i in range(20))
    out = {
        "put-get": put(0, 0, 1, 0, 0, rr_a(300)) + get(0),
        "put-get-edns": put(1, 0, 1, 0, 1, rr_a(60) + opt_rr()) + get(1),
        "cookie": put(3, 0, 1, 0, 1, rr_a(60) + cookie) + get(3),
        "nxdomain": put(2, 3, 0, 1, 0, soa(3600, 60)) + get(2),
        "nodata-no-soa": put(2, 0, 0, 0, 0, b"") + get(2),
        "replace": put(4, 0, 1, 0, 0, rr_a(300)) + put(4, 0, 20, 0, 0, many) + get(4),
        "flush": put(5, 0, 1, 0, 0, rr_a(300)) + bytes([2, 2]) + get(5) + bytes([2, 0x80]) + get(5),
        # a full shard: puts of mixed sizes over all keys, gets between (hits move records)
        "churn": b"".join(put(i % 64, 0, 1 + i % 20, 0, 0, b"".join(rr_a(100 + i, j) for j in range(1 + i % 20)))
                          + get((i * 7) % 64) for i in range(200)),
        # every key put and hit, six rounds: the replaced ones die, hit ones at the tail move
        "rounds": b"".join(b"".join(put(k, 0, 1, 0, k & 1, rr_a(300) + (opt_rr() if k & 1 else b""))
                                    for k in range(128)) + b"".join(get(k) for k in range(128))
                           for _ in range(6)),
    }

# ---- fuzz_control: a request line (control byte 0) or an upstream URL (1)

def control_inputs():
    """fuzz_control: control byte 0 then a request line as control/server.c passes it (no newline),
    or 1 then an upstream's URL (to a NUL) for the JSON of stats and status."""
    requests = {
        "status": b"status", "stats-crlf": b"stats\r", "reload": b"reload", "flush-all": b"cache-flush",
        "flush-name": b"cache-flush example.com", "flush-exact": b"cache-flush --exact WWW.Example.",
        "flush-root": b"cache-flush .", "flush-escaped": b"cache-flush \\065bc.\\.example",
        "flush-spaces": b" \t cache-flush\t\tx.test.  ", "bad-empty-label": b"cache-flush a..b",
        "bad-long-label": b"cache-flush " + b"a" * 64 + b".example", "bad-exact-alone": b"cache-flush --exact",
        "bad-option": b"cache-flush --below x.", "bad-two-names": b"cache-flush a. b.",
        "bad-extra": b"status now", "bad-unknown": b"STATUS", "bad-empty": b"", "bad-blank": b" \t ",
        "bad-nul": b"sta\x00tus", "bad-utf8": b"st\xc3\xa4tus", "bad-words": b"a b c d e f g h i",
        "bad-long": b"status " + b" " * 1020, "bad-quote": b'cache-flush "\\"x',
        "long-name": b"cache-flush " + b".".join([b"a" * 63] * 3) + b"." + b"b" * 61,
    }
    urls = {
        "url-tcp": b"tcp://127.0.0.1:53", "url-tls": b"tls://9.9.9.9:853?pin=sha256/AAAA#dns.quad9.net",
        "url-quotes": b'https://[::1]/dns-query"a\\b\nc\x01\x7f', "url-utf8": "unix:///run/\u00fc.sock".encode(),
        "url-not-utf8": b"tcp://\xff\xfe:53", "url-cut-utf8": b"https://x/" + "\u00e9".encode() * 400,
        "url-empty": b"",
    }
    out = {k: b"\x00" + v for k, v in requests.items()}
    out.update({k: b"\x01" + v for k, v in urls.items()})
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
    write(root, "fuzz_cache", cache_inputs())
    write(root, "fuzz_doh", doh_inputs())
    write(root, "fuzz_h2_upstream", h2_upstream_inputs())
    write(root, "fuzz_yaml", yaml_inputs())
    write(root, "fuzz_etcd", etcd_inputs())
    write(root, "fuzz_control", control_inputs())


if __name__ == "__main__":
    main()
