"""DNS client helpers shared by the integration tests: the origin zone's
contents (so a test can check the rdata of every answer), raw UDP/TCP
exchanges that keep the exact wire bytes, and a bounded concurrent load
runner. Fixtures (processes, ports) live in conftest.py.

Everything here talks to loopback only and every wait has a deadline.
"""

import ipaddress
import random
import select
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

# ---------------------------------------------------------------------------
# The origin zone served by the knotd fixture.

ZONE = "test."
WWW_A = "192.0.2.80"
WWW_AAAA = "2001:db8::80"
BENCH_A = "192.0.2.1"  # *.bench.test
N_NAMES = 256  # n0.test .. n255.test, each with one A and one AAAA
LETTERS = "abcdefghijklmnopqrstuvwxyz"  # a.test .. z.test, one A each
BIG_TXT_COUNT = 4  # big.test: answer > 512 and < 1232 bytes
HUGE_TXT_COUNT = 12  # huge.test: answer > 1232 and < 4000 bytes
TXT_LEN = 200


def n_a(i):
    return f"10.1.{i // 256}.{i % 256}"


def n_aaaa(i):
    return str(ipaddress.IPv6Address(f"2001:db8:1::{i:x}"))


def txt_string(tag, i):
    """The i-th TXT string at big/huge.test: TXT_LEN bytes, all distinct."""
    head = f"{tag}-{i:02d}-"
    return head + (LETTERS[i % 26] * (TXT_LEN - len(head)))


def zone_text():
    lines = [
        "$ORIGIN test.",
        "$TTL 300",
        "@ SOA ns.test. hostmaster.test. 2024010101 3600 600 86400 300",
        "@ NS ns.test.",
        "ns A 192.0.2.53",
        f"www A {WWW_A}",
        f"www AAAA {WWW_AAAA}",
        f"*.bench A {BENCH_A}",
        "loop A 127.0.0.1",  # a name curl --doh-url can resolve and then connect to, on loopback
        "alias CNAME www.test.",  # a CNAME chain: alias2 -> alias -> www
        "alias2 CNAME alias.test.",
    ]
    for i, c in enumerate(LETTERS):
        lines.append(f"{c} A 192.0.2.{100 + i}")
    for i in range(N_NAMES):
        lines.append(f"n{i} A {n_a(i)}")
        lines.append(f"n{i} AAAA {n_aaaa(i)}")
    for i in range(BIG_TXT_COUNT):
        lines.append(f'big TXT "{txt_string("big", i)}"')
    for i in range(HUGE_TXT_COUNT):
        lines.append(f'huge TXT "{txt_string("huge", i)}"')
    return "\n".join(lines) + "\n"


def expected_rdata(qname, rdtype):
    """Set of rdata texts the origin zone gives for qname/rdtype (None if the
    name is not one the tests know)."""
    name = str(qname).lower().rstrip(".") + "."
    rdtype = dns.rdatatype.to_text(dns.rdatatype.RdataType.make(rdtype))
    if name == "www.test.":
        return {"A": {WWW_A}, "AAAA": {WWW_AAAA}}.get(rdtype, set())
    if name.endswith(".bench.test."):
        return {BENCH_A} if rdtype == "A" else set()
    if name in ("big.test.", "huge.test.") and rdtype == "TXT":
        tag, count = ("big", BIG_TXT_COUNT) if name == "big.test." else ("huge", HUGE_TXT_COUNT)
        return {f'"{txt_string(tag, i)}"' for i in range(count)}
    label = name[: -len(".test.")]
    if len(label) == 1 and label in LETTERS:
        return {f"192.0.2.{100 + LETTERS.index(label)}"} if rdtype == "A" else set()
    if label.startswith("n") and label[1:].isdigit() and int(label[1:]) < N_NAMES:
        i = int(label[1:])
        return {"A": {n_a(i)}, "AAAA": {n_aaaa(i)}}.get(rdtype, set())
    return None


def mixed_case(name, rng=random):
    """Same name with a random mix of upper and lower case, guaranteed to
    contain both if it has at least two letters."""
    while True:
        out = "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in name)
        letters = [c for c in out if c.isalpha()]
        if len(letters) < 2 or (any(c.isupper() for c in letters) and any(c.islower() for c in letters)):
            return out


# ---------------------------------------------------------------------------
# Wire helpers.


