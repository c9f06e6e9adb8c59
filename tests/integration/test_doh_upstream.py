"""DoH upstreams (issue 8): --upstream https://IP:PORT/PATH#AUTH-NAME, an
HTTP/2 circuit -- many queries in flight as concurrent streams on ONE
connection, every circuit guarantee (requeue on reset or GOAWAY, restart
under load), authenticated as tls:// is. Origins: a second dnsmux's DoH
server in front of knotd, and dnsdist's DoH frontend (Debian's dnsdist
1.7)."""

import shutil
import subprocess

import dns.rcode
import pytest

import helpers
from conftest import (assert_one_connection, assert_restart_results, connection_sampler, free_port,
                      restart_under_load, wait_until)
from pki import SERVER_NAME
from test_doh_server import loop_name_resolution, start_doh  # noqa: F401 (a fixture)

DNSDIST = shutil.which("dnsdist") or "/usr/bin/dnsdist"


def doh_url(port, name=SERVER_NAME, extra=""):
    return "https://127.0.0.1:%d/dns-query%s#%s" % (port, extra, name)


def chained(dnsmux, pki, knotd, *args, extra="", name=SERVER_NAME):
    origin = start_doh(dnsmux, pki, knotd.url("tcp"))
    d = dnsmux("--ca-file", pki.ca_file, *args, upstream=doh_url(origin.https, name, extra))
    return origin, d


def load(d, n=2000, clients=100):
    items = [("n%d.test." % (i % helpers.N_NAMES), "A") for i in range(n)]
    results = helpers.run_udp_load(d.port, items, clients=clients, timeout=5.0)
    bad = [helpers.summarize([r]) for r in results if r.error or r.rcode != dns.rcode.NOERROR]
    assert not bad, bad[:5]
    return results


@pytest.mark.parametrize("extra", ["", "?method=get"], ids=["post", "get"])
def test_2000_queries_over_one_h2_connection(knotd, pki, dnsmux, extra):
    origin, d = chained(dnsmux, pki, knotd, extra=extra)
    with connection_sampler(d.pid, origin.https) as samp:
        load(d)
    assert_one_connection(samp, d.pid, origin.https)
    st = d.stats()
    assert st["tls_handshakes"] == 1 and st["circuits_opened"] == 1, st
    ost = origin.stats()
    assert ost["doh_h2_clients"] == 1, ost


def test_wrong_auth_name_sends_nothing(knotd, pki, dnsmux):
    origin, d = chained(dnsmux, pki, knotd, name="wrong.test")
    r = helpers.udp_query(d.port, "www.test.", timeout=5.0)[3]
    assert r.rcode() == dns.rcode.SERVFAIL
    st = d.stats()
    assert st["tls_auth_failures"] >= 1, st
    assert origin.stats()["queries"] == 0


def test_origin_restart_under_load(knotd, pki, dnsmux):
    origin, d = chained(dnsmux, pki, knotd, "--timeout", "1500")

    def down():
        origin.stop()

    def up():
        origin.start()

    results, t_down, t_ready = restart_under_load(d, down, up, 1.5)
    assert_restart_results(d, results, t_down, t_ready, 1.5, origin="the DoH origin")


DNSDIST_CONF = """\
setSecurityPollSuffix("")
setLocal("127.0.0.1:{dns_port}")
addDOHLocal("127.0.0.1:{doh_port}", "{cert}", "{key}", "/dns-query")
newServer({{address="127.0.0.1:{origin}", tcpOnly=true, checkName="www.test."}})
"""


@pytest.fixture
def dnsdist_doh(tmp_path, pki, knotd):
    dns_port, doh_port = free_port(), free_port()
    conf = tmp_path / "dnsdist.conf"
    conf.write_text(DNSDIST_CONF.format(dns_port=dns_port, doh_port=doh_port, cert=pki.cert_file("server"),
                                        key=pki.key_file("server"), origin=knotd.port))
    p = subprocess.Popen([DNSDIST, "--supervised", "--disable-syslog", "-C", str(conf)], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import conftest
    conftest._children.append(p)

    def ready():
        try:
            return helpers.udp_query(dns_port, "www.test.", timeout=0.5)[3].rcode() == dns.rcode.NOERROR
        except Exception:
            return False

    assert wait_until(ready, 15.0), "dnsdist did not come up"
    yield doh_port
    p.terminate()
    p.wait(10)


def test_dnsdist_doh_origin(pki, dnsmux, dnsdist_doh):
    d = dnsmux("--ca-file", pki.ca_file, upstream=doh_url(dnsdist_doh))
    with connection_sampler(d.pid, dnsdist_doh) as samp:
        load(d, n=2000, clients=100)
    assert_one_connection(samp, d.pid, dnsdist_doh)


def test_everything_composes(knotd, pki, dnsmux, unbound_dot, loop_name_resolution):
    """Any frontend reaches any upstream: a DoT client through a DoH
    upstream, and DoH clients through UDP, TCP, DoT and DoH upstreams --
    each answer right, the client's ID back as sent."""
    import httpx
    from conftest import tls_client_context
    from test_doh_server import b64, check_www, query_wire
    from test_dot_listener import dot_connect, exchange
    origin = start_doh(dnsmux, pki, knotd.url("tcp"))
    # DoT client -> dnsmux -> DoH upstream
    dot_port = free_port()
    d = dnsmux("--tls-cert", pki.cert_file("server"), "--tls-key", pki.key_file("server"), "--ca-file", pki.ca_file,
               upstream=doh_url(origin.https), listen=["tls://127.0.0.1:%d" % dot_port])
    with dot_connect(dot_port, pki) as s:
        w, r = exchange(s, "www.test.")
        assert helpers.check_answer(w, r, {helpers.WWW_A}) == []
    # DoH client -> dnsmux -> each kind of upstream
    ctx = tls_client_context(pki.ca_file)
    for up in (knotd.url("udp"), knotd.url("tcp"), unbound_dot.url(), doh_url(origin.https)):
        front = start_doh(dnsmux, pki, up, "--ca-file", pki.ca_file)
        with httpx.Client(http2=True, verify=ctx, timeout=5.0) as c:
            resp = c.get("https://%s:%d/dns-query" % (SERVER_NAME, front.https), params={"dns": b64(query_wire(qid=4242))})
        assert resp.status_code == 200, (up, resp.text)
        check_www(resp.content, qid=4242)


def test_server_stream_limit_queues_on_one_connection(knotd, pki, dnsmux):
    """An origin that allows 10 concurrent streams (its SETTINGS): queries
    beyond 10 wait on the same HTTP/2 connection for a stream -- 2,000 from
    100 UDP clients, every one answered, one connection all along (before:
    one connection per 10 in flight, then SERVFAIL past --circuit-max)."""
    origin = start_doh(dnsmux, pki, knotd.url("tcp"), "--tcp-pipeline", "10")
    d = dnsmux("--ca-file", pki.ca_file, upstream=doh_url(origin.https))
    with connection_sampler(d.pid, origin.https) as samp:
        load(d)
    assert_one_connection(samp, d.pid, origin.https)
    st = d.stats()
    assert st["overflow"] == 0 and st["servfail"] == 0, st
