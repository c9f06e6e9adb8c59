"""A scripted DNS server for the faults a real server will not produce.

One asyncio loop in a background thread serves TCP and UDP on the same
loopback port. What it does is set by keyword arguments (see FaultServer);
everything it receives is recorded in `received` so tests can check what
dnsmux sent (ID, name case, transport, pipelining, lengths, padding).

Answers are built with dnspython. The A record for any name is derived from
the name (`answer_a`), so a test can tell a right answer from a wrong one
without a zone. Bogus answers (wrong ID, wrong question, QR=0, garbage)
carry BOGUS_A, so if dnsmux ever passes one on, the client sees it.

Also here: StreamRelay, a unix-socket -> TCP byte relay (stands in for
socat UNIX-LISTEN,fork TCP:...), used to put knotd behind a unix:// upstream.
"""

import asyncio
import random
import socket
import ssl
import struct
import threading
import time
import zlib
from dataclasses import dataclass

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

import helpers

BOGUS_A = "203.0.113.66"


def answer_a(qname):
    """The A record the fault server gives for qname (case-insensitive)."""
    h = zlib.crc32(str(qname).lower().rstrip(".").encode())
    return "10.%d.%d.%d" % (100 + (h >> 16) % 100, (h >> 8) & 255, h & 255)


def result_problems(results):
    """What is wrong with helpers.Result-s (run_udp_load with expect=False)
    as answers from a fault server: no answer, or not the right ID,
    question, NOERROR and answer_a record."""
    out = []
    for r in results:
        if r.error:
            out.append("%s: %s" % (r.qname, r.error))
        else:
            out += ["%s: %s" % (r.qname, p) for p in helpers.check_answer(r.qwire, r.rwire, {answer_a(r.qname)})]
    return out


@dataclass
class Received:
    transport: str  # "tcp", "tls" or "udp"
    conn: int  # connection number (tcp, from 0 in accept order) or -1 (udp)
    t: float  # time.monotonic() of arrival
    wire: bytes
    msg: object  # dns.message.Message, or None if unparseable
    peer: tuple = None  # sender's (address, port)

    @property
    def qid(self):
        return struct.unpack("!H", self.wire[:2])[0] if len(self.wire) >= 2 else None

    @property
    def length(self):
        return len(self.wire)

    @property
    def padding(self):
        """Length of the EDNS(0) Padding option (RFC 7830) in this query, or
        None if it has none."""
        if self.msg is None:
            return None
        for opt in self.msg.options:
            if opt.otype == 12:
                return len(opt.to_wire())
        return None

    @property
    def qname(self):
        """Question name exactly as received (case kept), or None."""
        if self.msg is None or not self.msg.question:
            return None
        return self.msg.question[0].name.to_text()


