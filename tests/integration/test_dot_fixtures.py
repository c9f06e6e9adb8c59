"""Self-checks of the DNS-over-TLS fixtures (no dnsmux): the test PKI
verifies the way the tests assume, the SPKI pins match the openssl
recipe, Unbound answers DoT on loopback with the test certificate and
resumes sessions across a restart, and the recording TLS server works. If
these fail, the DoT tests' verdicts mean nothing."""

import base64
import shutil
import socket
import ssl
import subprocess

import dns.message
import dns.query
import dns.rcode
import pytest

import helpers
from conftest import tls_client_context
from fault_server import answer_a
from pki import SERVER_NAME


def openssl_verify(pki, name, ca):
    return subprocess.run(["openssl", "verify", "-CAfile", str(ca), "-untrusted", str(pki.cert_file(name)),
                           str(pki.leaf_file(name))], capture_output=True, text=True, timeout=20)


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl not installed")
def test_pki_verifies_as_expected(pki):
    for good in ("server", "ecdsa"):
        r = openssl_verify(pki, good, pki.ca_file)
        assert r.returncode == 0, (good, r.stdout, r.stderr)
    r = openssl_verify(pki, "expired", pki.ca_file)
    assert r.returncode != 0 and "expired" in (r.stdout + r.stderr)
    r = openssl_verify(pki, "other", pki.ca_file)
    assert r.returncode != 0
    r = openssl_verify(pki, "other", pki.other_ca_file)
    assert r.returncode == 0, (r.stdout, r.stderr)


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl not installed")
@pytest.mark.parametrize("name", ["server", "ecdsa", "other"])
def test_pin_matches_openssl_recipe(pki, name):
    """openssl x509 -pubkey | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64"""
    pub = subprocess.run(["openssl", "x509", "-pubkey", "-noout", "-in", str(pki.leaf_file(name))],
                         capture_output=True, check=True, timeout=20).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub, capture_output=True,
                         check=True, timeout=20).stdout
    dgst = subprocess.run(["openssl", "dgst", "-sha256", "-binary"], input=der, capture_output=True,
                          check=True, timeout=20).stdout
    assert base64.b64encode(dgst).decode() == pki.pin(name)
    assert len({pki.pin(n) for n in ("server", "ecdsa", "other", "expired")}) == 4


def test_unbound_answers_dot(unbound_dot, pki):
    r = unbound_dot.query("www.test.", "A")
    assert helpers.rdata_set(r) == {helpers.WWW_A}
    r = unbound_dot.query("n9.test.", "AAAA")
    assert helpers.rdata_set(r) == helpers.expected_rdata("n9.test.", "AAAA")
    # it presents the test certificate and its chain verifies for dns.test
    with socket.create_connection((unbound_dot.host, unbound_dot.port), timeout=5) as raw:
        with tls_client_context(pki.ca_file).wrap_socket(raw, server_hostname=SERVER_NAME) as s:
            assert s.getpeercert(binary_form=True) == pki.der("server")
    # a name outside test. goes to the origin on loopback too (which refuses
    # it): no root servers, nothing off the host
    r = unbound_dot.query("example.com.", "A", timeout=5.0)
    assert r.rcode() in (dns.rcode.REFUSED, dns.rcode.SERVFAIL) and not r.answer
    assert "error" not in unbound_dot.log().lower(), unbound_dot.log()


def test_unbound_restart_same_port_resumes_session(unbound_factory, pki):
    u = unbound_factory()
    ctx = tls_client_context(pki.ca_file)

    def exchange(session=None):
        q = helpers.make_query("www.test.", "A", edns=1232)
        with socket.create_connection((u.host, u.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=SERVER_NAME, session=session) as s:
                s.sendall(helpers.frame(q.to_wire()))
                r = helpers.recv_frame(s)
                assert not helpers.check_answer(q.to_wire(), r, {helpers.WWW_A})
                return s.session, s.session_reused

    sess, reused = exchange()
    assert not reused and sess is not None
    port = u.port
    u.stop()
    assert not u.answers()
    u.start()
    assert u.port == port
    _, reused = exchange(sess)
    assert reused, "Unbound did not resume a session across a restart (tls-session-ticket-keys)"


@pytest.mark.parametrize("cert", ["server", "ecdsa"])
def test_tls_fault_server_records(tls_fault_server, pki, cert):
    srv = tls_fault_server(cert=cert)
    q = dns.message.make_query("x.fault.", "A")
    r = dns.query.tls(q, srv.host, port=srv.port, timeout=5, ssl_context=tls_client_context(pki.ca_file),
                      server_hostname=SERVER_NAME)
    assert helpers.rdata_set(r) == {answer_a("x.fault.")}
    got = srv.stream_queries()
    assert len(got) == 1 and got[0].transport == "tls" and got[0].msg.id == q.id
    with socket.create_connection((srv.host, srv.port), timeout=5) as raw:
        with tls_client_context(pki.ca_file).wrap_socket(raw, server_hostname=SERVER_NAME) as s:
            assert s.getpeercert(binary_form=True) == pki.der(cert)


@pytest.mark.parametrize("cert,why", [("expired", "expired"), ("other", "unable to get local issuer")])
def test_tls_fault_server_bad_certs_rejected(tls_fault_server, pki, cert, why):
    srv = tls_fault_server(cert=cert)
    with socket.create_connection((srv.host, srv.port), timeout=5) as raw:
        with pytest.raises(ssl.SSLCertVerificationError, match=why):
            tls_client_context(pki.ca_file).wrap_socket(raw, server_hostname=SERVER_NAME)
    assert srv.stream_queries() == []


def test_tls_fault_server_pads_answers(tls_fault_server, pki):
    srv = tls_fault_server(pad_answers=468)
    ctx = tls_client_context(pki.ca_file)
    q = dns.message.make_query("p.fault.", "A", use_edns=0, pad=128)
    r = dns.query.tls(q, srv.host, port=srv.port, timeout=5, ssl_context=ctx, server_hostname=SERVER_NAME)
    got = srv.stream_queries()[0]
    assert got.length % 128 == 0 and got.padding is not None
    assert len(r.to_wire()) % 468 == 0 and any(o.otype == 12 for o in r.options)
    q = dns.message.make_query("p.fault.", "A", use_edns=0)
    r = dns.query.tls(q, srv.host, port=srv.port, timeout=5, ssl_context=ctx, server_hostname=SERVER_NAME)
    assert not any(o.otype == 12 for o in r.options)