def make_query(qname, rdtype="A", edns=None, qid=None, flags_rd=True):
    """A query message; edns=None means no OPT record, else the UDP size."""
    q = dns.message.make_query(qname, rdtype, use_edns=False if edns is None else 0,
                               payload=edns or 1232)
    if not flags_rd:
        q.flags &= ~dns.flags.RD
    q.id = random.randrange(0, 65536) if qid is None else qid
    return q


def question_bytes(wire):
    """Raw bytes of the (single) question section, exact case preserved."""
    off = 12
    while True:
        ln = wire[off]
        if ln == 0:
            off += 1
            break
        if ln & 0xC0:
            raise ValueError("compressed question name")
        off += 1 + ln
    return bytes(wire[12:off + 4])


def rcode_of(wire):
    return wire[3] & 0x0F


def rdata_set(msg, rdtype=None):
    out = set()
    for rrset in msg.answer:
        if rdtype is not None and rrset.rdtype != dns.rdatatype.RdataType.make(rdtype):
            continue
        out |= {r.to_text() for r in rrset}
    return out


def udp_socket(host="127.0.0.1"):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((host, 0))
    return s


def udp_exchange(wire, port, host="127.0.0.1", timeout=5.0):
    """Send one datagram from a fresh socket and return the first datagram
    back (bytes), or raise socket.timeout."""
    with udp_socket(host) as s:
        s.settimeout(timeout)
        s.sendto(wire, (host, port))
        data, _ = s.recvfrom(65535)
        return data


def udp_query(port, qname, rdtype="A", edns=1232, host="127.0.0.1", timeout=5.0, qid=None):
    q = make_query(qname, rdtype, edns=edns, qid=qid)
    wire = q.to_wire()
    data = udp_exchange(wire, port, host, timeout)
    return q, wire, data, dns.message.from_wire(data)


def frame(wire):
    return struct.pack("!H", len(wire)) + wire


def recv_exact(sock, n, deadline):
    buf = b""
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out reading %d bytes" % n)
        sock.settimeout(left)
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return buf


def recv_frame(sock, timeout=5.0):
    deadline = time.monotonic() + timeout
    (ln,) = struct.unpack("!H", recv_exact(sock, 2, deadline))
    return recv_exact(sock, ln, deadline)


def tcp_connect(port, host="127.0.0.1", timeout=5.0):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.connect((host, port))
    return s


def tcp_query(port, qname, rdtype="A", host="127.0.0.1", timeout=5.0, edns=1232):
    q = make_query(qname, rdtype, edns=edns)
    wire = q.to_wire()
    with tcp_connect(port, host, timeout) as s:
        s.sendall(frame(wire))
        data = recv_frame(s, timeout)
    return q, wire, data, dns.message.from_wire(data)


def wait_closed(sock, timeout):
    """Wait until the peer closes sock, plain TCP or TLS (EOF, reset, or a
    TLS close_notify / alert). Returns the time it took, or None if still
    open at the deadline. Data read meanwhile is discarded."""
    tls = isinstance(sock, ssl.SSLSocket)
    closed_errors = (ssl.SSLError, ConnectionError, OSError) if tls else (ConnectionResetError,
                                                                          ConnectionAbortedError)
    start = time.monotonic()
    deadline = start + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        if not (tls and sock.pending()):
            r, _, _ = select.select([sock], [], [], left)
            if not r:
                return None
        try:
            if tls:  # a readable socket may hold only part of a record
                sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(65535)
        except (ssl.SSLWantReadError, socket.timeout):
            continue
        except closed_errors:
            return time.monotonic() - start
        if not chunk:
            return time.monotonic() - start


def zone_queries(n, start=0, edns=None):
    """{id: (name, wire)} for n A queries on the zone's names n<start>...,
    with distinct IDs; edns=None: no OPT record, else its UDP size."""
    out = {}
    for i in range(start, start + n):
        name = "n%d.test." % (i % N_NAMES)
        q = make_query(name, "A", edns=edns)
        while q.id in out:
            q = make_query(name, "A", edns=edns)
        out[q.id] = (name, q.to_wire())
    return out


