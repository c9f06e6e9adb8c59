"""DNS-over-TLS upstreams (--upstream tls://IP[:PORT][?pin=sha256/B64][#NAME]):
the same multiplexer as tcp:// (one pipelined TLS connection, checked in
the kernel's socket table), strict certificate verification (no query is
ever sent to a server that fails it; SERVFAIL and a warning with the
reason), recovery after an upstream restart, session resumption on
reconnect, and RFC 7830/8467 padding of every query sent over TLS.

Origins: a real Unbound serving DoT (fixture unbound_dot / unbound_factory,
forwarding to knotd), and a scripted TLS server that records every query
(tls_fault_server)."""

import re

import dns.edns
import dns.message
import dns.rcode
import pytest

import helpers
from conftest import (MARGIN, assert_one_connection, assert_restart_results, connection_sampler, restart_under_load,
                      tcp_established, tcp_established_ports, tls_url, wait_until)
from fault_server import answer_a
from pki import SERVER_NAME

PAD_OPT = 12


def zone_items(n):
    return [("n%d.test." % (i % helpers.N_NAMES), "AAAA" if i % 3 == 0 else "A") for i in range(n)]


def verify_warning(log, reason):
    """The stderr lines reporting a failed verification with this reason."""
    return [ln for ln in log.splitlines()
            if ln.startswith("warning:") and "[TLS]" in ln and "certificate verification failed" in ln
            and re.search(r"\(reason: %s\)" % re.escape(reason), ln)]


# ---------------------------------------------------------------------------
# The multiplexer over TLS


def test_udp_clients_share_one_tls_circuit(unbound_dot, pki, dnsmux):
    """2,000 queries from 100 concurrent UDP clients through dnsmux to
    Unbound over DoT: all answered right, over exactly one TLS connection
    (kernel socket table), the same one all along, with one handshake."""
    d = dnsmux("--ca-file", pki.ca_file, upstream=unbound_dot.url())
    items = zone_items(2000)
    with connection_sampler(d.pid, unbound_dot.port) as samp:
        results = helpers.run_udp_load(d.port, items, clients=100, timeout=5.0)
    assert not helpers.summarize(results)
    assert_one_connection(samp, d.pid, unbound_dot.port)

    st = d.stats()
    assert st["queries"] >= 2000, st
    assert st["answered"] >= 2000, st
    assert st["circuits_opened"] == 1, st
    assert st["tls_handshakes"] == 1, st
    assert st["tls_auth_failures"] == 0, st


@pytest.mark.parametrize("cert", ["server", "ecdsa"])
def test_tls_upstream_answers_right(tls_fault_server, pki, dnsmux, cert):
    """RSA and ECDSA server certificates with a chain: verified against
    --ca-file and #dns.test, queries answered with the upstream's answer."""
    srv = tls_fault_server(cert=cert)
    d = dnsmux("--ca-file", pki.ca_file, upstream=tls_url(srv.host, srv.port))
    names = ["t%d.%s.example." % (i, cert) for i in range(20)]
    results = helpers.run_udp_load(d.port, [(n, "A") for n in names], clients=5, timeout=5.0, expect=False)
    for r in results:
        assert not r.error, (r.qname, r.error)
        assert not helpers.check_answer(r.qwire, r.rwire, {answer_a(r.qname)}), r.qname
    assert len(srv.stream_queries()) == 20
    assert srv.connections == 1


# ---------------------------------------------------------------------------
# Strict verification


AUTH_FAILURES = {
    # id: (server certificate, upstream URL kwargs (name, pins from pki), use --ca-file, reason word)
    "wrong-name": ("server", {"name": "other.test"}, True, "wrong-name"),
    "unknown-ca": ("other", {}, True, "unknown-ca"),
    "expired": ("expired", {}, True, "expired"),
    "pin-mismatch": ("server", {"pins": ["other"]}, False, "pin-mismatch"),
    "pin-mismatch-with-ca": ("server", {"pins": ["other", "ecdsa"]}, True, "pin-mismatch"),
}


