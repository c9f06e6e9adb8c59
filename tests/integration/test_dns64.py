"""DNS64 (issue 10, part 2) compared with BIND 9 from Debian: named and
dnsmux, configured with the same dns64 block, forward to the same knotd
origin, and their AAAA answers must match record by record (names, types,
rdata; TTLs within a second) for names that are A-only, AAAA-only, both, a
CNAME chain to an A-only name, A only in an unmapped range, AAAA only in an
excluded range, NXDOMAIN and NODATA; for a /96 and a /56 prefix (with a
suffix); a client outside `clients` (queries from 127.0.0.2) gets no
synthesis from either; PTR under the prefix answers as BIND's does."""

import ipaddress
import shutil
import socket
import subprocess

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.reversename
import pytest

import helpers
from conftest import ServerProcess, free_port, short_tmpdir

NAMED = shutil.which("named") or "/usr/sbin/named"

ZONE = """\
$TTL 300
@        SOA   ns.example. host.example. 1 3600 600 86400 60
@        NS    ns
ns       A     127.0.0.1
aonly    A     192.0.2.33
aonly    A     198.51.100.7
aaaaonly AAAA  2001:db8::5
both     A     192.0.2.34
both     AAAA  2001:db8::6
chain    CNAME chain2
chain2   CNAME aonly
unmapped A     10.1.2.3
mixmap   A     10.1.2.4
mixmap   A     192.0.2.35
excl     AAAA  ::ffff:192.0.2.40
excl     A     192.0.2.40
exclonly AAAA  ::ffff:192.0.2.41
mixed    AAAA  ::ffff:192.0.2.42
mixed    AAAA  2001:db8::7
mixed    A     192.0.2.42
nodata   TXT   "no address at all"
shortttl 30 A  192.0.2.50
"""

REVERSE = """\
$TTL 300
@        SOA   ns.example. host.example. 1 3600 600 86400 60
@        NS    ns.example.
33       PTR   aonly.example.
"""

NAMES = ["aonly", "aaaaonly", "both", "chain", "unmapped", "mixmap", "excl", "exclonly", "mixed", "nodata",
         "nxdomain", "shortttl"]

PREFIXES = [
    # (prefix, suffix or None)
    ("64:ff9b::/96", None),
    ("2001:db8:122:300::/56", "::42"),
]

NAMED_CONF = """\
options {{
    directory "{dir}";
    pid-file "{dir}/named.pid";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion yes;
    allow-query {{ any; }};
    allow-recursion {{ any; }};
    allow-query-cache {{ any; }};
    dnssec-validation no;
    forward only;
    forwarders {{ 127.0.0.1 port {knot}; }};
    empty-zones-enable no;
    querylog no;
    dns64 {prefix} {{
        clients {{ 127.0.0.1; }};
        mapped {{ !10.0.0.0/8; any; }};
{suffix}    }};
}};
controls {{ }};
zone "." {{ type hint; file "{dir}/root.hints"; }};
"""


class Named(ServerProcess):
    """BIND 9's named in the foreground on 127.0.0.1:port."""

    name = "named"

    def __init__(self, knot_port, prefix, suffix):
        self.port = free_port()
        self.dir = short_tmpdir("dnsmux-named-")
        # root hints on loopback: nothing can leave the host, even priming
        (self.dir / "root.hints").write_text(". 3600000 NS a.root.test.\na.root.test. 3600000 A 127.0.0.1\n")
        conf = NAMED_CONF.format(dir=self.dir, port=self.port, knot=knot_port, prefix=prefix,
                                 suffix="        suffix %s;\n" % suffix if suffix else "")
        self.conf = self.dir / "named.conf"
        self.conf.write_text(conf)
        self.log_path = self.out_path = self.dir / "named.log"

    def argv(self):
        return [NAMED, "-g", "-c", str(self.conf)]

    def ready(self):
        q = dns.message.make_query("example.", "SOA")
        try:
            r = dns.query.udp(q, "127.0.0.1", port=self.port, timeout=0.5)
        except (OSError, EOFError, dns.exception.DNSException):
            return False
        return r.rcode() == 0 and bool(r.answer)

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""


