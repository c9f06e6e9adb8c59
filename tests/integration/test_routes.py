"""The configuration file's routes (issue 9): -c FILE with pools and routes
-- split horizon by suffix (label boundaries, the longest wins whatever the
order in the file) and by regex (dnsrouter's form, in file order), the
"suffix: ." default after both, qtype and client conditions, no route ->
SERVFAIL over UDP and TCP. Origins: knotd instances serving different
zones. Also --check-config on every file in examples/, and YAML errors
naming line and column."""

import subprocess

import dns.message
import dns.rcode
import dns.rdatatype
import pytest

import helpers
from conftest import DNSMUX_BIN, REPO, run_dnsmux

CORP = """$ORIGIN corp.example.
$TTL 60
@ SOA ns hostmaster 1 3600 600 86400 60
@ NS ns
ns A 10.0.0.53
www A 10.0.0.1
deep.sub A 10.0.0.3
"""
EXAMPLE = """$ORIGIN example.
$TTL 60
@ SOA ns hostmaster 1 3600 600 86400 60
@ NS ns
ns A 192.0.2.53
www A 192.0.2.1
www.corp A 198.51.100.1
www AAAA 2001:db8::1
"""
MIEK = """$ORIGIN miek.nl.
$TTL 60
@ SOA ns hostmaster 1 3600 600 86400 60
@ NS ns
ns A 203.0.113.53
a A 203.0.113.1
ab A 203.0.113.2
c A 203.0.113.3
"""


@pytest.fixture
def origins(knotd_factory):
    return {"corp": knotd_factory(zones={"corp.example.": CORP}),
            "example": knotd_factory(zones={"example.": EXAMPLE}),
            "miek": knotd_factory(zones={"miek.nl.": MIEK})}


def write_conf(tmp_path, text):
    p = tmp_path / "dnsmux.yaml"
    p.write_text(text)
    return p


SPLIT = """\
pools:
  corp: {{members: [{corp}]}}
  example: {{members: [{example}]}}
  shard: {{members: [{miek}]}}
routes:
  - suffix: example.
    pool: example
  - regex: '^[ab]*\\.miek\\.nl\\.$'
    pool: shard
  - suffix: corp.example.        # longer than example., though written after it
    pool: corp
"""


def ask(port, name, rdtype="A", tcp=False):
    q = helpers.make_query(name, rdtype, edns=1232)
    w = q.to_wire()
    if tcp:
        with helpers.tcp_connect(port) as s:
            s.sendall(helpers.frame(w))
            r = helpers.recv_frame(s, 5.0)
    else:
        r = helpers.udp_exchange(w, port)
    return dns.message.from_wire(r)


def a_of(m):
    return {rd.address for rrset in m.answer for rd in rrset if rrset.rdtype == dns.rdatatype.A}


def test_split_horizon_suffix_and_regex(origins, dnsmux, tmp_path):
    conf = write_conf(tmp_path, SPLIT.format(**{k: v.url("tcp") for k, v in origins.items()}))
    d = dnsmux("-c", conf)
    for tcp in (False, True):
        assert a_of(ask(d.port, "www.corp.example.", tcp=tcp)) == {"10.0.0.1"}  # longest suffix: corp
        assert a_of(ask(d.port, "deep.sub.corp.example.", tcp=tcp)) == {"10.0.0.3"}
        assert a_of(ask(d.port, "www.example.", tcp=tcp)) == {"192.0.2.1"}
        assert a_of(ask(d.port, "WWW.Example.", tcp=tcp)) == {"192.0.2.1"}  # case does not matter
        # label boundary: xcorp.example. is not under corp.example.; example.'s origin has no such name
        assert ask(d.port, "www.xcorp.example.", tcp=tcp).rcode() == dns.rcode.NXDOMAIN
        assert a_of(ask(d.port, "ab.miek.nl.", tcp=tcp)) == {"203.0.113.2"}  # regex
        assert a_of(ask(d.port, "a.miek.nl.", tcp=tcp)) == {"203.0.113.1"}
        # c.miek.nl. matches no rule, and there is no "suffix: .": SERVFAIL
        r = ask(d.port, "c.miek.nl.", tcp=tcp)
        assert r.rcode() == dns.rcode.SERVFAIL
        assert ask(d.port, "nowhere.test.", tcp=tcp).rcode() == dns.rcode.SERVFAIL
    st = d.stats()
    assert st["no_route"] == 4, st