class FaultServer:
    """Scripted DNS server on host:port (TCP and UDP).

    Behaviour (all off by default; the default is a correct, prompt server):
      reverse=N          per TCP connection, collect N queries, then answer
                         them last-first (a partial batch is flushed after
                         `batch_wait` seconds without a new query)
      wrong_id=True      before each real answer, send a copy with an ID
                         that was never in flight on this connection
      wrong_question=True  before each real answer, send one with the right
                         ID but another name
      wrong_qr=True      before each real answer, send it with QR=0
      garbage=KIND       before each real answer, send junk: "short" (a 3-byte
                         frame / datagram), "random" (40 random bytes),
                         "truncated" (a header promising a question that is
                         not there), "rdlength" (the right ID and question, an
                         A record whose RDLENGTH runs past the end),
                         "header-pointer" (the same with an owner name that
                         points into the header)
      random_case=True   answer with the question name in a random case
      drop_after=K       on the first `drop_count` TCP connections, close the
                         connection as soon as the K-th query arrives (the
                         K-1 before it are answered); with a reset (RST) if
                         drop_rst, else an orderly close (FIN)
      silent=True        read queries, never answer
      silent_conns=N     the first N TCP connections are silent
      delay=S            answer each query S seconds after it arrived
      udp_tc=True        UDP answers have TC=1 and no records; TCP is normal
      rcode=RC           answer with this rcode and no records
      pad_answers=N      answers to queries that carry an EDNS Padding option
                         are padded (RFC 7830) to a multiple of N bytes
      ssl_context=CTX    the stream listener speaks DNS-over-TLS (a server
                         ssl.SSLContext, e.g. from tls_server_context());
                         queries are recorded as transport "tls". UDP stays
                         plain. `connections` counts completed handshakes.
      close_on_qname=NAME  whenever a query for NAME (any case) arrives on a
                         stream connection, close that connection at once
                         (FIN) without answering it; what was answered before
                         it is still delivered, what came after it is lost --
                         what knotd does with a message it cannot parse. (It
                         reads and drops what follows until the peer closes,
                         or 2 s: closed with bytes unread, a socket is reset
                         and the kernel's unsent answers are lost -- which
                         lose_before_close does on purpose, reproducibly.)
      lose_before_close=N  with close_on_qname: on the first connection it
                         closes, the answers to the N queries read just
                         before NAME are never sent (answers go out N
                         queries late on it, or after batch_wait of quiet) --
                         as when a server closes with queries unread, the
                         connection is reset and what its kernel had not
                         sent yet is lost
      rcvbuf=N           SO_RCVBUF of the stream listener (accepted connections
                         inherit it, so the window they offer stays small)
      read_pause=S       after the first query on each stream connection, read
                         nothing from its socket for S seconds (queries already
                         read are still answered); with a small rcvbuf the
                         sender's writes stall part-way
    """

    def __init__(self, host="127.0.0.1", port=0, *, reverse=0, batch_wait=0.3,
                 wrong_id=False, wrong_question=False, wrong_qr=False, garbage=None,
                 random_case=False, drop_after=0, drop_count=1, drop_rst=True, silent=False,
                 silent_conns=0, delay=0.0, udp_tc=False, rcode=None, ttl=60, ssl_context=None,
                 pad_answers=0, close_on_qname=None, rcvbuf=0, read_pause=0.0, lose_before_close=0):
        self.host = host
        self.port = port
        self.reverse = reverse
        self.batch_wait = batch_wait
        self.wrong_id = wrong_id
        self.wrong_question = wrong_question
        self.wrong_qr = wrong_qr
        self.garbage = garbage
        self.random_case = random_case
        self.drop_after = drop_after
        self.drop_count = drop_count
        self.drop_rst = drop_rst
        self.silent = silent
        self.silent_conns = silent_conns
        self.delay = delay
        self.udp_tc = udp_tc
        self.rcode = rcode
        self.ttl = ttl
        self.ssl_context = ssl_context
        self.pad_answers = pad_answers
        self.stream_transport = "tls" if ssl_context is not None else "tcp"
        self.close_on_qname = dns.name.from_text(close_on_qname) if close_on_qname else None
        self.rcvbuf = rcvbuf
        self.read_pause = read_pause
        self.lose_before_close = lose_before_close
        self.answers_lost = 0  # answers never sent (lose_before_close)

        self.received = []  # list of Received, in arrival order
        self.connections = 0  # TCP connections accepted so far
        self.open_connections = 0  # TCP connections open now
        self.max_batch = 0  # most queries seen waiting at once on one connection
        self.bogus_sent = {"wrong_id": 0, "wrong_question": 0, "wrong_qr": 0, "garbage": 0}
        self.answers_sent = 0
        self.max_outstanding = 0  # most queries awaiting an answer at once on one connection
        self.dup_ids_in_flight = 0  # queries whose ID was already awaiting an answer on that connection
        self.closed_on_qname = 0  # connections closed by close_on_qname
        self.read_pauses = 0  # connections whose reading read_pause has held back
        self._rng = random.Random(4242)
        self._loop = None
        self._thread = None
        self._tcp_server = None
        self._udp_transport = None
        self._tasks = set()
        self._writers = set()

    # -- life cycle ---------------------------------------------------------

    def start(self, timeout=10.0):
        ready = threading.Event()
        err = []

        def run():
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._open())
            except Exception as e:  # reported to start()
                err.append(e)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._close())
            tasks = [t for t in asyncio.all_tasks(self._loop) if not t.done()]
            for t in tasks:
                t.cancel()
            self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self._loop.close()

        self._thread = threading.Thread(target=run, name="fault-server", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError("fault server did not start")
        if err:
            raise err[0]
        return self

    def stop(self):
        if self._loop and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def url(self, scheme="tcp"):
        return "%s://%s:%d" % (scheme, self.host, self.port)

    def stream_queries(self):
        """Queries received over the stream listener (TCP or TLS)."""
        return self.queries(self.stream_transport)

    async def _open(self):
        fam = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        if self.rcvbuf:
            # SO_RCVBUF must be set before listen(): the window is agreed at the handshake
            lsock = socket.socket(fam, socket.SOCK_STREAM)
            lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            lsock.bind((self.host, self.port))
            lsock.listen(128)
            self._tcp_server = await asyncio.start_server(self._on_conn, sock=lsock, ssl=self.ssl_context)
        else:
            self._tcp_server = await asyncio.start_server(self._on_conn, self.host, self.port, family=fam,
                                                          reuse_address=True, ssl=self.ssl_context)
        self.port = self._tcp_server.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        self._udp_transport, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(self), local_addr=(self.host, self.port), family=fam)

    async def _close(self):
        self._tcp_server.close()
        self._udp_transport.close()
        for w in list(self._writers):
            w.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.sleep(0)

    def _spawn(self, coro):
        t = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return t

    # -- queries for the tests ------------------------------------------------

    def queries(self, transport=None):
        return [r for r in list(self.received) if transport is None or r.transport == transport]

    def wait_received(self, n, timeout=10.0, transport=None):
        """Poll until at least n queries were received; returns the count."""
        deadline = time.monotonic() + timeout
        while True:
            k = len(self.queries(transport))
            if k >= n or time.monotonic() > deadline:
                return k
            time.sleep(0.01)

    # -- answers ------------------------------------------------------------

    def _parse(self, wire):
        try:
            return dns.message.from_wire(wire)
        except Exception:
            return None

    def _answer(self, q, *, tc=False):
        r = dns.message.make_response(q)
        r.flags |= dns.flags.AA
        if self.pad_answers and q.edns >= 0 and any(o.otype == 12 for o in q.options):
            r.use_edns(0, 0, 1232, pad=self.pad_answers)
        if self.rcode is not None:
            r.set_rcode(self.rcode)
            return r
        if tc:
            r.flags |= dns.flags.TC
            return r
        question = q.question[0]
        name = question.name
        if self.random_case:
            r.question[0] = dns.rrset.RRset(_recase(name, self._rng), question.rdclass, question.rdtype)
        if question.rdtype == dns.rdatatype.A and question.rdclass == dns.rdataclass.IN:
            r.answer.append(dns.rrset.from_text(name, self.ttl, "IN", "A", answer_a(name)))
        return r

    def _bogus(self, q, used_ids):
        """Wire messages to send before the real answer, per the script."""
        out = []
        if self.wrong_id:
            r = dns.message.make_response(q)
            while True:
                r.id = self._rng.randrange(65536)
                if r.id not in used_ids:
                    break
            r.answer.append(dns.rrset.from_text(q.question[0].name, self.ttl, "IN", "A", BOGUS_A))
            out.append(("wrong_id", r.to_wire()))
        if self.wrong_question:
            r = dns.message.make_response(q)
            other = dns.name.from_text("other-" + q.question[0].name.labels[0].decode("ascii", "replace"),
                                       q.question[0].name.parent())
            r.question[0] = dns.rrset.RRset(other, q.question[0].rdclass, q.question[0].rdtype)
            r.answer.append(dns.rrset.from_text(other, self.ttl, "IN", "A", BOGUS_A))
            out.append(("wrong_question", r.to_wire()))
        if self.wrong_qr:
            r = dns.message.make_response(q)
            r.answer.append(dns.rrset.from_text(q.question[0].name, self.ttl, "IN", "A", BOGUS_A))
            w = bytearray(r.to_wire())
            w[2] &= 0x7F
            out.append(("wrong_qr", bytes(w)))
        if self.garbage == "short":
            out.append(("garbage", b"\x12\x34\x81"))
        elif self.garbage == "random":
            out.append(("garbage", bytes(self._rng.randrange(256) for _ in range(40))))
        elif self.garbage == "truncated":
            # Right ID, QR=1, QDCOUNT=1, ANCOUNT=1, then the message ends.
            out.append(("garbage", q.to_wire()[:2] + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00"))
        elif self.garbage in ("rdlength", "header-pointer"):
            # Right ID, QR=1 and question; then an A record whose RDLENGTH (255)
            # runs past the message, or whose owner name points into the header
            # (offset 5: QDCOUNT and ANCOUNT read as labels there).
            qw = q.to_wire()
            qend = 12 + len(q.question[0].name.to_wire()) + 4
            owner = b"\xc0\x0c" if self.garbage == "rdlength" else b"\xc0\x05"
            rdlen = b"\x00\xff" if self.garbage == "rdlength" else b"\x00\x04"
            out.append(("garbage", qw[:2] + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00" + qw[12:qend] + owner
                        + b"\x00\x01\x00\x01\x00\x00\x01\x2c" + rdlen + b"\xcb\x00\x71\x42"))
        return out

    # -- TCP ----------------------------------------------------------------

    async def _on_conn(self, reader, writer):
        conn = self.connections
        self.connections += 1
        self.open_connections += 1
        self._writers.add(writer)
        task = asyncio.current_task()
        self._tasks.add(task)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        state = _ConnState(conn)
        state.peer = writer.get_extra_info("peername")
        try:
            await self._serve_conn(reader, writer, state)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.open_connections -= 1
            self._writers.discard(writer)
            self._tasks.discard(task)
            if state.flush_task:
                state.flush_task.cancel()
            writer.close()

    async def _serve_conn(self, reader, writer, state):
        silent = self.silent or state.conn < self.silent_conns
        while True:
            hdr = await reader.readexactly(2)
            (ln,) = struct.unpack("!H", hdr)
            wire = await reader.readexactly(ln)
            q = self._parse(wire)
            self.received.append(Received(self.stream_transport, state.conn, time.monotonic(), wire, q,
                                          state.peer[:2] if state.peer else None))
            state.count += 1
            if q is not None:
                state.ids.add(q.id)
                if q.id in state.outstanding:
                    self.dup_ids_in_flight += 1
                state.outstanding.add(q.id)
                self.max_outstanding = max(self.max_outstanding, len(state.outstanding))
            if state.count == 1 and self.read_pause:
                self._pause_reading(writer, self.read_pause)
            if self.close_on_qname is not None and q is not None and q.question \
                    and q.question[0].name == self.close_on_qname:
                self.closed_on_qname += 1
                self.answers_lost += len(state.held)
                state.held = []
                writer.write_eof()  # FIN after what is already written: the answers before this query
                try:
                    await asyncio.wait_for(self._drain_input(reader), 2.0)
                except (asyncio.TimeoutError, ConnectionError):
                    pass
                writer.close()
                return
            if self.drop_after and state.conn < self.drop_count and state.count >= self.drop_after:
                # Drop the connection: the queries still waiting are lost.
                if self.drop_rst:
                    sock = writer.get_extra_info("socket")
                    if sock is not None:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                else:
                    writer.close()
                return
            if silent or q is None or not q.question:
                continue
            if self.reverse:
                state.batch.append(q)
                self.max_batch = max(self.max_batch, len(state.batch))
                if len(state.batch) >= self.reverse:
                    self._flush(writer, state)
                else:
                    if state.flush_task:
                        state.flush_task.cancel()
                    state.flush_task = self._spawn(self._flush_later(writer, state))
                continue
            if self.delay:
                self._spawn(self._send_later(writer, state, [q], self.delay))
            elif self.lose_before_close and self.closed_on_qname == 0:
                self._hold(writer, state, q)
            else:
                self._send_tcp(writer, state, [q])

    @staticmethod
    async def _drain_input(reader):
        while await reader.read(65536):
            pass

    def _hold(self, writer, state, q):
        """lose_before_close: answer N queries late (or after batch_wait of
        quiet), so that the N answered just before the name are unsent when
        the connection closes on it."""
        state.held.append(q)
        if len(state.held) > self.lose_before_close:
            self._send_tcp(writer, state, [state.held.pop(0)])
        if state.flush_task:
            state.flush_task.cancel()

        async def release():
            await asyncio.sleep(self.batch_wait)
            state.flush_task = None
            held, state.held = state.held, []
            self._send_tcp(writer, state, held)
        state.flush_task = self._spawn(release())

    def _pause_reading(self, writer, seconds):
        """Stop reading the connection's socket for `seconds` (the kernel's
        receive buffer fills, the peer's writes stall). Over TLS the socket
        is read by the SSL protocol's own transport, under the one we hold."""
        t = writer.transport
        raw = getattr(getattr(t, "_ssl_protocol", None), "_transport", None) or t
        raw.pause_reading()
        self.read_pauses += 1
        self._loop.call_later(seconds, lambda: raw.is_closing() or raw.resume_reading())

    def _flush(self, writer, state):
        batch, state.batch = state.batch, []
        if state.flush_task:
            state.flush_task.cancel()
            state.flush_task = None
        batch.reverse()
        if self.delay:
            self._spawn(self._send_later(writer, state, batch, self.delay))
        else:
            self._send_tcp(writer, state, batch)

    async def _flush_later(self, writer, state):
        await asyncio.sleep(self.batch_wait)
        state.flush_task = None
        if state.batch:
            self._flush(writer, state)

    async def _send_later(self, writer, state, msgs, delay):
        await asyncio.sleep(delay)
        self._send_tcp(writer, state, msgs)

    def _send_tcp(self, writer, state, msgs):
        if writer.is_closing():
            return
        out = b""
        for q in msgs:
            for kind, w in self._bogus(q, state.ids):
                self.bogus_sent[kind] += 1
                out += struct.pack("!H", len(w)) + w
            w = self._answer(q).to_wire()
            out += struct.pack("!H", len(w)) + w
            self.answers_sent += 1
            state.outstanding.discard(q.id)
        writer.write(out)

    # -- UDP ----------------------------------------------------------------

    def _on_datagram(self, data, addr):
        q = self._parse(data)
        self.received.append(Received("udp", -1, time.monotonic(), bytes(data), q, addr[:2]))
        if self.silent or q is None or not q.question:
            return
        if self.delay:
            self._loop.call_later(self.delay, self._send_udp, q, addr)
        else:
            self._send_udp(q, addr)

    def _send_udp(self, q, addr):
        for kind, w in self._bogus(q, {q.id}):
            self.bogus_sent[kind] += 1
            self._udp_transport.sendto(w, addr)
        self._udp_transport.sendto(self._answer(q, tc=self.udp_tc).to_wire(), addr)
        self.answers_sent += 1


def tls_server_context(cert_file, key_file):
    """A server SSLContext presenting cert_file (leaf + chain) / key_file,
    TLS 1.2 and 1.3, with session tickets (Python's default)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert_file), str(key_file))
    return ctx


class _ConnState:
    def __init__(self, conn):
        self.conn = conn
        self.count = 0
        self.ids = set()  # every ID seen on this connection
        self.outstanding = set()  # IDs received and not answered yet
        self.batch = []
        self.held = []  # answers lose_before_close holds back
        self.flush_task = None
        self.peer = None


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server):
        self.server = server

    def datagram_received(self, data, addr):
        self.server._on_datagram(data, addr)


def _recase(name, rng):
    labels = []
    for label in name.labels:
        labels.append(bytes(c ^ 0x20 if (65 <= c <= 90 or 97 <= c <= 122) and rng.random() < 0.5 else c
                            for c in label))
    return dns.name.Name(labels)


class StreamRelay:
    """Listen on a unix stream socket; relay each accepted connection to a
    TCP server (like `socat UNIX-LISTEN:path,fork TCP:host:port`)."""

    def __init__(self, path, host, port):
        self.path = path
        self.host = host
        self.port = port
        self.accepted = 0
        self._loop = None
        self._thread = None
        self._server = None
        self._writers = set()

    def start(self, timeout=10.0):
        ready = threading.Event()
        err = []

        def run():
            self._loop = asyncio.new_event_loop()
            try:
                self._server = self._loop.run_until_complete(
                    asyncio.start_unix_server(self._on_conn, path=self.path))
            except Exception as e:
                err.append(e)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()
            self._server.close()
            for w in list(self._writers):
                w.close()
            tasks = [t for t in asyncio.all_tasks(self._loop) if not t.done()]
            for t in tasks:
                t.cancel()
            self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self._loop.close()

        self._thread = threading.Thread(target=run, name="unix-relay", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError("relay did not start")
        if err:
            raise err[0]
        return self

    def stop(self):
        if self._loop and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    async def _on_conn(self, creader, cwriter):
        self.accepted += 1
        try:
            ureader, uwriter = await asyncio.open_connection(self.host, self.port)
        except OSError:
            cwriter.close()
            return
        self._writers |= {cwriter, uwriter}

        async def pipe(r, w):
            try:
                while True:
                    data = await r.read(65536)
                    if not data:
                        break
                    w.write(data)
                    await w.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                w.close()
                self._writers.discard(w)

        await asyncio.gather(pipe(creader, uwriter), pipe(ureader, cwriter))


if __name__ == "__main__":
    # Manual use: python3 fault_server.py PORT [key=value ...], e.g. reverse=10
    import sys

    kw = {}
    for arg in sys.argv[2:]:
        k, v = arg.split("=", 1)
        kw[k] = float(v) if "." in v else (int(v) if v.isdigit() else (v == "1" or v))
    srv = FaultServer(port=int(sys.argv[1]), **kw).start()
    print("fault server on 127.0.0.1:%d %r" % (srv.port, kw), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        srv.stop()
