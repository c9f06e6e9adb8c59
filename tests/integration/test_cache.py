"""The answer cache (issue 10, part 1), against a real origin whose query
count the test reads (knotd's mod-stats, through knotc): a repeated query
does not reach it; the TTL counts down; 0x20 case variants share one entry
and each gets its own case back; DO=1 and DO=0 are separate; NXDOMAIN and
NODATA are cached for the SOA's negative TTL; SERVFAIL is not cached;
serve-stale answers with TTL 30 when the origin is gone (and SERVFAIL
without it); an answer larger than 512 bytes is cached whole, served whole
to an EDNS client and truncated for a 512-byte one; the cache stays within
its size while 50,000 distinct names are asked."""

import socket
import time

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

import helpers
from conftest import wait_until


def ask(port, name, rdtype="A", edns=None, want_dnssec=False, tcp=False, timeout=3.0):
    q = dns.message.make_query(name, rdtype, use_edns=False if edns is None else 0, payload=edns or 1232,
                               want_dnssec=want_dnssec)
    if tcp:
        with helpers.tcp_connect(port) as s:
            s.sendall(helpers.frame(q.to_wire()))
            w = helpers.recv_frame(s, timeout)
    else:
        w = helpers.udp_exchange(q.to_wire(), port, timeout=timeout)
    r = dns.message.from_wire(w)
    assert r.id == q.id
    return r, w


def ttls(r):
    return [rrset.ttl for rrset in r.answer + r.authority]


@pytest.fixture
def cached(knotd_factory, dnsmux):
    """A knotd of its own (its query count is this test's) behind dnsmux with a cache."""
    def start(*args):
        k = knotd_factory()
        d = dnsmux("--cache", "4MiB", *args, upstream=k.url("udp"))
        return k, d
    return start


def test_a_repeated_query_does_not_reach_the_origin(cached):
    k, d = cached()
    n0 = k.queries()
    r, _ = ask(d.port, "www.test.")
    assert r.rcode() == dns.rcode.NOERROR and helpers.rdata_set(r) == {helpers.WWW_A}
    for _ in range(5):
        r, _ = ask(d.port, "www.test.")
        assert helpers.rdata_set(r) == {helpers.WWW_A}
    assert k.queries() == n0 + 1
    st = d.stats()
    assert st["cache_hits"] == 5 and st["cache_misses"] == 1, st


def test_the_ttl_counts_down(cached):
    k, d = cached()
    r, _ = ask(d.port, "www.test.")
    assert ttls(r) == [300]
    # bounded poll, not a sleep: the next whole second of age shows
    assert wait_until(lambda: ttls(ask(d.port, "www.test.")[0])[0] < 300, 3.0)
    r, _ = ask(d.port, "www.test.")
    assert 297 <= ttls(r)[0] < 300


def test_case_variants_share_one_entry_each_with_its_own_case(cached):
    k, d = cached()
    n0 = k.queries()
    for name in ("www.test.", "WwW.TeSt.", "WWW.TEST."):
        q = dns.message.make_query(name, "A")
        w = helpers.udp_exchange(q.to_wire(), d.port)
        assert w[12:12 + len(q.question[0].name.to_wire())] == q.question[0].name.to_wire(), name
        assert str(dns.message.from_wire(w).question[0].name) == name
    assert k.queries() == n0 + 1


def test_do_bit_makes_another_entry(cached):
    k, d = cached()
    n0 = k.queries()
    ask(d.port, "www.test.", edns=1232)
    ask(d.port, "www.test.", edns=1232, want_dnssec=True)
    assert k.queries() == n0 + 2
    ask(d.port, "www.test.", edns=1232)
    ask(d.port, "www.test.", edns=1232, want_dnssec=True)
    assert k.queries() == n0 + 2


def test_negative_answers_are_cached_for_the_soa_time(cached):
    k, d = cached()
    n0 = k.queries()
    for _ in range(3):
        r, _ = ask(d.port, "nothere.test.")
        assert r.rcode() == dns.rcode.NXDOMAIN
        assert r.authority and r.authority[0].rdtype == dns.rdatatype.SOA and r.authority[0].ttl <= 300
    for _ in range(3):
        r, _ = ask(d.port, "www.test.", "TXT")  # NODATA
        assert r.rcode() == dns.rcode.NOERROR and not r.answer and r.authority[0].rdtype == dns.rdatatype.SOA
    assert k.queries() == n0 + 2


def test_servfail_and_refused_are_not_cached(fault_server, knotd_factory, dnsmux):
    f = fault_server(rcode=dns.rcode.SERVFAIL)
    d = dnsmux("--cache", "1MiB", upstream=f.url("udp"))
    for _ in range(3):
        r, _ = ask(d.port, "x.test.")
        assert r.rcode() == dns.rcode.SERVFAIL
    assert len([m for m in f.received if (m.qname or "").lower() == "x.test."]) >= 3
    # a name outside knotd's zones: REFUSED from the origin, asked each time
    k = knotd_factory()
    d2 = dnsmux("--cache", "1MiB", upstream=k.url("udp"))
    n0 = k.queries()
    for _ in range(3):
        assert ask(d2.port, "elsewhere.example.")[0].rcode() == dns.rcode.REFUSED
    assert k.queries() == n0 + 3


