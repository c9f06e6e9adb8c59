"""Backends from etcd, end to end (issue 9, part 6): a real etcd (Debian's
etcd-server, the `etcd` fixture), dnsmux with `etcd:` in its file, knotd
origins. A backend registered with `etcdctl put` in dnsrouter's form gets
its names within a second, and none once deleted; keys with the same regex
form one pool, round-robin; a JSON value with a suffix; etcd killed:
routing goes on with the last set; etcd back: new keys followed."""

import time

import dns.message
import dns.rcode
import dns.rdatatype
import pytest

import helpers
from conftest import wait_until

MIEK = """$ORIGIN miek.nl.
$TTL 60
@ SOA ns hostmaster 1 3600 600 86400 60
@ NS ns
ns A 203.0.113.53
a A 203.0.113.1
ab A 203.0.113.2
c A 203.0.113.3
"""
EXAMPLE = """$ORIGIN example.
$TTL 60
@ SOA ns hostmaster 1 3600 600 86400 60
@ NS ns
ns A 192.0.2.53
www A 192.0.2.1
"""
REGEX = r"^[ab]*\.miek\.nl\.$"


def ask(port, name, timeout=1.0):
    try:
        w = helpers.udp_exchange(helpers.make_query(name, "A").to_wire(), port, timeout=timeout)
    except OSError:
        return None, set()
    m = dns.message.from_wire(w)
    return m.rcode(), {rd.address for rrset in m.answer for rd in rrset if rrset.rdtype == dns.rdatatype.A}


def conf_for(tmp_path, etcd, extra=""):
    p = tmp_path / "dnsmux.yaml"
    p.write_text("etcd:\n  endpoints: [%s]\n  prefix: /dnsrouter/\n  health: {interval: 1s, fall: 3, rise: 2}\n%s"
                 % (etcd.url, extra))
    return p


def answers_within(port, name, want, seconds):
    return wait_until(lambda: ask(port, name, timeout=0.5) == want, seconds, interval=0.05)


def test_registered_backend_gets_its_names_and_loses_them(etcd, knotd_factory, dnsmux, tmp_path):
    miek = knotd_factory(zones={"miek.nl.": MIEK})
    d = dnsmux("-c", conf_for(tmp_path, etcd))
    assert ask(d.port, "a.miek.nl.")[0] == dns.rcode.SERVFAIL  # nothing registered: no route
    t0 = time.monotonic()
    etcd.put("/dnsrouter/11111111-1111-1111-1111-111111111111", "127.0.0.1:%d,%s" % (miek.port, REGEX))
    assert answers_within(d.port, "a.miek.nl.", (dns.rcode.NOERROR, {"203.0.113.1"}), 1.0), d.log()[-2000:]
    assert time.monotonic() - t0 < 1.5
    assert ask(d.port, "ab.miek.nl.") == (dns.rcode.NOERROR, {"203.0.113.2"})
    assert ask(d.port, "c.miek.nl.")[0] == dns.rcode.SERVFAIL  # the regex does not match: no route
    etcd.delete("/dnsrouter/11111111-1111-1111-1111-111111111111")
    assert answers_within(d.port, "a.miek.nl.", (dns.rcode.SERVFAIL, set()), 1.0), d.log()[-2000:]


def test_same_regex_is_one_pool_round_robin(etcd, knotd_factory, dnsmux, tmp_path):
    m1, m2 = knotd_factory(zones={"miek.nl.": MIEK}), knotd_factory(zones={"miek.nl.": MIEK})
    d = dnsmux("-c", conf_for(tmp_path, etcd))
    etcd.put("/dnsrouter/a", "127.0.0.1:%d,%s" % (m1.port, REGEX))
    etcd.put("/dnsrouter/b", "127.0.0.1:%d,%s" % (m2.port, REGEX))
    assert wait_until(lambda: "2 backends" in d.log(), 2.0), d.log()[-2000:]
    n1, n2 = m1.queries(), m2.queries()
    for i in range(20):
        assert ask(d.port, "ab.miek.nl.") == (dns.rcode.NOERROR, {"203.0.113.2"})
    d1, d2 = m1.queries() - n1, m2.queries() - n2
    assert d1 >= 5 and d2 >= 5, (d1, d2)  # both members take queries (probes aside)


def test_json_value_with_a_suffix_and_the_files_default(etcd, knotd_factory, dnsmux, tmp_path):
    miek, example = knotd_factory(zones={"miek.nl.": MIEK}), knotd_factory(zones={"example.": EXAMPLE})
    conf = conf_for(tmp_path, etcd, 'pools:\n  default: {members: ["%s"]}\nroutes:\n  - suffix: .\n    pool: default\n'
                    % example.url("tcp"))
    d = dnsmux("-c", conf)
    assert ask(d.port, "www.example.") == (dns.rcode.NOERROR, {"192.0.2.1"})  # the file's default route
    etcd.put("/dnsrouter/json", '{"upstream": "tcp://127.0.0.1:%d", "suffix": "miek.nl."}' % miek.port)
    assert answers_within(d.port, "c.miek.nl.", (dns.rcode.NOERROR, {"203.0.113.3"}), 1.0), d.log()[-2000:]
    assert ask(d.port, "www.example.") == (dns.rcode.NOERROR, {"192.0.2.1"})
    # a bad value is skipped, the others kept
    etcd.put("/dnsrouter/bad", "not a backend")
    etcd.put("/dnsrouter/json2", '{"upstream": "tcp://127.0.0.1:%d", "suffix": "example."}' % example.port)
    assert wait_until(lambda: "2 backends" in d.log(), 2.0), d.log()[-2000:]
    assert ask(d.port, "c.miek.nl.") == (dns.rcode.NOERROR, {"203.0.113.3"})


def test_etcd_gone_routing_goes_on_and_back_it_is_followed(etcd, knotd_factory, dnsmux, tmp_path):
    miek, example = knotd_factory(zones={"miek.nl.": MIEK}), knotd_factory(zones={"example.": EXAMPLE})
    d = dnsmux("-c", conf_for(tmp_path, etcd))
    etcd.put("/dnsrouter/m", "127.0.0.1:%d,%s" % (miek.port, REGEX))
    assert answers_within(d.port, "a.miek.nl.", (dns.rcode.NOERROR, {"203.0.113.1"}), 1.0), d.log()[-2000:]
    etcd.kill()
    # etcd gone: the last set stands
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        assert ask(d.port, "a.miek.nl.") == (dns.rcode.NOERROR, {"203.0.113.1"})
    etcd.start()
    etcd.put("/dnsrouter/e", '{"upstream": "udp://127.0.0.1:%d", "regex": "^www\\\\.example\\\\.$"}' % example.port)
    # reconnected (backoff at most 5 s), the full re-read brings the new key
    assert answers_within(d.port, "www.example.", (dns.rcode.NOERROR, {"192.0.2.1"}), 8.0), d.log()[-2000:]
    assert ask(d.port, "a.miek.nl.") == (dns.rcode.NOERROR, {"203.0.113.1"})