def read_answers(sock, queries, timeout=10.0, rdtype="A"):
    """Read len(queries) framed answers from a stream (TCP or TLS), match
    them by ID to queries ({id: (name, wire)}), check each against the
    zone. Returns the list of problems."""
    problems = []
    pending = dict(queries)
    deadline = time.monotonic() + timeout
    while pending:
        r = recv_frame(sock, max(0.1, deadline - time.monotonic()))
        qid = int.from_bytes(r[:2], "big")
        if qid not in pending:
            problems.append("answer with unexpected id %d" % qid)
            continue
        name, w = pending.pop(qid)
        problems += ["%s: %s" % (name, p) for p in check_answer(w, r, expected_rdata(name, rdtype))]
    return problems


def check_answer(qwire, rwire, expect_rdata=None):
    """Problems (list of strings) with rwire as the answer to qwire: same ID,
    byte-identical question (case included), QR set, NOERROR, and, when
    given, exactly the expected rdata set."""
    problems = []
    if len(rwire) < 12:
        return ["short answer (%d bytes)" % len(rwire)]
    if rwire[:2] != qwire[:2]:
        problems.append("id %s != %s" % (rwire[:2].hex(), qwire[:2].hex()))
    if not rwire[2] & 0x80:
        problems.append("QR not set")
    try:
        if question_bytes(rwire) != question_bytes(qwire):
            problems.append("question %r != %r" % (question_bytes(rwire), question_bytes(qwire)))
    except (IndexError, ValueError) as e:
        problems.append("unparseable question: %s" % e)
    rc = rcode_of(rwire)
    if rc != dns.rcode.NOERROR:
        problems.append("rcode %s" % dns.rcode.to_text(rc))
    if expect_rdata is not None and not problems:
        msg = dns.message.from_wire(rwire)
        got = rdata_set(msg)
        if got != set(expect_rdata):
            problems.append("rdata %s != expected %s" % (sorted(got), sorted(expect_rdata)))
    return problems


# ---------------------------------------------------------------------------
# Bounded concurrent load.


@dataclass
class Result:
    qname: str
    rdtype: str
    qwire: bytes
    sent: float = 0.0  # time.monotonic() when sent
    elapsed: float = None  # seconds to the answer; None if no answer
    rwire: bytes = None
    error: str = None  # timeout / exception text
    problems: list = field(default_factory=list)

    @property
    def rcode(self):
        return None if self.rwire is None else rcode_of(self.rwire)


def udp_one(sock, item, port, host, timeout, expect):
    qname, rdtype = item[0], item[1]
    q = make_query(qname, rdtype, edns=item[2] if len(item) > 2 else 1232)
    wire = q.to_wire()
    res = Result(qname, rdtype, wire)
    res.sent = time.monotonic()
    try:
        sock.sendto(wire, (host, port))
        deadline = res.sent + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout()
            sock.settimeout(left)
            data, _ = sock.recvfrom(65535)
            if data[:2] == wire[:2]:
                break
            # An answer with an ID this client never had in flight is a bug
            # on its own; note it and keep waiting for ours.
            res.problems.append("stray datagram id %s" % data[:2].hex())
        res.elapsed = time.monotonic() - res.sent
        res.rwire = data
    except socket.timeout:
        res.error = "timeout after %.2fs" % timeout
        return res
    except OSError as e:
        res.error = repr(e)
        return res
    if expect:
        exp = expected_rdata(qname, rdtype)
        res.problems += check_answer(wire, data, exp)
    return res


def run_udp_load(port, items, clients=100, timeout=5.0, host="127.0.0.1", expect=True,
                 total_time=120.0):
    """Send items ((qname, rdtype[, edns]) tuples) from `clients` threads, each
    with its own UDP socket, one query at a time per client. Returns the
    Results in item order. Bounded: each query waits at most `timeout`, the
    whole run at most `total_time`. With expect=True each answer is checked
    against the origin zone (right ID, question, NOERROR, rdata)."""
    results = [None] * len(items)
    stop_at = time.monotonic() + total_time

    def worker(k):
        with udp_socket(host) as s:
            for i in range(k, len(items), clients):
                if time.monotonic() > stop_at:
                    return
                results[i] = udp_one(s, items[i], port, host, timeout, expect)

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(min(clients, len(items)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, stop_at - time.monotonic()) + timeout + 1)
    for i, r in enumerate(results):
        if r is None:
            results[i] = Result(items[i][0], items[i][1], b"", error="not sent (load time budget exhausted)")
    return results


