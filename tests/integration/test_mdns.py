"""The .local bridge (mdns:// upstream, --mdns): avahi-daemon publishes a host
and a service in one network namespace, dnsmux runs in another, the two
joined by a veth pair (loopback multicast would not show that queries leave
by the interface and unicast answers come back from the responder's own
address). Everything runs in namespaces the fixture makes and deletes;
avahi gets its own configuration, hosts file and services directory bind-
mounted over /etc/avahi, and a tmpfs /run, inside a private mount namespace,
without D-Bus -- the host's own /etc/avahi, /run and network are untouched.

knotd, the origin for every other name, runs on the dnsmux namespace's lo."""

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest

from conftest import MARGIN, Dnsmux, Knotd, free_port, short_tmpdir  # noqa: E402
import helpers

AVAHI = shutil.which("avahi-daemon") or "/usr/sbin/avahi-daemon"

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip") or not os.access(AVAHI, os.X_OK),
                                reason="needs root, iproute2 (ip netns) and avahi-daemon")

V4_MUX, V4_AVAHI = "10.77.0.1", "10.77.0.2"
V6_MUX, V6_AVAHI = "fd77::1", "fd77::2"
# printer.local: a device without mDNS of its own, which avahi publishes
# statically (not avahi's own addresses: their reverse names are avahi's host name's)
V4_PRINTER, V6_PRINTER = "10.77.0.9", "fd77::9"
IF_MUX, IF_AVAHI = "vmdns0", "vmdns1"
SERVICE = "testprinter._ipp._tcp.local."
TXT = {b"rp=printers/test", b"note=lab"}

AVAHI_CONF = """\
[server]
host-name=avahitest
domain-name=local
use-ipv4=yes
use-ipv6=yes
allow-interfaces={iface}
enable-dbus=no
[wide-area]
enable-wide-area=no
[publish]
publish-addresses=yes
publish-hinfo=no
publish-workstation=no
publish-aaaa-on-ipv4=yes
publish-a-on-ipv6=no
[reflector]
enable-reflector=no
"""

HOSTS = "{v4} printer.local\n{v6} printer.local\n"

IPP_SERVICE = """\
<?xml version="1.0" standalone='no'?>
<!DOCTYPE service-group SYSTEM "avahi-service.dtd">
<service-group>
  <name>testprinter</name>
  <service>
    <type>_ipp._tcp</type>
    <port>631</port>
    <host-name>printer.local</host-name>
    <txt-record>rp=printers/test</txt-record>
    <txt-record>note=lab</txt-record>
  </service>
</service-group>
"""

# Sends one query from inside a namespace (argv: server port name type), prints the answer as hex.
QUERY_SCRIPT = """\
import sys, dns.message, dns.query
q = dns.message.make_query(sys.argv[3], sys.argv[4], use_edns=0, payload=1232)
try:
    r = dns.query.udp(q, sys.argv[1], port=int(sys.argv[2]), timeout=float(sys.argv[5]))
    print(r.to_wire().hex())
except Exception as e:
    print("error", type(e).__name__, e)
"""


def run(*argv, check=True):
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=30)


def ns_run(ns, *argv, check=True):
    return run("ip", "netns", "exec", ns, *argv, check=check)


