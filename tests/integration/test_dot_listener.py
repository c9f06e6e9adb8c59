"""The DNS-over-TLS listener (--listen tls://ADDR:PORT --tls-cert --tls-key):
real clients (kdig, dnspython), RFC 7766 pipelining over TLS, RFC 8467
padding of answers to 468-byte blocks, certificate reload on SIGHUP, the
handshake timeout, and the TCP client limits applied to DoT clients.
Origin: knotd over TCP."""

import os
import shutil
import signal
import socket
import ssl
import subprocess
import time

import dns.message
import dns.query
import dns.rcode
import pytest

import helpers
from conftest import MARGIN, free_port, tls_client_context, wait_until
from fault_server import answer_a
from pki import SERVER_NAME

PAD_OPT = 12
KDIG = shutil.which("kdig") or "/usr/bin/kdig"


def start_dot(dnsmux, pki, upstream, tmp_path, *args, cert="server"):
    """dnsmux with a DoT listener on 127.0.0.1:<free port> (returned as
    .port) serving a copy of pki's certificate `cert` from tmp_path/tls/
    (so a test can replace the files)."""
    cdir = tmp_path / "tls"
    cdir.mkdir(exist_ok=True)
    shutil.copyfile(pki.cert_file(cert), cdir / "cert.pem")
    shutil.copyfile(pki.key_file(cert), cdir / "key.pem")
    port = free_port()
    d = dnsmux("--tls-cert", cdir / "cert.pem", "--tls-key", cdir / "key.pem", *args,
               upstream=upstream, listen=["tls://127.0.0.1:%d" % port])
    d.port = port
    d.cert_dir = cdir
    return d


def dot_connect(port, pki, timeout=5.0, session=None):
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        return tls_client_context(pki.ca_file).wrap_socket(raw, server_hostname=SERVER_NAME, session=session)
    except BaseException:
        raw.close()
        raise


def exchange(sock, qname, rdtype="A", edns=1232):
    q = helpers.make_query(qname, rdtype, edns=edns)
    w = q.to_wire()
    sock.sendall(helpers.frame(w))
    r = helpers.recv_frame(sock, 5.0)
    return w, r


# ---------------------------------------------------------------------------
# Real clients