def summarize(results, limit=10):
    """Human-readable list of the failures among results (empty if none)."""
    bad = []
    for r in results:
        if r.error or r.problems:
            bad.append("%s/%s: %s" % (r.qname, r.rdtype, r.error or "; ".join(r.problems)))
    if len(bad) > limit:
        bad = bad[:limit] + ["... and %d more" % (len(bad) - limit)]
    return bad


def is_loopback_host(host):
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ---------------------------------------------------------------------------
# A stream client that decides when it reads and writes (slow readers,
# clients that never read, queries and close_notify in one write).


class StreamClient:
    """A DNS client on one TCP connection, plain or DoT, on a non-blocking
    socket that moves bytes only when told to. queue() frames messages (and,
    for DoT, encrypts them at once through an ssl.MemoryBIO session, so the
    test decides which TLS records, close_notify included, leave in which
    write); send_some() and recv_some() never block. Whole answers collect
    in .frames. .eof: None while open, then "fin" or "reset";
    .close_notify: a TLS close_notify came (before the FIN)."""

    def __init__(self, port, host="127.0.0.1", tls_context=None, server_hostname=None, rcvbuf=None,
                 timeout=5.0):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        if rcvbuf:  # before connect, so the window offered is small from the start
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.sock.setblocking(False)
        self.out = bytearray()  # bytes not yet taken by the kernel (ciphertext for DoT)
        self.inbuf = bytearray()  # plaintext received, not yet a whole frame
        self.frames = []
        self.received = 0  # bytes read from the socket
        self.eof = None
        self.close_notify = False
        self.fin_queued = False
        self.tls = None
        if tls_context is not None:
            self._bio_in, self._bio_out = ssl.MemoryBIO(), ssl.MemoryBIO()
            self.tls = tls_context.wrap_bio(self._bio_in, self._bio_out, server_hostname=server_hostname)
            self._handshake(time.monotonic() + timeout)

    def _handshake(self, deadline):
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pass
            self.out += self._bio_out.read()
            self.send_some()
            if time.monotonic() > deadline or self.eof:
                raise socket.timeout("TLS handshake not done (eof=%s)" % self.eof)
            select.select([self.sock], [], [], max(0.0, deadline - time.monotonic()))
            self.recv_some()
        self.out += self._bio_out.read()
        self.send_some()

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- writing

    def queue(self, data):
        """Frame-level bytes to send (already framed); for DoT, encrypted now."""
        if self.tls is None:
            self.out += data
        else:
            self.tls.write(bytes(data))
            self.out += self._bio_out.read()

    def queue_close_notify(self):
        """DoT: a close_notify alert after what is queued (we can still read)."""
        try:
            self.tls.unwrap()
        except ssl.SSLWantReadError:
            pass  # it waits for the server's; the alert is written
        self.out += self._bio_out.read()

    def queue_fin(self):
        """shutdown(SHUT_WR) once everything queued is sent."""
        self.fin_queued = True
        self.send_some()

    def send_some(self):
        """Send what the kernel takes now; returns the byte count."""
        sent = 0
        while self.out:
            try:
                n = self.sock.send(self.out[:262144])
            except BlockingIOError:
                break
            except (BrokenPipeError, ConnectionResetError):
                self.eof = self.eof or "reset"
                self.out.clear()
                break
            del self.out[:n]
            sent += n
        if not self.out and self.fin_queued:
            self.fin_queued = False
            try:
                self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        return sent

    def writable(self, timeout):
        return bool(select.select([], [self.sock], [], timeout)[1])

    # -- reading

    def recv_some(self, limit=65536):
        """Read what is there now, up to limit bytes; returns the count."""
        got = 0
        while got < limit and self.eof is None:
            try:
                data = self.sock.recv(min(65536, limit - got))
            except BlockingIOError:
                break
            except (ConnectionResetError, ConnectionAbortedError):
                self.eof = "reset"
                break
            if not data:
                self.eof = "fin"
                break
            got += len(data)
            self._take(data)
        self.received += got
        return got

    def _take(self, data):
        if self.tls is None:
            self.inbuf += data
        else:
            self._bio_in.write(data)
            while not self.close_notify:
                try:
                    data = self.tls.read(65536)
                except ssl.SSLWantReadError:
                    break
                except ssl.SSLZeroReturnError:  # (once we have sent ours)
                    data = b""
                if not data:  # close_notify
                    self.close_notify = True
                self.inbuf += data
        while len(self.inbuf) >= 2:
            ln = struct.unpack("!H", self.inbuf[:2])[0]
            if len(self.inbuf) < 2 + ln:
                break
            self.frames.append(bytes(self.inbuf[2:2 + ln]))
            del self.inbuf[:2 + ln]

    def pump(self, timeout, read=True):
        """Wait up to timeout for the socket, then send and (if read) receive
        what can be moved now."""
        w = [self.sock] if self.out else []
        r = [self.sock] if read and self.eof is None else []
        if r or w:
            select.select(r, w, [], timeout)
        self.send_some()
        if read:
            self.recv_some()

    def read_until(self, n, timeout, chunk=None, pause=0.0):
        """Read (sending what is queued meanwhile) until n frames or the
        server's end, or timeout. With chunk/pause: a slow reader that takes
        at most chunk bytes, then waits pause seconds. Returns len(frames)."""
        deadline = time.monotonic() + timeout
        while len(self.frames) < n and self.eof is None and time.monotonic() < deadline:
            select.select([self.sock], [self.sock] if self.out else [], [],
                          max(0.0, min(0.2, deadline - time.monotonic())))
            self.send_some()
            self.recv_some(chunk or 1 << 20)
            if pause:
                time.sleep(pause)  # the slow reading under test
        return len(self.frames)

    def wait_eof(self, timeout):
        """Read until the server ends the connection; returns .eof (None if
        still open at the deadline)."""
        deadline = time.monotonic() + timeout
        while self.eof is None and time.monotonic() < deadline:
            self.pump(max(0.0, min(0.2, deadline - time.monotonic())))
        return self.eof


