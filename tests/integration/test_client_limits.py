"""What one client can make dnsmux hold: a TCP or DoT client that never
reads its answers (dnsmux stops reading it, RFC 7766 6.2.3), large UDP
queries to a silent upstream (bytes in flight are capped), messages that
are no query (no activity: they do not hold a connection or a client
slot), and UDP answers near 64 KB (cut to what IPv4/IPv6 can carry)."""

import os
import select
import socket
import struct
import threading
import time

import dns.rcode
import pytest

import helpers
from conftest import MARGIN, free_port, have_ipv6_loopback, tcp_clients, wait_until
from helpers import stream_client, stream_listener

STALL_S = 1.5 + MARGIN  # no room in the kernel for this long: dnsmux is not reading us


def vm_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    raise RuntimeError("no VmRSS for %d" % pid)


@pytest.fixture
def small_quarantine(monkeypatch):
    """ASan keeps freed memory in a quarantine (256 MB by default) that
    shows in VmRSS; keep it small so RSS means live memory (no effect on a
    release build)."""
    opts = os.environ.get("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:strict_string_checks=1")
    monkeypatch.setenv("ASAN_OPTIONS", opts + ":quarantine_size_mb=1:thread_local_quarantine_size_kb=64")


def send_without_reading(c, wires, d, limit, budget_s):
    """Queue wires on c 100 at a time and send them without ever reading,
    until the kernel takes nothing for STALL_S (dnsmux stopped reading us),
    all are queued, budget_s passes, or dnsmux has taken more than limit
    queries (its stats, every 0.5 s: how the old code is stopped). Returns
    (number queued, stalled)."""
    queued = 0
    deadline = time.monotonic() + budget_s
    next_check = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        if not c.out:
            if queued == len(wires):
                return queued, False
            batch = wires[queued:queued + 100]
            c.queue(b"".join(helpers.frame(w) for w in batch))
            queued += len(batch)
        c.send_some()
        if c.out and not c.writable(STALL_S):
            return queued, True
        if time.monotonic() >= next_check:
            if d.stats()["queries"] > limit:
                return queued, False
            next_check = time.monotonic() + 0.5
    return queued, False


def kernel_wmem_max():
    with open("/proc/sys/net/ipv4/tcp_wmem") as f:
        return int(f.read().split()[2])


@pytest.mark.parametrize("kind", ["tcp", "dot"])
def test_client_that_never_reads(knotd, pki, dnsmux, tmp_path, small_quarantine, kind):
    """Fault 4: --tcp-pipeline capped the queries in flight, not the answers
    waiting to be written, so a client pipelining without reading made
    dnsmux queue answers without end (probe: 524 MB over TCP, 690 MB over
    DoT). Up to 20,000 huge.test TXT queries (~530 bytes, answers ~2.6 KB)
    are sent without ever reading: dnsmux must stop reading us (the sends
    stall), having taken at most what its socket's send buffer (tcp_wmem
    max), 64 KiB of queued answers and the pipeline account for, with
    tcp_backlogged counting the pause and VmRSS up by less than 16 MB. Then
    we read: every query sent is answered, right."""
    d = stream_listener(kind, dnsmux, pki, knotd.url("tcp"), tmp_path, "--tcp-idle", "30000")
    qs = helpers.huge_queries(20000, option_len=500)
    wires = [w for _, w in qs.values()]
    bound = (kernel_wmem_max() + 65536) // 2600 + 128  # answers its socket, its queue and the pipeline hold
    rss0 = vm_rss_kb(d.pid)
    with stream_client(kind, d, pki, rcvbuf=4096) as c:
        queued, stalled = send_without_reading(c, wires, d, 2 * bound, 20.0)
        st = d.stats()
        grew_kb = vm_rss_kb(d.pid) - rss0
        figures = "%d queries sent, %d taken by dnsmux (bound %d), VmRSS +%d kB, tcp_backlogged %s" % (
            queued, st["queries"], bound, grew_kb, st.total.get("tcp_backlogged"))
        assert stalled, "dnsmux kept reading a client that reads nothing: " + figures
        assert st["queries"] <= bound, figures
        assert st["tcp_backlogged"] >= 1, figures
        assert grew_kb < 16 * 1024, figures
        c.read_until(queued, 30.0)
        problems = helpers.match_answers(c.frames, dict(list(qs.items())[:queued]), "TXT")
        assert not problems, problems[:5]


