"""DoH clients that send what fuzz/fuzz_doh.c sends (fuzz/README.md,
"Findings"), on the cleartext http:// listener, with raw sockets (HTTP/1.x)
and the h2 library (HTTP/2). Origin: knotd over TCP, or a UDP port nobody
answers where an answer must stay due."""

import socket
import time

import h2.config
import h2.connection
import h2.events
import pytest

from conftest import free_port
from test_doh_server import b64, check_www, query_wire, start_doh


def http1(d, timeout=5.0):
    s = socket.create_connection(("127.0.0.1", d.http), timeout=timeout)
    s.settimeout(timeout)
    return s


def read_responses(s, n, timeout=5.0):
    """Up to n HTTP/1.1 responses (status, headers, body), until EOF or the
    deadline; Content-Length bodies."""
    data, out = b"", []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if sep:
            lines = head.decode().split("\r\n")
            hdrs = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
            clen = int(hdrs.get("content-length", "0"))
            if len(rest) >= clen:
                out.append((int(lines[0].split()[1]), hdrs, rest[:clen]))
                data = rest[clen:]
                continue
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
    return out


def get(path, extra=""):
    return ("GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (path, extra)).encode()


def post(body, ct="application/dns-message"):
    return (b"POST /dns-query HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
            % (ct.encode(), len(body)) + body)


@pytest.fixture
def silent_doh(dnsmux, pki):
    """A DoH listener whose upstream never answers: every query stays due
    for --timeout (1.5 s), then is answered SERVFAIL."""
    return start_doh(dnsmux, pki, "udp://127.0.0.1:%d" % free_port(), "--timeout", "1500")


def test_bytes_after_a_malformed_request_with_an_answer_due(silent_doh):
    """A query in flight, then a request http-parser rejects, then more
    bytes: dnsmux stayed up (it aborted on an assertion of http-parser's,
    pausing a parser in its error state), answers the query, then 400, then
    closes."""
    s = http1(silent_doh)
    s.sendall(get("/dns-query?dns=" + b64(query_wire())) + b"NOT HTTP\r\n\r\n")
    time.sleep(0.2)
    s.sendall(b"GET / HTTP/1.1\r\n\r\n")
    got = read_responses(s, 3, timeout=6)
    assert [st for st, _, _ in got] == [200, 400], got
    assert got[1][1].get("connection") == "close"
    assert silent_doh.alive()


def test_no_request_after_one_that_closes(silent_doh):
    """RFC 9112 9.6: nothing sent after a request with Connection: close is
    processed, even while its answer is still due."""
    s = http1(silent_doh)
    s.sendall(get("/dns-query?dns=" + b64(query_wire()), "Connection: close\r\n"))
    time.sleep(0.2)
    s.sendall(get("/nothere"))
    got = read_responses(s, 2, timeout=6)
    assert [st for st, _, _ in got] == [200], got
    assert silent_doh.stats()["doh_bad_requests"] == 0


def test_error_answers_under_the_pipeline_cap(knotd, dnsmux, pki):
    """--tcp-pipeline 1 and three pipelined requests in one segment, the
    first two answered at once (404): each is answered without waiting for
    more bytes (the second waited for the idle timeout)."""
    d = start_doh(dnsmux, pki, knotd.url("tcp"), "--tcp-pipeline", "1")
    s = http1(d)
    s.sendall(get("/a") + get("/b") + get("/dns-query?dns=" + b64(query_wire())))
    got = read_responses(s, 3, timeout=3)
    assert [st for st, _, _ in got] == [404, 404, 200], got
    check_www(got[2][2])


def test_empty_post_body(knotd, dnsmux, pki):
    """Content-Length: 0 is no DNS message: 400 (doh.c copied from a NULL
    body: undefined behaviour, fatal under UBSan)."""
    d = start_doh(dnsmux, pki, knotd.url("tcp"))
    s = http1(d)
    s.sendall(post(b""))
    assert [st for st, _, _ in read_responses(s, 1)] == [400]


def test_base64url_that_is_not(knotd, dnsmux, pki):
    """4k+1 characters are no base64 (GnuTLS dropped a last 'A' and decoded
    the rest), and after the padding only padding may come."""
    d = start_doh(dnsmux, pki, knotd.url("tcp"))
    w = query_wire()
    w += b"\x00" * (-len(w) % 3)  # a length that base64 fills exactly
    ok = b64(w)
    s = http1(d)
    s.sendall(get("/dns-query?dns=" + ok) + get("/dns-query?dns=" + ok + "A") + get("/dns-query?dns=" + ok + "%41")
              + get("/dns-query?dns=" + ok + "%3D"))
    assert [st for st, _, _ in read_responses(s, 4)] == [200, 400, 400, 200]


def test_content_type_with_ows(knotd, dnsmux, pki):
    """RFC 9110: OWS around a field value is not part of it (http-parser
    leaves the trailing one in: that was a 415); a media type with
    something after it is another one (that was taken)."""
    d = start_doh(dnsmux, pki, knotd.url("tcp"))
    s = http1(d)
    w = query_wire()
    s.sendall(post(w, "application/dns-message\t") + post(w, "Application/DNS-Message ; x=1")
              + post(w, "application/dns-message foo"))
    got = read_responses(s, 3)
    assert [st for st, _, _ in got] == [200, 200, 415], got
    check_www(got[0][2])


def h2_client(d):
    s = socket.create_connection(("127.0.0.1", d.http), timeout=5)
    c = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    s.sendall(c.data_to_send())
    return s, c


def h2_events(s, c, want, timeout=5.0):
    """Events until one of type want (or the deadline)."""
    out = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not any(isinstance(e, want) for e in out):
        data = s.recv(65536)
        if not data:
            break
        out += c.receive_data(data)
        s.sendall(c.data_to_send())
    return out


def test_head_over_http2_has_no_body(knotd, dnsmux, pki):
    """RFC 9110 9.3.2: the 405 to HEAD carries no content (h2.c sent one;
    nghttp2's own client resets such a stream)."""
    d = start_doh(dnsmux, pki, knotd.url("tcp"))
    s, c = h2_client(d)
    c.send_headers(1, [(":method", "HEAD"), (":scheme", "http"), (":authority", "x"), (":path", "/dns-query")],
                   end_stream=True)
    s.sendall(c.data_to_send())
    ev = h2_events(s, c, h2.events.StreamEnded)
    status = [dict(e.headers)[b":status"] for e in ev if isinstance(e, h2.events.ResponseReceived)]
    assert status == [b"405"], ev
    assert not [e for e in ev if isinstance(e, h2.events.DataReceived) and e.data], ev
    assert any(isinstance(e, h2.events.StreamEnded) for e in ev), ev


def test_http2_streams_open_at_close_are_freed(knotd, dnsmux, pki):
    """Streams still open when the client goes (HEADERS without END_STREAM,
    a POST body under way) are freed with the connection: nghttp2 reports
    nothing for them, and they leaked (LeakSanitizer at exit, make test)."""
    d = start_doh(dnsmux, pki, knotd.url("tcp"))
    s, c = h2_client(d)
    hdrs = [(":method", "POST"), (":scheme", "http"), (":authority", "x"), (":path", "/dns-query"),
            ("content-type", "application/dns-message")]
    c.send_headers(1, hdrs)
    c.send_headers(3, hdrs)
    c.send_data(3, query_wire()[:5])
    s.sendall(c.data_to_send())
    time.sleep(0.2)
    s.close()
    time.sleep(0.2)
    assert d.stats()["doh_h2_clients"] == 1
    # (the teardown stops dnsmux and fails on any sanitizer report)