def test_a_large_answer_is_cached_whole_and_truncated_per_client(cached):
    k, d = cached()
    n0 = k.queries()
    r, w = ask(d.port, "huge.test.", "TXT", edns=4096)
    assert not (r.flags & dns.flags.TC) and len(w) > 1232
    full = helpers.rdata_set(r)
    r, w = ask(d.port, "huge.test.", "TXT")  # no EDNS: 512 bytes
    assert r.flags & dns.flags.TC and len(w) <= 512
    r, w = ask(d.port, "huge.test.", "TXT", edns=4096)  # whole again: the entry was not cut
    assert not (r.flags & dns.flags.TC) and helpers.rdata_set(r) == full
    r, w = ask(d.port, "huge.test.", "TXT", tcp=True)
    assert helpers.rdata_set(r) == full
    # no EDNS and EDNS are two entries (each asked over UDP, then TCP for
    # knotd's TC=1 past its 1232 bytes); everything else came from the cache
    assert k.queries() - n0 <= 4
    st = d.stats()
    assert st["cache_hits"] == 2 and st["cache_truncations_avoided"] >= 1, st


def test_serve_stale_when_the_origin_is_gone(knotd_factory, dnsmux, tmp_path):
    k = knotd_factory()
    conf = tmp_path / "dnsmux.yaml"
    conf.write_text('pools:\n  default: {members: ["%s"]}\ncache: {max-ttl: 1s, serve-stale: 1h}\ntimeout: 500ms\n'
                    % k.url("udp"))
    d = dnsmux("-c", conf)
    r, _ = ask(d.port, "www.test.")
    assert ttls(r) == [1]
    k.stop()
    # once the entry expired (1 s), the origin's silence gets the stale answer, TTL 30
    assert wait_until(lambda: ttls(ask(d.port, "www.test.", timeout=3)[0]) == [30], 4.0), d.log()[-1500:]
    r, _ = ask(d.port, "www.test.")
    assert r.rcode() == dns.rcode.NOERROR and helpers.rdata_set(r) == {helpers.WWW_A}
    assert d.stats()["cache_stale"] >= 1


def test_no_serve_stale_means_servfail(knotd_factory, dnsmux, tmp_path):
    k = knotd_factory()
    conf = tmp_path / "dnsmux.yaml"
    conf.write_text('pools:\n  default: {members: ["%s"]}\ncache: {max-ttl: 1s}\ntimeout: 500ms\n' % k.url("udp"))
    d = dnsmux("-c", conf)
    assert ttls(ask(d.port, "www.test.")[0]) == [1]
    k.stop()
    assert wait_until(lambda: ask(d.port, "www.test.", timeout=3)[0].rcode() == dns.rcode.SERVFAIL, 4.0)


def test_50000_names_within_size(knotd_factory, dnsmux):
    k = knotd_factory()
    size = 1 << 20
    d = dnsmux("--cache", str(size), upstream=k.url("udp"))
    names = ["c%d.bench.test." % i for i in range(50000)]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2.0)
    sent = got = 0
    deadline = time.monotonic() + 120
    window = 64
    ids = {}
    i = 0
    while (i < len(names) or ids) and time.monotonic() < deadline:
        while i < len(names) and len(ids) < window:
            q = dns.message.make_query(names[i], "A")
            ids[q.id] = names[i]
            s.sendto(q.to_wire(), ("127.0.0.1", d.port))
            sent += 1
            i += 1
        try:
            data, _ = s.recvfrom(65535)
        except socket.timeout:
            ids.clear()  # (lost ones are not what this test is about)
            continue
        m = dns.message.from_wire(data)
        if ids.pop(m.id, None) is not None:
            got += 1
        if got % 10000 == 0:
            st = d.stats()
            assert st["cache_bytes"] <= size, st
    assert got >= 49000, (sent, got)
    st = d.stats()
    assert 0 < st["cache_bytes"] <= size, st
    assert 1000 < st["cache_entries"] < 50000, st


def test_a_route_with_cache_false_bypasses_it(knotd_factory, dnsmux, tmp_path):
    k = knotd_factory()
    conf = tmp_path / "dnsmux.yaml"
    conf.write_text('pools:\n  default: {members: ["%s"]}\ncache: {size: 1MiB}\nroutes:\n'
                    '  - suffix: nocache.test.\n    pool: default\n    cache: false\n'
                    '  - suffix: .\n    pool: default\n' % k.url("udp"))
    d = dnsmux("-c", conf)
    n0 = k.queries()
    for _ in range(3):
        assert ask(d.port, "x.nocache.test.")[0].rcode() == dns.rcode.NXDOMAIN
    assert k.queries() == n0 + 3
    for _ in range(3):
        ask(d.port, "www.test.")
    assert k.queries() == n0 + 4