def match_answers(frames, queries, rdtype="A"):
    """Problems with frames as the answers to queries ({id: (name, wire)}):
    each query answered once, right (helpers.check_answer against the zone),
    nothing else. Returns a list of strings ("n of m answered" first)."""
    pending = dict(queries)
    problems = []
    verified = set()  # (query, answer) past their IDs, found right: the same again needs no parsing
    for r in frames:
        qid = int.from_bytes(r[:2], "big")
        if qid not in pending:
            problems.append("answer with unexpected or repeated id %d" % qid)
            continue
        name, w = pending.pop(qid)
        if (w[2:], r[2:]) in verified:
            continue
        p = check_answer(w, r, expected_rdata(name, rdtype))
        if not p:
            verified.add((w[2:], r[2:]))
        problems += ["%s: %s" % (name, x) for x in p]
    if pending:
        problems.insert(0, "%d of %d queries answered" % (len(queries) - len(pending), len(queries)))
    return problems


def huge_queries(n, edns=None, option_len=0):
    """{id: ("huge.test.", wire)} for n TXT queries on huge.test (answers of
    about 2.6 KB, 12 records) with distinct IDs (n <= 65536). option_len > 0
    adds an EDNS option of an unassigned code (65001) that long, to make
    each query bigger (upstreams ignore it)."""
    import dns.edns
    opts = [dns.edns.GenericOption(65001, b"\0" * option_len)] if option_len else None
    q = dns.message.make_query("huge.test.", "TXT", use_edns=0 if (edns or opts) else False,
                               payload=edns or 1232, options=opts)
    tail = q.to_wire()[2:]
    return {qid: ("huge.test.", struct.pack("!H", qid) + tail) for qid in random.sample(range(65536), n)}


def stream_listener(kind, dnsmux, pki, upstream, tmp_path, *args):
    """One client-side test over plain TCP (kind "tcp") and DoT ("dot"):
    dnsmux listening for TCP (and UDP), or for DoT only
    (test_dot_listener.start_dot); its port is .port."""
    if kind == "dot":
        from test_dot_listener import start_dot
        return start_dot(dnsmux, pki, upstream, tmp_path, *args)
    return dnsmux(*args, upstream=upstream)


def stream_client(kind, d, pki, **kw):
    """A StreamClient to d (stream_listener), over TLS trusting pki's CA
    for "dot"."""
    if kind == "dot":
        from conftest import tls_client_context
        from pki import SERVER_NAME
        kw.update(tls_context=tls_client_context(pki.ca_file), server_hostname=SERVER_NAME)
    return StreamClient(d.port, **kw)