@pytest.mark.parametrize("case", sorted(AUTH_FAILURES))
def test_certificate_rejected(tls_fault_server, pki, dnsmux, case):
    """Every query SERVFAIL (within --timeout), a warning naming the
    reason, the counter, and not one DNS message reaches the server."""
    cert, url_kw, with_ca, reason = AUTH_FAILURES[case]
    srv = tls_fault_server(cert=cert)
    url = tls_url(srv.host, srv.port, name=url_kw.get("name", SERVER_NAME),
                  pins=[pki.pin(p) for p in url_kw.get("pins", ())])
    args = ["--timeout", "1500"] + (["--ca-file", pki.ca_file] if with_ca else [])
    d = dnsmux(*args, upstream=url)
    names = ["r%d.%s.example." % (i, case) for i in range(10)]
    results = helpers.run_udp_load(d.port, [(n, "A") for n in names], clients=5, timeout=1.5 + MARGIN + 1.0,
                                   expect=False)
    for r in results:
        assert not r.error, (r.qname, r.error)
        assert r.rcode == dns.rcode.SERVFAIL, (r.qname, dns.rcode.to_text(r.rcode))
        assert r.rwire[:2] == r.qwire[:2]
        assert helpers.question_bytes(r.rwire) == helpers.question_bytes(r.qwire)
        assert r.elapsed <= 1.5 + MARGIN, (r.qname, r.elapsed)
    assert wait_until(lambda: verify_warning(d.log(), reason), 2.0), \
        "no `warning: [TLS] ... certificate verification failed (reason: %s)` line:\n%s" % (reason, d.log()[-2000:])
    assert srv.stream_queries() == [], "a DNS query was sent to a server that failed verification: %r" \
        % [q.qname for q in srv.stream_queries()]
    st = d.stats()
    assert st["tls_auth_failures"] >= 1, st
    assert st["servfail"] >= 10, st
    assert srv.stream_queries() == []
    assert d.alive()


PIN_OK = {
    # id: (server certificate, name or None, pins)
    "pin-only": ("server", None, ["server"]),
    "pin-and-name": ("server", SERVER_NAME, ["server"]),
    "second-of-two-pins": ("server", SERVER_NAME, ["other", "server"]),
    "ecdsa-pin": ("ecdsa", SERVER_NAME, ["ecdsa"]),
    # the pin is enough: the certificate's CA is not in any store dnsmux has
    "pin-unknown-ca": ("other", SERVER_NAME, ["other"]),
}


@pytest.mark.parametrize("case", sorted(PIN_OK))
def test_correct_pin_without_ca_file(tls_fault_server, pki, dnsmux, case):
    """A right SPKI pin and no --ca-file: queries are answered."""
    cert, name, pins = PIN_OK[case]
    srv = tls_fault_server(cert=cert)
    d = dnsmux(upstream=tls_url(srv.host, srv.port, name=name, pins=[pki.pin(p) for p in pins]))
    names = ["p%d.%s.example." % (i, case) for i in range(5)]
    results = helpers.run_udp_load(d.port, [(n, "A") for n in names], clients=5, timeout=5.0, expect=False)
    for r in results:
        assert not r.error, (r.qname, r.error, d.log()[-1500:])
        assert not helpers.check_answer(r.qwire, r.rwire, {answer_a(r.qname)}), (r.qname, d.log()[-1500:])
    assert "certificate verification failed" not in d.log()
    assert d.stats()["tls_auth_failures"] == 0


# ---------------------------------------------------------------------------
# Restart and resumption


def test_unbound_restarted_under_load(unbound_factory, pki, dnsmux):
    """Unbound stopped and started again on the same port while 10 clients
    keep querying: every query answered right or SERVFAIL within
    --timeout, answers flow again within a second of Unbound being back,
    and the reconnect resumes the TLS session (fixed ticket keys)."""
    u = unbound_factory()
    timeout_s = 1.5
    d = dnsmux("--timeout", str(int(timeout_s * 1000)), "--ca-file", pki.ca_file, upstream=u.url())
    results, t_stop, t_ready = restart_under_load(d, u.stop, u.start, timeout_s)
    assert_restart_results(d, results, t_stop, t_ready, timeout_s, "Unbound")
    assert wait_until(lambda: tcp_established(d.pid, u.port) == 1, 2.0)
    st = d.stats()
    assert st["tls_handshakes"] >= 2, st
    assert st["tls_resumed"] >= 1, "reconnect after the restart did not resume the session: %r" % st
    assert st["tls_auth_failures"] == 0, st