class Topology:
    def __init__(self):
        tag = uuid.uuid4().hex[:6]
        self.mux, self.avahi = "mdns-mux-" + tag, "mdns-av-" + tag
        self.made = []

    def up(self):
        for ns in (self.mux, self.avahi):
            run("ip", "netns", "add", ns)
            self.made.append(ns)
            # no duplicate address detection: addresses are usable at once, no wait
            ns_run(ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
            run("ip", "-n", ns, "link", "set", "lo", "up")
        # made inside the namespaces: the host never sees either end
        run("ip", "-n", self.mux, "link", "add", IF_MUX, "type", "veth", "peer", "name", IF_AVAHI, "netns",
            self.avahi)
        for ns, ifc, v4, v6 in ((self.mux, IF_MUX, V4_MUX, V6_MUX), (self.avahi, IF_AVAHI, V4_AVAHI, V6_AVAHI)):
            run("ip", "-n", ns, "addr", "add", v4 + "/24", "dev", ifc)
            run("ip", "-n", ns, "-6", "addr", "add", v6 + "/64", "dev", ifc, "nodad")
            run("ip", "-n", ns, "link", "set", ifc, "up")
        for ns, ifc in ((self.mux, IF_MUX), (self.avahi, IF_AVAHI)):
            wait_for(lambda: "LOWER_UP" in run("ip", "-n", ns, "link", "show", ifc).stdout, 10, "%s carrier" % ifc)
            wait_for(lambda: "fe80::" in run("ip", "-n", ns, "-6", "addr", "show", ifc).stdout, 10,
                     "%s link-local address" % ifc)
        return self

    def down(self):
        for ns in self.made:
            subprocess.run(["ip", "netns", "del", ns], check=False)


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise RuntimeError("no %s within %.0fs" % (what, timeout))
        time.sleep(0.05)


class Avahi:
    def __init__(self, ns):
        self.ns = ns
        self.dir = short_tmpdir("dnsmux-avahi-")
        etc = self.dir / "etc"
        (etc / "services").mkdir(parents=True)
        (etc / "avahi-daemon.conf").write_text(AVAHI_CONF.format(iface=IF_AVAHI))
        (etc / "hosts").write_text(HOSTS.format(v4=V4_PRINTER, v6=V6_PRINTER))
        (etc / "services" / "ipp.service").write_text(IPP_SERVICE)
        self.log_path = self.dir / "avahi.log"
        self.proc = None

    def start(self, timeout=20.0):
        etc = self.dir / "etc"
        # a private mount namespace: our files over /etc/avahi, an empty /run (pid file, socket)
        script = ("mount --make-rprivate / && mount --bind {etc} /etc/avahi && mount -t tmpfs none /run && "
                  "exec {avahi} -f /etc/avahi/avahi-daemon.conf --no-drop-root --no-chroot --no-rlimits "
                  "--no-proc-title --debug").format(etc=etc, avahi=AVAHI)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns, "unshare", "-m", "sh", "-c", script],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        wait_for(lambda: "Server startup complete" in self.log() or self.proc.poll() is not None, timeout,
                 "avahi startup")
        if self.proc.poll() is not None:
            raise RuntimeError("avahi-daemon exited %s:\n%s" % (self.proc.returncode, self.log()))
        # the static entries are probed (RFC 6762 8.1) before they are announced
        wait_for(lambda: self.log().count("successfully established") >= 3 or "failure" in self.log(), timeout,
                 "avahi's static entries")
        if "failure" in self.log():
            raise RuntimeError("avahi-daemon did not publish:\n%s" % self.log())
        return self

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


class NsKnotd(Knotd):
    """The knotd fixture's server, on the lo of a namespace."""

    def __init__(self, ns):
        self.ns = ns
        super().__init__(host="127.0.0.1", port=free_port())

    def argv(self):
        return ["ip", "netns", "exec", self.ns] + super().argv()

    def ready(self):
        r = ns_query(self.ns, self.port, "www.test.", "A", timeout=0.5)
        return r is not None and helpers.rdata_set(r) == {helpers.WWW_A}


def ns_query(ns, port, name, rdtype, timeout=2.0, server="127.0.0.1"):
    """One UDP query from inside ns; the parsed answer, or None (timeout, error)."""
    out = ns_run(ns, sys.executable, "-c", QUERY_SCRIPT, server, str(port), name, rdtype, str(timeout)).stdout.strip()
    if out.startswith("error") or not out:
        return None
    return dns.message.from_wire(bytes.fromhex(out))


@pytest.fixture(scope="module")
def lan():
    """(topology, avahi, knotd): both namespaces up, avahi publishing, knotd answering."""
    topo = Topology()
    avahi = knot = None
    try:
        topo.up()
        avahi = Avahi(topo.avahi).start()
        knot = NsKnotd(topo.mux).start()
        yield topo, avahi, knot
    finally:
        if knot:
            knot.cleanup()
        if avahi:
            avahi.stop()
        topo.down()


@pytest.fixture
def bridge(lan, tmp_path):
    """Factory: dnsmux in the dnsmux namespace with these extra args; returns (Dnsmux, port)."""
    topo, _, knot = lan
    started = []

    def start(*args):
        port = free_port()
        d = Dnsmux(["--listen", "127.0.0.1:%d" % port, *args], tmp_path, len(started), netns=topo.mux)
        started.append(d)
        d.start()
        d.port = port
        return d

    yield start
    errors = []
    for d in started:
        errors += d.problems()
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)


def ask(lan, d, name, rdtype, timeout=3.0):
    r = ns_query(lan[0].mux, d.port, name, rdtype, timeout=timeout * MARGIN)
    assert r is not None, "no answer from dnsmux for %s %s:\n%s" % (name, rdtype, d.log()[-2000:])
    return r


def records(r, rdtype, section="answer"):
    return [rd for rrset in getattr(r, section) if rrset.rdtype == dns.rdatatype.from_text(rdtype) for rd in rrset]


def ask_until(lan, d, name, rdtype, timeout=10.0):
    """Asked again until records come (avahi announces right after it probed): bounded."""
    deadline = time.monotonic() + timeout * MARGIN
    while True:
        r = ask(lan, d, name, rdtype)
        if records(r, rdtype) or time.monotonic() > deadline:
            return r


