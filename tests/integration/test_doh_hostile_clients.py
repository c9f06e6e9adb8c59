"""DoH clients that send what fuzz/fuzz_doh.c sends (fuzz/README.md,
"Findings"), on the cleartext http:// listener, with raw sockets (HTTP/1.x)
and the h2 library (HTTP/2). Origin: knotd over TCP, or a UDP port nobody
answers where an answer must stay due."""

import socket
import time

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