QUERY_HEAP_MAX = 16 * 1024 * 1024  # bytes of large client messages a worker holds (WORKER_QUERY_HEAP_MAX)


def sized_query(qname, size, qid):
    """A query for qname/A exactly size bytes long: an EDNS option of an
    unassigned code (65001) takes up the room (built by hand: dnspython
    will not make a message that large)."""
    w = helpers.make_query(qname, "A", edns=None, qid=qid).to_wire()
    w = w[:10] + b"\x00\x01" + w[12:]  # ARCOUNT 1: the OPT
    pad = size - len(w) - 11 - 4
    opt = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 4 + pad) + struct.pack("!HH", 65001, pad)
    return w + opt + b"\0" * pad


def test_large_udp_queries_to_silent_upstream(fault_server, dnsmux, small_quarantine):
    """Fault 4 (bytes in flight): memory per query in flight was bounded in
    count (--max-inflight) but not in bytes: 65,000-byte UDP queries to a
    silent upstream took 451 MB with 3,048 in flight. Now a worker holds at
    most 16 MiB of messages larger than 512 bytes; past that, large queries
    are answered SERVFAIL at once and counted in `overflow`. 800 such queries,
    each sent once the previous one has been taken (reached the upstream or
    came back SERVFAIL): at most 16 MiB / 65,000 = 258 reach the upstream,
    the others get SERVFAIL with their own ID, overflow counts them, and
    VmRSS grows by less than 32 MB (the old code: every one forwarded,
    +52 MB of messages at least)."""
    srv = fault_server(silent=True)
    d = dnsmux("--timeout", "6000", "--circuit-stall", "30000", upstream=srv.url("tcp"))
    n, size = 800, 65000
    rss0 = vm_rss_kb(d.pid)
    load_end = time.monotonic() + 4.0  # before the first query's --timeout frees its memory
    servfails, lost = {}, 0
    with helpers.udp_socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.setblocking(False)

        def taken():
            while select.select([s], [], [], 0)[0]:
                data = s.recv(65535)
                servfails[data[:2]] = data
            return len(srv.queries()) + len(servfails)

        for i in range(n):
            if time.monotonic() > load_end:
                n = i
                break
            w = sized_query("q%d.large.example." % i, size, i)
            before = taken()
            s.sendto(w, ("127.0.0.1", d.port))
            if not wait_until(lambda: taken() > before, 2.0, interval=0.002):
                lost += 1  # (dropped by the kernel: dnsmux's socket buffer was full)
            if servfails.get(w[:2]) is not None:
                r = servfails[w[:2]]
                assert helpers.rcode_of(r) == dns.rcode.SERVFAIL and r[2] & 0x80, r[:4].hex()
                assert helpers.question_bytes(r) == helpers.question_bytes(w)
        grew_kb = vm_rss_kb(d.pid) - rss0
    forwarded = len(srv.queries())
    st = d.stats()
    figures = "%d sent, %d lost, %d reached the upstream, %d SERVFAIL at once, overflow %d, VmRSS +%d kB" % (
        n, lost, forwarded, len(servfails), st["overflow"], grew_kb)
    print(figures)
    assert n - lost > QUERY_HEAP_MAX // size + 100, "load too small to tell: " + figures
    assert forwarded <= QUERY_HEAP_MAX // size, figures
    assert st["overflow"] >= n - lost - QUERY_HEAP_MAX // size, figures
    assert len(servfails) == st["overflow"], figures
    assert grew_kb < 32 * 1024, figures


# ---------------------------------------------------------------------------
# Fault 8: only a query answered by way of the upstream is a client's activity