def test_idle_circuit_reconnects_resumed(unbound_dot, pki, dnsmux):
    """--circuit-idle 300: the TLS circuit closes while idle; the next query
    opens a new one, which resumes the session (tls_resumed >= 1)."""
    d = dnsmux("--circuit-idle", "300", "--ca-file", pki.ca_file, upstream=unbound_dot.url())
    _, qw, rw, _ = helpers.udp_query(d.port, "www.test.", "A")
    assert not helpers.check_answer(qw, rw, {helpers.WWW_A})
    assert wait_until(lambda: tcp_established(d.pid, unbound_dot.port) == 1, 1.0)
    first = set(tcp_established_ports(d.pid, unbound_dot.port))
    assert wait_until(lambda: tcp_established(d.pid, unbound_dot.port) == 0, 0.3 + 2 * MARGIN + 1.0), \
        "idle TLS circuit still open"
    st = d.stats()
    assert st["tls_handshakes"] == 1 and st["tls_resumed"] == 0, st

    _, qw, rw, _ = helpers.udp_query(d.port, "a.test.", "A")
    assert not helpers.check_answer(qw, rw, helpers.expected_rdata("a.test.", "A"))
    assert wait_until(lambda: tcp_established(d.pid, unbound_dot.port) == 1, 1.0)
    assert set(tcp_established_ports(d.pid, unbound_dot.port)) != first, "expected a new connection"
    st = d.stats()
    assert st["tls_handshakes"] == 2, st
    assert st["tls_resumed"] >= 1, "second connection did a full handshake: %r" % st
    assert st["circuits_opened"] == 2, st


# ---------------------------------------------------------------------------
# Padding (RFC 7830, block length 128 for queries per RFC 8467)


def _query(kind, qname):
    """A client query: kind 'edns' (EDNS 1232, no options), 'noedns', or
    'edns-pad' (the client pads itself, to an odd length)."""
    if kind == "noedns":
        return helpers.make_query(qname, "A", edns=None)
    q = helpers.make_query(qname, "A", edns=1232)
    if kind == "edns-pad":
        q.use_edns(0, 0, 1232, options=[dns.edns.GenericOption(PAD_OPT, b"\x00" * 7)])
    return q


def _opt_codes(msg):
    return [o.otype for o in msg.options] if msg.edns >= 0 else []


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("kind", ["edns", "noedns", "edns-pad"])
def test_queries_padded_answers_unpadded(tls_fault_server, pki, dnsmux, transport, kind):
    """Every query reaching the TLS upstream has exactly one Padding option
    (RFC 7830 6: at most once per OPT) and a length that is a multiple of
    128, whether the client sent EDNS, none, or its own padding. The
    client's answer carries no Padding option (the upstream pads its
    answers), and a client without EDNS gets no OPT record back."""
    srv = tls_fault_server(cert="server", pad_answers=468)
    d = dnsmux("--ca-file", pki.ca_file, upstream=tls_url(srv.host, srv.port))
    sent = []
    for i in range(4):
        # names of different lengths so the padding has to vary
        qname = "%s.%s.%s.pad.example." % ("x" * (1 + 15 * i), kind, transport)
        w = _query(kind, qname).to_wire()
        if transport == "udp":
            rw = helpers.udp_exchange(w, d.port)
        else:
            with helpers.tcp_connect(d.port) as s:
                s.sendall(helpers.frame(w))
                rw = helpers.recv_frame(s)
        sent.append((qname, w, rw))

    for qname, w, rw in sent:
        assert not helpers.check_answer(w, rw, {answer_a(qname)}), qname
        r = dns.message.from_wire(rw)
        assert PAD_OPT not in _opt_codes(r), "client got a padded answer (%d bytes)" % len(rw)
        if kind == "noedns":
            assert r.edns < 0, "client without EDNS got an OPT record back"
        else:
            assert r.edns >= 0, "client with EDNS got no OPT record back"

    got = srv.stream_queries()
    assert len(got) == len(sent), (len(got), len(sent))
    by_name = {str(g.msg.question[0].name).lower(): g for g in got if g.msg is not None}
    bad = []
    for qname, _, _ in sent:
        g = by_name.get(qname.lower())
        if g is None:
            bad.append("%s: never reached the upstream" % qname)
            continue
        codes = _opt_codes(g.msg)
        if g.length % 128:
            bad.append("%s: %d bytes, not a multiple of 128" % (qname, g.length))
        if codes.count(PAD_OPT) != 1:
            bad.append("%s: %d padding options (option codes %s)" % (qname, codes.count(PAD_OPT),
                                                                      [int(c) for c in codes]))
    assert not bad, bad