def test_default_route_and_conditions(origins, dnsmux, tmp_path):
    """suffix: . is the default, after regexes; qtype and client conditions
    choose among rules for the same name."""
    text = SPLIT.format(**{k: v.url("tcp") for k, v in origins.items()}) + """\
  - suffix: .
    qtype: [AAAA]
    pool: example
  - suffix: corp.example.
    client: [192.0.2.0/24]        # nobody here: loopback clients skip this rule
    pool: shard
  - suffix: .
    client: [localhost]
    pool: corp
"""
    d = dnsmux("-c", write_conf(tmp_path, text))
    # AAAA for any name goes to example.'s origin by the first default rule
    r = ask(d.port, "www.example.", "AAAA")
    assert {rd.address for rrset in r.answer for rd in rrset} == {"2001:db8::1"}
    # the client condition that does not hold is skipped: corp.example. -> corp
    assert a_of(ask(d.port, "www.corp.example.")) == {"10.0.0.1"}
    # c.miek.nl. now falls to the localhost default: corp's origin, which does not serve it
    r = ask(d.port, "c.miek.nl.")
    assert r.rcode() in (dns.rcode.REFUSED, dns.rcode.NOTAUTH), r
    assert d.stats()["no_route"] == 0


def test_route_to_a_missing_pool_is_an_error(tmp_path):
    conf = write_conf(tmp_path, "pools:\n  a: {members: [tcp://127.0.0.1:1]}\nroutes:\n  - suffix: x.\n    pool: b\n")
    r = run_dnsmux(["--check-config", "-c", str(conf)])
    assert r.returncode == 2
    assert '%s:5:11: routes[0].pool: no pool named "b"' % conf in r.stderr, r.stderr


BAD_FILES = [
    ("threads: lots\n", "1:10: threads: 'lots' is not a number"),
    ("timeout: 3 s\n", "1:10: timeout: '3 s' is not a duration"),
    ("pools:\n  p:\n    policy: fastes\n    members: [tcp://127.0.0.1]\n",
     '3:13: pools.p.policy: unknown policy "fastes" (expected round-robin, random, least-outstanding, fastest or failover)'),
    ("colour: red\n", "1:1: colour: unknown key"),
    ("listen:\n  - url: tcp://127.0.0.1:53\n    colour: red\n", "3:5: listen[0].colour: unknown key"),
    ("listen: [bogus://x]\n", "1:10: listen[0]: 'bogus://x': unknown listener scheme"),
    ("routes:\n  - pool: default\n", "2:5: routes[0]: a route needs a suffix or a regex"),
    ("routes:\n  - regex: '(['\n    pool: x\n", "2:12: routes[0].regex: '([' is not a regular expression"),
    ("pools: [1, 2\n", "not YAML"),
    ("cache: {size: lots}\n", "1:15: cache.size: 'lots' is not a size"),
    ("cache: {min-ttl: 1h, max-ttl: 1m}\n", "1:8: cache: min-ttl (3600s) is above max-ttl (60s)"),
    ("dns64:\n  - prefix: 64:ff9b::/80\n",
     "2:13: dns64[0].prefix: '64:ff9b::/80': the length must be one of RFC 6052's: 32, 40, 48, 56, 64 or 96"),
    ("dns64:\n  - prefix: 2001:db8:0:0:ff00::/96\n",
     "2:13: dns64[0].prefix: '2001:db8:0:0:ff00::/96': bits 64-71 (the u-octet) must be zero"),
    ("dns64:\n  - prefix: 64:ff9b::/96\n    suffix: '::42'\n",
     "3:13: dns64[0].suffix: '::42' does not fit after a /96 prefix"),
    ("dns64:\n  - clients: [any]\n", "2:5: dns64[0]: an entry needs a prefix"),
    ("dns64:\n  - prefix: 64:ff9b::/96\n    mapped: [10.0.0.0/33]\n", "3:14: dns64[0].mapped: '10.0.0.0/33': prefix too long"),
]


@pytest.mark.parametrize("text,want", BAD_FILES, ids=[w.split(":")[2].strip().split()[0] if w.count(":") > 1 else w
                                                     for _, w in BAD_FILES])