NOT_QUERIES = {
    "empty_frame": b"",  # a zero-length frame
    "short": struct.pack("!HHHHH", 0x7777, 0x0100, 1, 0, 0) + b"\x00",  # 11 bytes: dropped, `malformed`
    "response": struct.pack("!HHHHHH", 0x5151, 0x8180, 1, 0, 0, 0) + b"\x03www\x04test\x00\x00\x01\x00\x01",
    "formerr": struct.pack("!HHHHHH", 0x1111, 0x0100, 1, 0, 0, 0),  # a header and no question: FORMERR
}
TRICKLE_S = 0.3  # one such message this often: far more often than --tcp-idle


def trickle_until_closed(socks, msg, limit):
    """Send msg (framed) on each socket every TRICKLE_S until dnsmux closes
    it or limit seconds pass; whatever dnsmux answers is read and
    discarded. Returns {index: seconds until closed} for the closed ones."""
    t0 = time.monotonic()
    closed = {}
    while len(closed) < len(socks) and time.monotonic() - t0 < limit:
        for i, s in enumerate(socks):
            if i in closed:
                continue
            try:
                s.sendall(helpers.frame(msg))
            except OSError:
                closed[i] = time.monotonic() - t0
        step_end = time.monotonic() + TRICKLE_S
        for i, s in enumerate(socks):
            if i not in closed and helpers.wait_closed(s, max(0.0, step_end - time.monotonic())) is not None:
                closed[i] = time.monotonic() - t0
    return closed


@pytest.mark.parametrize("kind", sorted(NOT_QUERIES))
def test_messages_that_are_no_query_do_not_hold_a_connection(knotd, dnsmux, kind):
    """Fault 8: a zero-length frame counted as a message and restarted the
    --tcp-idle clock although it was dropped (probe: one a second kept 10 of
    10 connections open for 15 s); so did frames shorter than a header,
    QR=1 messages and messages answered FORMERR. With --tcp-idle 1500, two
    clients sending one such message every 0.3 s are both closed within
    the idle time (+ margin)."""
    d = dnsmux("--tcp-idle", "1500", upstream=knotd.url("tcp"))
    limit = 1.5 + 2 * MARGIN + 1.0
    socks = [helpers.tcp_connect(d.port) for _ in range(2)]
    try:
        closed = trickle_until_closed(socks, NOT_QUERIES[kind], limit)
    finally:
        for s in socks:
            s.close()
    assert len(closed) == 2, "%s every %.1fs kept %d of 2 connections open for %.1fs (--tcp-idle 1500)" % (
        kind, TRICKLE_S, 2 - len(closed), limit)
    assert d.alive()


def test_tricklers_do_not_hold_client_slots(knotd, dnsmux):
    """Fault 8, the consequence: 20 clients sending empty frames held every
    --tcp-max-clients slot while a real client was rejected. With
    --tcp-max-clients 4 --tcp-idle 1500 and 4 clients sending an empty
    frame every 0.3 s (and which do not close their end when dnsmux closes
    its own), a real client gets its answer once the idle time and the
    drain's linger (2 s: dnsmux waits that long for their FIN) are up."""
    from test_tcp_frontend import query_on
    d = dnsmux("--tcp-idle", "1500", "--tcp-max-clients", "4", upstream=knotd.url("tcp"))
    tricklers = [helpers.tcp_connect(d.port) for _ in range(4)]
    served = []
    try:
        assert wait_until(lambda: tcp_clients(d.pid, d.port) == 4, 5.0), "the 4 tricklers are not all connected"
        limit = 1.5 + 2.0 + 2 * MARGIN + 1.0
        t0 = time.monotonic()
        runner = threading.Thread(target=lambda: trickle_until_closed(tricklers, b"", limit), daemon=True)
        runner.start()

        def real_client_served():
            try:
                with helpers.tcp_connect(d.port, timeout=1.0) as s:
                    ok = query_on(s, 1.0)
            except OSError:
                ok = False
            served.append((round(time.monotonic() - t0, 2), ok))
            return ok

        ok = wait_until(real_client_served, limit, interval=0.2)
        runner.join(limit + 2)
    finally:
        for s in tricklers:
            s.close()
    assert served and not served[0][1], "the first real client was served: the 4 slots were not all taken"
    assert ok, "no real client served within %.1fs while 4 clients sent empty frames: %s" % (limit, served)