def check_bridge(lan, d):
    knot = lan[2]
    r = ask_until(lan, d, "printer.local.", "A")
    assert r.rcode() == dns.rcode.NOERROR
    assert {rd.address for rd in records(r, "A")} == {V4_PRINTER}
    assert r.flags & dns.flags.QR and r.flags & dns.flags.RA and not r.flags & dns.flags.AA
    for rrset in r.answer:
        assert rrset.rdclass == dns.rdataclass.IN and rrset.ttl <= 120  # cache-flush bit cleared, TTL capped

    r = ask_until(lan, d, "printer.local.", "AAAA")
    assert {rd.address for rd in records(r, "AAAA")} == {V6_PRINTER}

    r = ask_until(lan, d, SERVICE, "SRV")
    srv = records(r, "SRV")
    assert [(s.port, s.target.to_text()) for s in srv] == [(631, "printer.local.")]

    r = ask_until(lan, d, SERVICE, "TXT")
    assert {s for rd in records(r, "TXT") for s in rd.strings} == TXT

    r = ask_until(lan, d, "_ipp._tcp.local.", "PTR")
    assert [rd.target.to_text() for rd in records(r, "PTR")] == [SERVICE]

    # nobody has it: NXDOMAIN once the wait (1 s) is over, well within the query timeout
    t0 = time.monotonic()
    r = ask(lan, d, "nobody-%s.local." % uuid.uuid4().hex[:8], "A", timeout=5.0)
    took = time.monotonic() - t0
    assert r.rcode() == dns.rcode.NXDOMAIN and not r.answer
    assert 0.8 < took < 2.0 * MARGIN, took

    # every other name still goes to the origin
    before = knot.queries()
    r = ask(lan, d, "www.test.", "A")
    assert helpers.rdata_set(r) == {helpers.WWW_A}
    assert knot.queries() > before


def test_mdns_flag(lan, bridge):
    """--mdns IFACE: local. to multicast DNS on the veth, the rest to --upstream."""
    d = bridge("--upstream", "udp://127.0.0.1:%d" % lan[2].port, "--mdns", IF_MUX)
    check_bridge(lan, d)


def test_mdns_flag_dig(lan, bridge):
    """The same through dig, as a container's resolver would ask."""
    d = bridge("--upstream", "udp://127.0.0.1:%d" % lan[2].port, "--mdns", IF_MUX)
    ask_until(lan, d, "printer.local.", "A")
    out = ns_run(lan[0].mux, "dig", "@127.0.0.1", "-p", str(d.port), "printer.local", "+short", "+tries=1",
                 "+time=%d" % int(3 * MARGIN)).stdout.split()
    assert out == [V4_PRINTER]
    out = ns_run(lan[0].mux, "dig", "@127.0.0.1", "-p", str(d.port), "AAAA", "printer.local", "+short",
                 "+tries=1", "+time=%d" % int(3 * MARGIN)).stdout.split()
    assert out == [V6_PRINTER]


def test_mdns_yaml_every_interface(lan, bridge, tmp_path):
    """The same in YAML: a pool with an mdns:// member (every interface) and a route suffix: local. to it."""
    conf = tmp_path / "mdns.yaml"
    conf.write_text("""\
pools:
  default:
    members: [udp://127.0.0.1:%d]
  lan:
    timeout: 1s
    members: [mdns://]
routes:
  - suffix: local.
    pool: lan
  - suffix: .
    pool: default
""" % lan[2].port)
    d = bridge("-c", str(conf))
    check_bridge(lan, d)


def test_mdns_config_errors(tmp_path):
    """Bad mdns:// URLs and a health-probed mDNS pool are configuration errors (exit 2)."""
    from conftest import DNSMUX_BIN
    for url, why in (("mdns://eth0/x", "interface name"), ("mdns://" + "x" * 20, "interface name")):
        r = subprocess.run([str(DNSMUX_BIN), "--listen", "127.0.0.1:%d" % free_port(), "--upstream", url],
                           capture_output=True, text=True, timeout=15)
        assert r.returncode == 2 and why in r.stderr, r.stderr
    conf = tmp_path / "bad.yaml"
    conf.write_text("""\
listen: [127.0.0.1:5300]
pools:
  default:
    members: [udp://127.0.0.1:53]
  lan:
    members: [mdns://eth0]
    health: {interval: 1s}
routes:
  - suffix: local.
    pool: lan
  - suffix: .
    pool: default
""")
    r = subprocess.run([str(DNSMUX_BIN), "--check-config", "-c", str(conf)], capture_output=True, text=True,
                       timeout=15)
    assert r.returncode == 2 and "not health-probed" in r.stderr, r.stderr