def test_yaml_errors_name_line_and_column(tmp_path, text, want):
    conf = write_conf(tmp_path, text + "pools:\n  default: {members: [tcp://127.0.0.1:1]}\n"
                      if "pools" not in text else text)
    # (-u: a loopback upstream for the harness's check; the file's errors come first)
    r = run_dnsmux(["--check-config", "-c", str(conf), "-u", "tcp://127.0.0.1:1"])
    assert r.returncode == 2, r.stdout
    assert want in r.stderr, r.stderr
    if want != "not YAML":
        assert r.stderr.startswith(str(conf) + ":"), r.stderr


EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_check(path, pki, tmp_path):
    """Every shipped example passes --check-config (its certificate paths
    pointed at the test PKI's files, which --check-config loads)."""
    text = path.read_text().replace("/etc/dnsmux/fullchain.pem", str(pki.cert_file("server")))
    text = text.replace("/etc/dnsmux/privkey.pem", str(pki.key_file("server")))
    conf = write_conf(tmp_path, text)
    r = subprocess.run([str(DNSMUX_BIN), "--check-config", "-c", str(conf)], capture_output=True, text=True,
                       timeout=15, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout


def test_command_line_wins(origins, dnsmux, tmp_path):
    """--upstream replaces the pool "default" of the file; --timeout wins."""
    conf = write_conf(tmp_path, "timeout: 300ms\npools:\n  default: {members: [tcp://127.0.0.1:1]}\n")
    d = dnsmux("-c", conf, "--timeout", "3000", upstream=origins["example"].url("tcp"))
    assert a_of(ask(d.port, "www.example.")) == {"192.0.2.1"}


POOL_RETRY = """\
pools:
  default:
    policy: failover        # the bad member first, every time
    timeout: 300ms
    retries: 1
    members: [{bad}, {good}]
"""


@pytest.mark.parametrize("kind", ["silent", "servfail"])
def test_pool_timeout_and_retries(knotd, fault_server, dnsmux, tmp_path, kind):
    """pools.*.timeout and retries: a member that does not answer within the
    try's timeout, or answers SERVFAIL, makes the query go to the next
    member -- answered right well within the query's own 2 s deadline."""
    import time
    bad = fault_server(silent=True) if kind == "silent" else fault_server(rcode=dns.rcode.SERVFAIL)
    conf = write_conf(tmp_path, POOL_RETRY.format(bad=bad.url("tcp"), good=knotd.url("tcp")))
    d = dnsmux("-c", conf)
    for i in range(5):
        t0 = time.monotonic()
        m = ask(d.port, "n%d.test." % i)
        took = time.monotonic() - t0
        assert m.rcode() == dns.rcode.NOERROR, m
        assert a_of(m) == helpers.expected_rdata("n%d.test." % i, "A")
        assert took < 1.5, took  # one try's timeout, not the deadline
    st = d.stats()
    assert st["pool_retries"] >= 1, st
    assert len(bad.received) >= 1  # it was asked


HEALTH = """\
pools:
  default:
    policy: round-robin
    members: [{a}, {b}]
    health: {{query: id.server. CH TXT, interval: 200ms, timeout: 150ms, fall: 2, rise: 2}}
"""


def test_health_probes_take_a_member_out_and_back(knotd_factory, dnsmux, tmp_path):
    """Active probes: a member killed is marked down after `fall` probes
    without an answer (logged once), gets no queries while down, and is
    up again after `rise` answered probes once it is back (logged once)."""
    import time
    from conftest import wait_until
    a, b = knotd_factory(), knotd_factory()
    d = dnsmux("-c", write_conf(tmp_path, HEALTH.format(a=a.url("tcp"), b=b.url("tcp"))), "-v")
    b.kill()
    assert wait_until(lambda: "down: 2 health probes" in d.log(), 5.0), d.log()[-2000:]
    t0 = time.monotonic()
    for i in range(20):  # every one answered by a, none waits for b
        m = ask(d.port, "n%d.test." % i)
        assert m.rcode() == dns.rcode.NOERROR
    assert time.monotonic() - t0 < 3.0
    b.start()
    assert wait_until(lambda: " up: 2 health probes" in d.log(), 5.0), d.log()[-2000:]
    log = d.log()
    assert log.count("down: 2 health probes") == 1 and log.count(" up: 2 health probes") == 1, log[-2000:]