# ---------------------------------------------------------------------------
# Fault 9: UDP answers near 64 KB


class BigAnswerServer:
    """A TCP DNS upstream that answers every query with a message of exactly
    `size` bytes: the question, one TXT record and an OPT record. The bytes
    of the answer record it sent last: .last_records."""

    def __init__(self, size):
        self.size = size
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.last_records = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def url(self):
        return "tcp://127.0.0.1:%d" % self.port

    def answer(self, q):
        qend = 12 + len(helpers.question_bytes(q))
        opt = b"\x00" + struct.pack("!HHIH", 41, 65535, 0, 0)
        # one TXT record filling the rest: strings of 255 bytes (the last shorter)
        left, data = self.size - qend - len(opt) - 12, b""
        while left:
            c = min(256, left)
            data += bytes([c - 1]) + bytes([97 + len(data) % 26]) * (c - 1)
            left -= c
        self.last_records = struct.pack("!HHHIH", 0xC00C, 16, 1, 60, len(data)) + data
        return struct.pack("!HHHHHH", int.from_bytes(q[:2], "big"), 0x8580, 1, 1, 0, 1) + q[12:qend] + \
            self.last_records + opt

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            threading.Thread(target=self._conn, args=(conn,), daemon=True).start()

    def _conn(self, conn):
        with conn:
            while not self._stop.is_set():
                try:
                    q = helpers.recv_frame(conn, timeout=30.0)
                except (OSError, EOFError):
                    return
                conn.sendall(helpers.frame(self.answer(q)))

    def stop(self):
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def big_answer_server():
    made = []

    def make(size):
        s = BigAnswerServer(size)
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


def test_udp_answer_near_64k(big_answer_server, dnsmux):
    """Fault 9: a UDP client advertising EDNS 65535 got no reply at all to
    a 65,508-65,535-byte answer: it was not truncated (the client said it
    could take it), then the send failed (EMSGSIZE). Whatever the client
    advertises, a UDP answer is at most 65,507 bytes over IPv4 and 65,527
    over IPv6. An upstream answer of 65,520 bytes: over IPv4 the client gets
    it truncated to fit (TC=1, its ID and question), not silence; over ::1
    (if there is IPv6 loopback) the same answer fits and arrives whole."""
    srv = big_answer_server(65520)
    p4 = free_port()
    listen = ["127.0.0.1:%d" % p4]
    p6 = free_port("::1") if have_ipv6_loopback() else None
    if p6:
        listen.append("[::1]:%d" % p6)
    d = dnsmux(upstream=srv.url(), listen=listen)
    q = helpers.make_query("big.answer.test.", "TXT", edns=65535)
    qw = q.to_wire()
    if p6:
        rw = helpers.udp_exchange(qw, p6, host="::1", timeout=5.0)
        assert not rw[2] & 0x02, "TC=1 over IPv6 for an answer of 65,520 bytes (%d bytes came)" % len(rw)
        assert rw[:2] == qw[:2] and helpers.question_bytes(rw) == helpers.question_bytes(qw)
        assert srv.last_records in rw, "the 65,520-byte answer did not arrive whole over IPv6 (%d bytes)" % len(rw)
    try:
        rw = helpers.udp_exchange(qw, p4, timeout=2.0 + MARGIN)
    except socket.timeout:
        pytest.fail("no reply over IPv4 to a 65,520-byte answer (EDNS 65535); send_errors %s"
                    % d.stats().total.get("send_errors"))
    assert len(rw) <= 65507, len(rw)
    assert rw[2] & 0x02, "no TC=1 on an answer that could not be sent whole over IPv4"
    assert rw[:2] == qw[:2] and helpers.question_bytes(rw) == helpers.question_bytes(qw)
    assert helpers.rcode_of(rw) == dns.rcode.NOERROR
    assert d.stats()["send_errors"] == 0