def dnsmux_conf(tmp_path, port, knot_port, prefix, suffix):
    text = """\
listen: ["127.0.0.1:{port}"]
pools:
  default: {{members: ["udp://127.0.0.1:{knot}"]}}
cache: {{size: 4MiB}}
dns64:
  - prefix: {prefix}
    clients: [127.0.0.1]
    mapped: ["!10.0.0.0/8", any]
{suffix}""".format(port=port, knot=knot_port, prefix=prefix, suffix='    suffix: "%s"\n' % suffix if suffix else "")
    p = tmp_path / "dns64.yaml"
    p.write_text(text)
    return p


@pytest.fixture(params=PREFIXES, ids=[p[0] for p in PREFIXES])
def pair(request, knotd_factory, dnsmux, tmp_path):
    """(dnsmux port, named port, prefix) over one knotd."""
    if not shutil.which("named") and not shutil.os.path.exists(NAMED):
        pytest.skip("named (bind9) is not installed")
    prefix, suffix = request.param
    k = knotd_factory(zones={"example.": ZONE, "2.0.192.in-addr.arpa.": REVERSE})
    n = Named(k.port, prefix, suffix)
    n.start()
    port = free_port()
    d = dnsmux("-c", dnsmux_conf(tmp_path, port, k.port, prefix, suffix), listen=[])
    d.port = port
    yield d, n, prefix
    n.cleanup()


def ask(port, name, rdtype="AAAA", source="127.0.0.1", want_dnssec=False):
    q = dns.message.make_query(name, rdtype, use_edns=0, payload=1232, want_dnssec=want_dnssec)
    return dns.query.udp(q, "127.0.0.1", port=port, timeout=5, source=source)


def records(r):
    """The answer section as {(name, type, rdata): ttl}."""
    out = {}
    for rrset in r.answer:
        for rd in rrset:
            out[(rrset.name.to_text().lower(), dns.rdatatype.to_text(rrset.rdtype), rd.to_text().lower())] = rrset.ttl
    return out


def same(a, b):
    """dnsmux's answer a and BIND's b: rcode, then the answer section
    record by record, TTLs within a second."""
    assert a.rcode() == b.rcode(), (a, b)
    ra, rb = records(a), records(b)
    assert set(ra) == set(rb), "dnsmux:\n%s\nBIND:\n%s" % (a, b)
    for k in ra:
        assert abs(ra[k] - rb[k]) <= 1, (k, ra[k], rb[k])
    return ra


def under(prefix, addr):
    try:
        return ipaddress.ip_address(addr) in ipaddress.ip_network(prefix)
    except ValueError:
        return False


def aaaa_of(r):
    return {rd.address for rrset in r.answer if rrset.rdtype == dns.rdatatype.AAAA for rd in rrset}


def test_aaaa_answers_match_bind(pair):
    d, n, prefix = pair
    got = {}
    for name in NAMES:
        q = "%s.example." % name
        got[name] = same(ask(d.port, q), ask(n.port, q))
    # and it is DNS64 that was compared, not two empty answers
    assert any(under(prefix, k[2]) for k in got["aonly"]), got["aonly"]
    assert any(under(prefix, k[2]) for k in got["chain"]), got["chain"]
    assert any(under(prefix, k[2]) for k in got["exclonly"]) is False  # no A to synthesise from
    assert any(under(prefix, k[2]) for k in got["excl"]), got["excl"]
    assert ("chain.example.", "CNAME", "chain2.example.") in got["chain"]
    assert not any(under(prefix, k[2]) for k in got["unmapped"])
    assert not any(under(prefix, k[2]) for k in got["both"])
    stats = d.stats()
    assert stats["dns64_synthesised"] >= 4, stats