def test_kdig_over_tls(knotd, pki, dnsmux, tmp_path):
    d = start_dot(dnsmux, pki, knotd.url("tcp"), tmp_path)
    out = subprocess.run([KDIG, "+tls", "+tls-ca=%s" % pki.ca_file, "+tls-hostname=%s" % SERVER_NAME,
                          "@127.0.0.1", "-p", str(d.port), "+timeout=3", "+retry=0", "www.test.", "A"],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "status: NOERROR" in out.stdout, out.stdout
    assert helpers.WWW_A in out.stdout, out.stdout
    assert "TLS session" in out.stdout, out.stdout
    assert d.stats()["tls_clients"] >= 1


@pytest.mark.parametrize("cert", ["server", "ecdsa"])
def test_dnspython_over_tls(knotd, pki, dnsmux, tmp_path, cert):
    d = start_dot(dnsmux, pki, knotd.url("tcp"), tmp_path, cert=cert)
    ctx = tls_client_context(pki.ca_file)
    for name, rdtype in [("www.test.", "A"), ("www.test.", "AAAA"), ("huge.test.", "TXT")]:
        q = dns.message.make_query(name, rdtype)
        r = dns.query.tls(q, "127.0.0.1", port=d.port, timeout=5, ssl_context=ctx, server_hostname=SERVER_NAME)
        assert r.id == q.id and r.rcode() == dns.rcode.NOERROR
        assert helpers.rdata_set(r) == helpers.expected_rdata(name, rdtype), name
    with dot_connect(d.port, pki) as s:
        assert s.getpeercert(binary_form=True) == pki.der(cert)


# ---------------------------------------------------------------------------
# RFC 7766 over TLS


def test_pipelined_queries_on_one_tls_connection(knotd, pki, dnsmux, tmp_path):
    """50 queries written at once on one TLS connection: all answered right
    (matched by ID, any order), and the connection stays usable."""
    d = start_dot(dnsmux, pki, knotd.url("tcp"), tmp_path)
    with dot_connect(d.port, pki) as s:
        qs = helpers.zone_queries(50, edns=1232)
        s.sendall(b"".join(helpers.frame(w) for _, w in qs.values()))
        problems = helpers.read_answers(s, qs)
        assert not problems, problems[:10]
        more = helpers.zone_queries(5, 100, edns=1232)
        s.sendall(b"".join(helpers.frame(w) for _, w in more.values()))
        problems = helpers.read_answers(s, more)
        assert not problems, problems[:10]
    st = d.stats()
    assert st["tls_clients"] == 1, st
    assert st["queries"] >= 55, st


def test_out_of_order_answers_over_tls(fault_server, pki, dnsmux, tmp_path):
    """An upstream that answers in reverse order: the DoT client gets every
    answer as it comes (out of order), each under its own ID."""
    srv = fault_server(reverse=8)
    d = start_dot(dnsmux, pki, srv.url("tcp"), tmp_path)
    qs = [helpers.make_query("o%d.order.example." % i, "A") for i in range(8)]
    with dot_connect(d.port, pki) as s:
        s.sendall(b"".join(helpers.frame(q.to_wire()) for q in qs))
        got = [helpers.recv_frame(s, 5.0) for _ in qs]
    by_id = {q.id: q for q in qs}
    order = []
    for r in got:
        q = by_id.pop(int.from_bytes(r[:2], "big"))
        assert not helpers.check_answer(q.to_wire(), r, {answer_a(q.question[0].name)})
        order.append(q.id)
    assert not by_id
    assert order != [q.id for q in qs], "answers came back in query order from a reversing upstream"


# ---------------------------------------------------------------------------
# Padding (RFC 8467: responses padded to 468-byte blocks)


@pytest.mark.parametrize("kind", ["edns-padding", "edns", "noedns"])
def test_answer_padding(knotd, pki, dnsmux, tmp_path, kind):
    """Answers to queries with EDNS (with or without the client's own
    Padding option) carry one Padding option and are a multiple of 468
    bytes; a query without EDNS gets an answer without an OPT record."""
    d = start_dot(dnsmux, pki, knotd.url("tcp"), tmp_path)
    with dot_connect(d.port, pki) as s:
        for name, rdtype in [("www.test.", "A"), ("n42.test.", "AAAA"), ("big.test.", "TXT"),
                             ("huge.test.", "TXT")]:
            if kind == "noedns":
                q = dns.message.make_query(name, rdtype, use_edns=False)
            elif kind == "edns":
                q = dns.message.make_query(name, rdtype, use_edns=0, payload=1232)
            else:
                q = dns.message.make_query(name, rdtype, use_edns=0, payload=1232, pad=128)
            w = q.to_wire()
            s.sendall(helpers.frame(w))
            rw = helpers.recv_frame(s, 5.0)
            assert not helpers.check_answer(w, rw, helpers.expected_rdata(name, rdtype)), name
            r = dns.message.from_wire(rw)
            if kind == "noedns":
                assert r.edns < 0, "%s: answer to a query without EDNS has an OPT record" % name
                continue
            codes = [o.otype for o in r.options] if r.edns >= 0 else None
            assert codes is not None, "%s: answer to an EDNS query has no OPT record" % name
            assert codes.count(PAD_OPT) == 1, "%s: options %s" % (name, codes)
            assert len(rw) % 468 == 0, "%s: answer is %d bytes, not a multiple of 468" % (name, len(rw))


# ---------------------------------------------------------------------------
# Certificate reload


def test_sighup_reloads_certificate(knotd, pki, dnsmux, tmp_path):
    """Certificate and key files replaced, then SIGHUP: new connections get
    the new certificate; a connection made before keeps working."""
    d = start_dot(dnsmux, pki, knotd.url("tcp"), tmp_path, "--tcp-idle", "30000")
    old = dot_connect(d.port, pki)
    try:
        assert old.getpeercert(binary_form=True) == pki.der("server")
        w, r = exchange(old, "www.test.")
        assert not helpers.check_answer(w, r, {helpers.WWW_A})

        new_name = "reload-%d" % os.getpid()
        pki.issue(new_name, kind="ecdsa")
        for src, dst in ((pki.cert_file(new_name), "cert.pem"), (pki.key_file(new_name), "key.pem")):
            shutil.copyfile(src, d.cert_dir / (dst + ".new"))
            os.replace(d.cert_dir / (dst + ".new"), d.cert_dir / dst)
        d.send_signal(signal.SIGHUP)

        def new_cert_seen():
            with dot_connect(d.port, pki) as s:
                return s.getpeercert(binary_form=True) == pki.der(new_name)

        assert wait_until(new_cert_seen, 3.0, interval=0.1), "new connections still get the old certificate"
        with dot_connect(d.port, pki) as s:
            w, r = exchange(s, "a.test.")
            assert not helpers.check_answer(w, r, helpers.expected_rdata("a.test.", "A"))

        # the connection made before the reload still answers
        qs = helpers.zone_queries(5, edns=1232)
        old.sendall(b"".join(helpers.frame(w) for _, w in qs.values()))
        problems = helpers.read_answers(old, qs)
        assert not problems, problems
        assert old.getpeercert(binary_form=True) == pki.der("server")
    finally:
        old.close()
    assert d.alive()


# ---------------------------------------------------------------------------
# Timeouts: the handshake, slow clients


def test_handshake_timeout(knotd, pki, dnsmux, tmp_path):
    """A client that connects and never sends a ClientHello is closed after
    --tls-handshake-timeout (not --tcp-idle, which is long here)."""
    d = start_dot(dnsmux, pki, knotd.url("tcp"), tmp_path, "--tls-handshake-timeout", "600",
                  "--tcp-idle", "20000")
    with helpers.tcp_connect(d.port) as s:
        closed = helpers.wait_closed(s, 0.6 + 2 * MARGIN + 1.0)
    assert closed is not None, "connection without a ClientHello still open"
    assert closed >= 0.45, "closed after %.2fs, before the handshake timeout" % closed
    # a client that completed its handshake is held by --tcp-idle instead
    with dot_connect(d.port, pki) as s:
        assert helpers.wait_closed(s, 0.6 + MARGIN + 0.5) is None, "handshaken connection closed by the handshake timer"
        w, r = exchange(s, "www.test.")
        assert not helpers.check_answer(w, r, {helpers.WWW_A})


def client_hello(pki):
    """The bytes of a real TLS ClientHello for dns.test."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = tls_client_context(pki.ca_file).wrap_bio(inc, out, server_hostname=SERVER_NAME)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def dribble(sock_send, data, limit, per_byte=1.0, closed=None):
    """Send data one byte per `per_byte` seconds until the peer closes or
    `limit` seconds pass. Returns (seconds until closed or None, bytes
    sent)."""
    t0 = time.monotonic()
    sent = 0
    for b in data:
        if time.monotonic() - t0 > limit:
            return None, sent
        try:
            sock_send(bytes([b]))
        except (ssl.SSLError, ConnectionError, OSError):
            return time.monotonic() - t0, sent
        sent += 1
        c = closed(min(per_byte, max(0.0, limit - (time.monotonic() - t0))))
        if c is not None:
            return time.monotonic() - t0, sent
    return None, sent


def test_slow_client_hello_closed(knotd, pki, dnsmux, tmp_path):
    """A ClientHello sent at one byte per second: the handshake timeout is
    a deadline for the whole handshake, not reset by each byte."""
    d = start_dot(dnsmux, pki, knotd.url("tcp"), tmp_path, "--tls-handshake-timeout", "1500",
                  "--tcp-idle", "20000")
    hello = client_hello(pki)
    assert len(hello) > 50
    limit = 1.5 + 2 * MARGIN + 1.0
    with helpers.tcp_connect(d.port) as s:
        closed, sent = dribble(s.sendall, hello, limit, closed=lambda t: helpers.wait_closed(s, t))
    assert closed is not None, "slow ClientHello held the connection for %.1fs (%d bytes sent)" % (limit, sent)
    assert sent < len(hello)


def test_slow_query_after_handshake_closed(knotd, pki, dnsmux, tmp_path):
    """After a completed handshake and one answered query, a client that
    sends its next query one byte (one TLS record) per second cannot keep
    the connection beyond --tcp-idle: bytes that do not complete a
    message do not count as activity."""
    d = start_dot(dnsmux, pki, knotd.url("tcp"), tmp_path, "--tls-handshake-timeout", "1500",
                  "--tcp-idle", "1500")
    with dot_connect(d.port, pki) as s:
        w, r = exchange(s, "www.test.")
        assert not helpers.check_answer(w, r, {helpers.WWW_A})
        q = helpers.frame(helpers.make_query("n1.test.", "A").to_wire())
        limit = 1.5 + 2 * MARGIN + 1.0
        closed, sent = dribble(s.sendall, q, limit, closed=lambda t: helpers.wait_closed(s, t))
    assert closed is not None, "a client dribbling one byte per second held the connection for %.1fs " \
        "(%d of %d bytes sent)" % (limit, sent, len(q))
    assert d.alive()


# ---------------------------------------------------------------------------
# TCP client limits apply to DoT clients


def test_idle_dot_connection_closed(knotd, pki, dnsmux, tmp_path):
    d = start_dot(dnsmux, pki, knotd.url("tcp"), tmp_path, "--tcp-idle", "700")
    with dot_connect(d.port, pki) as s:
        w, r = exchange(s, "www.test.")
        assert not helpers.check_answer(w, r, {helpers.WWW_A})
        closed = helpers.wait_closed(s, 0.7 + 2 * MARGIN + 1.0)
    assert closed is not None, "idle DoT connection not closed"
    assert closed >= 0.5, "closed after %.2fs, before --tcp-idle" % closed


def test_max_clients_applies_to_dot(knotd, pki, dnsmux, tmp_path):
    """--tcp-max-clients 2: a third DoT client is closed at once; the first
    two keep working."""
    d = start_dot(dnsmux, pki, knotd.url("tcp"), tmp_path, "--tcp-max-clients", "2", "--tcp-idle", "20000")
    a = dot_connect(d.port, pki)
    b = dot_connect(d.port, pki)
    try:
        for s in (a, b):
            w, r = exchange(s, "www.test.")
            assert not helpers.check_answer(w, r, {helpers.WWW_A})
        rejected = False
        try:
            with dot_connect(d.port, pki, timeout=3.0) as c:
                c.sendall(helpers.frame(helpers.make_query("www.test.", "A").to_wire()))
                rejected = helpers.wait_closed(c, 2.0) is not None
        except (ssl.SSLError, ConnectionError, OSError):
            rejected = True
        assert rejected, "third DoT client was served with --tcp-max-clients 2"
        for s in (a, b):
            w, r = exchange(s, "a.test.")
            assert not helpers.check_answer(w, r, helpers.expected_rdata("a.test.", "A"))
    finally:
        a.close()
        b.close()
    assert d.stats()["tcp_rejected"] >= 1


def test_pipeline_cap_applies_to_dot(fault_server, pki, dnsmux, tmp_path):
    """--tcp-pipeline 4 with a slow upstream: 12 queries written at once on
    one DoT connection reach the upstream at most 4 at a time; all are
    answered."""
    srv = fault_server(delay=0.3)
    d = start_dot(dnsmux, pki, srv.url("tcp"), tmp_path, "--tcp-pipeline", "4", "--timeout", "5000",
                  "--circuit-stall", "5000")
    qs = [helpers.make_query("c%d.cap.example." % i, "A") for i in range(12)]
    with dot_connect(d.port, pki) as s:
        s.sendall(b"".join(helpers.frame(q.to_wire()) for q in qs))
        got = [helpers.recv_frame(s, 5.0) for _ in qs]
    by_id = {q.id: q for q in qs}
    for r in got:
        q = by_id.pop(int.from_bytes(r[:2], "big"))
        assert not helpers.check_answer(q.to_wire(), r, {answer_a(q.question[0].name)})
    assert srv.max_outstanding <= 4, "upstream saw %d queries in flight at once" % srv.max_outstanding
