"""Listeners: IPv6, several at once, UDP-only and TCP-only, and the
--bind-udp/--connect-tcp aliases of the dnsfwd prototype."""

import socket

import pytest

import helpers
from conftest import free_port, have_ipv6_loopback, tcp_established, wait_until

needs_ipv6 = pytest.mark.skipif(not have_ipv6_loopback(), reason="no IPv6 loopback")


def udp_ok(port, host="127.0.0.1", name="www.test."):
    _, qw, rw, _ = helpers.udp_query(port, name, "A", host=host)
    return not helpers.check_answer(qw, rw, helpers.expected_rdata(name, "A"))


def tcp_ok(port, host="127.0.0.1", name="www.test."):
    _, qw, rw, _ = helpers.tcp_query(port, name, "A", host=host)
    return not helpers.check_answer(qw, rw, helpers.expected_rdata(name, "A"))


def tcp_refused(port, host="127.0.0.1"):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        try:
            s.connect((host, port))
        except ConnectionRefusedError:
            return True
    return False


def udp_refused(port, host="127.0.0.1"):
    """True if a datagram to host:port draws ICMP port unreachable (nobody
    listens), seen as ECONNREFUSED on a connected socket."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    q = helpers.make_query("www.test.", "A").to_wire()
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.connect((host, port))
        try:
            s.send(q)
            s.recv(65535)
        except ConnectionRefusedError:
            return True
        except socket.timeout:
            return False
    return False


@needs_ipv6
def test_ipv6_listener(knotd, dnsmux):
    port = free_port("::1")
    dnsmux(upstream=knotd.url("tcp"), listen=["[::1]:%d" % port])
    assert udp_ok(port, "::1")
    assert tcp_ok(port, "::1")


@needs_ipv6
def test_ipv6_upstream(knotd_factory, dnsmux):
    k6 = knotd_factory(host="::1")
    d = dnsmux(upstream=k6.url("tcp"))
    assert udp_ok(d.port)
    assert wait_until(lambda: tcp_established(d.pid, k6.port) == 1, 2.0)


def test_several_listeners(knotd, dnsmux):
    p1, p2, p3, p4 = (free_port() for _ in range(4))
    listen = ["127.0.0.1:%d" % p1, "127.0.0.1:%d" % p2, "udp://127.0.0.1:%d" % p3, "tcp://127.0.0.1:%d" % p4]
    v6 = None
    if have_ipv6_loopback():
        v6 = free_port("::1")
        listen.append("[::1]:%d" % v6)
    dnsmux(upstream=knotd.url("tcp"), listen=listen)
    for p in (p1, p2):
        assert udp_ok(p, name="a.test.")
        assert tcp_ok(p, name="b.test.")
    assert udp_ok(p3, name="c.test.")
    assert tcp_ok(p4, name="d.test.")
    if v6:
        assert udp_ok(v6, "::1") and tcp_ok(v6, "::1")


def test_udp_only_listener(knotd, dnsmux):
    port = free_port()
    dnsmux(upstream=knotd.url("tcp"), listen=["udp://127.0.0.1:%d" % port])
    assert udp_ok(port)
    assert tcp_refused(port), "udp:// listener also accepts TCP"


def test_tcp_only_listener(knotd, dnsmux):
    port = free_port()
    dnsmux(upstream=knotd.url("tcp"), listen=["tcp://127.0.0.1:%d" % port])
    assert tcp_ok(port)
    assert udp_refused(port), "tcp:// listener also answers UDP"


def test_bind_udp_and_connect_tcp_aliases(knotd, dnsmux):
    port = free_port()
    d = dnsmux("--bind-udp", "127.0.0.1:%d" % port, "--connect-tcp", "127.0.0.1:%d" % knotd.port, listen=[])
    assert udp_ok(port)
    assert tcp_refused(port), "--bind-udp also listens on TCP"
    assert wait_until(lambda: tcp_established(d.pid, knotd.port) == 1, 2.0), \
        "--connect-tcp did not make a TCP circuit to the upstream"


def test_short_options(knotd, dnsmux):
    port = free_port()
    d = dnsmux("-l", "127.0.0.1:%d" % port, "-u", knotd.url("tcp"), "-t", "1", listen=[])
    assert udp_ok(port) and tcp_ok(port)
    assert d.stats()["queries"] == 2