def test_a_second_time_from_the_cache(pair):
    """The synthesised answer is cached under its entry: the same again."""
    d, n, _ = pair
    first = ask(d.port, "aonly.example.")
    again = ask(d.port, "aonly.example.")
    assert set(records(first)) == set(records(again))
    same(again, ask(n.port, "aonly.example."))


def test_client_outside_clients_gets_no_synthesis(pair):
    d, n, prefix = pair
    for name in ("aonly", "chain", "exclonly"):
        q = "%s.example." % name
        a = ask(d.port, q, source="127.0.0.2")
        same(a, ask(n.port, q, source="127.0.0.2"))
        assert not aaaa_of(a) or name == "exclonly", a
    # and from 127.0.0.1 the same name is synthesised
    assert aaaa_of(ask(d.port, "aonly.example."))


def test_ptr_under_the_prefix_answers_as_bind(pair):
    d, n, prefix = pair
    # the address dnsmux synthesised for 192.0.2.33 is the one asked about
    addrs = aaaa_of(ask(d.port, "aonly.example."))
    v6 = [a for a in addrs if under(prefix, a)]
    assert v6
    assert len(v6) == 2  # 192.0.2.33 (its PTR is served) and 198.51.100.7 (its reverse zone is not)
    seen = {}
    for addr in sorted(v6):
        name = dns.reversename.from_address(addr).to_text()
        a, b = ask(d.port, name, "PTR"), ask(n.port, name, "PTR")
        seen[addr] = same(a, b)
    got = [g for g in seen.values() if g]
    assert len(got) == 1, seen  # the other: SERVFAIL from both (the IPv4 name's query was refused)
    assert {k[1] for k in got[0]} == {"CNAME", "PTR"}, got
    assert ("33.2.0.192.in-addr.arpa.", "PTR", "aonly.example.") in got[0]
    # and the names that are not a whole address: rcode as BIND's
    whole = dns.reversename.from_address(sorted(v6)[0]).to_text()
    for name in (whole.split(".", 4)[-1], "x." + whole.split(".", 1)[1]):
        a, b = ask(d.port, name, "PTR"), ask(n.port, name, "PTR")
        assert a.rcode() == b.rcode(), (name, a, b)
        assert records(a) == {} and records(b) == {}


def test_nxdomain_stays_and_a_queries_are_untouched(pair):
    d, n, _ = pair
    r = ask(d.port, "nxdomain.example.")
    assert r.rcode() == dns.rcode.NXDOMAIN and not r.answer
    for name in ("aonly", "chain", "unmapped"):
        same(ask(d.port, "%s.example." % name, "A"), ask(n.port, "%s.example." % name, "A"))


def test_a_query_that_fails_leaves_the_aaaa_answer(knotd_factory, dnsmux, tmp_path):
    """The A query is routed like any other: sent to a pool that cannot
    answer, it fails, and the client gets the NODATA it had (as BIND does
    when its A lookup fails), once, well within its deadline."""
    k = knotd_factory(zones={"example.": ZONE})
    port = free_port()
    text = """\
listen: ["127.0.0.1:{port}"]
timeout: 3s
pools:
  default: {{members: ["udp://127.0.0.1:{knot}"]}}
  dead: {{members: ["tcp://127.0.0.1:1"]}}
routes:
  - suffix: example.
    qtype: A
    pool: dead
  - suffix: .
    pool: default
dns64:
  - prefix: 64:ff9b::/96
""".format(port=port, knot=k.port)
    conf = tmp_path / "dns64-dead.yaml"
    conf.write_text(text)
    d = dnsmux("-c", conf, listen=[])
    d.port = port
    r = ask(port, "aonly.example.")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer, r
    assert any(rrset.rdtype == dns.rdatatype.SOA for rrset in r.authority), r
    # AAAA queries still reach the origin through the default pool
    assert aaaa_of(ask(port, "aaaaonly.example.")) == {"2001:db8::5"}
    s = d.stats()
    assert s["dns64_lookups"] == 1 and s["dns64_unsynthesised"] == 1 and s["dns64_synthesised"] == 0, s
