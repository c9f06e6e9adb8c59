"""Listeners on every address (--listen 0.0.0.0:PORT, --listen [::]:PORT):
a UDP answer leaves from the address the client sent its query to
(IP_PKTINFO / IPV6_PKTINFO), or the client drops it as a spoof.

These run in a network namespace the test creates, with only `lo` in it
(127.0.0.0/8 and ::1), so a wildcard listener is reachable from nowhere
else. Clients: dig (it reports and ignores a reply from another source),
and a UDP socket that checks the source itself. Upstream: the scripted
server, inside the same namespace."""

import os
import shutil
import subprocess
import sys
import uuid

import pytest

from conftest import MARGIN, Dnsmux
from fault_server import answer_a

HERE = os.path.dirname(os.path.abspath(__file__))
DNSMUX_PORT = 10053
UPSTREAM_PORT = 10054

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"),
                                reason="needs root and iproute2 (ip netns)")

UPSTREAM_SCRIPT = """
import sys, time
sys.path.insert(0, %r)
from fault_server import FaultServer
s = FaultServer(host=sys.argv[1], port=int(sys.argv[2]))
s.start()
print("ready", flush=True)
sys.stdin.read()  # until the test closes our stdin
"""

CLIENT_SCRIPT = """
import socket, sys
import dns.message
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.settimeout(3)
q = dns.message.make_query(sys.argv[3], "A")
s.sendto(q.to_wire(), (sys.argv[1], int(sys.argv[2])))
data, src = s.recvfrom(4096)
r = dns.message.from_wire(data)
print(src[0], r.id == q.id, " ".join(rd.to_text() for rr in r.answer for rd in rr))
"""


@pytest.fixture
def netns():
    name = "dnsmux-t-" + uuid.uuid4().hex[:8]
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot create a network namespace here: %s" % r.stderr.strip())
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def ns_upstream(netns):
    """The scripted server on 127.0.0.1:UPSTREAM_PORT inside the namespace."""
    p = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c", UPSTREAM_SCRIPT % HERE,
                          "127.0.0.1", str(UPSTREAM_PORT)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        yield "udp://127.0.0.1:%d" % UPSTREAM_PORT
    finally:
        p.stdin.close()
        p.wait(10)


def ns_run(netns, argv, timeout=10):
    return subprocess.run(["ip", "netns", "exec", netns] + argv, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def dnsmux_any(netns, ns_upstream, tmp_path):
    d = Dnsmux(["--listen", "0.0.0.0:%d" % DNSMUX_PORT, "--listen", "[::]:%d" % DNSMUX_PORT,
                "--upstream", ns_upstream], tmp_path, 0, netns=netns)
    d.start()
    yield d
    problems = d.problems()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.mark.parametrize("addr", ["127.0.0.1", "127.0.0.2", "127.1.2.3", "::1"])
def test_answer_comes_from_the_address_asked(netns, dnsmux_any, addr):
    """A query to any local address of a wildcard listener is answered from
    that same address, with the upstream's answer."""
    name = "any-%s.example." % addr.replace(":", "-").replace(".", "-")
    r = ns_run(netns, [sys.executable, "-c", CLIENT_SCRIPT, addr, str(DNSMUX_PORT), name])
    assert r.returncode == 0, r.stderr
    src, id_ok, rdata = r.stdout.split(maxsplit=2)
    assert src == addr, "asked %s, answered from %s" % (addr, src)
    assert id_ok == "True"
    assert rdata.strip() == answer_a(name)


def test_dig_accepts_the_answer(netns, dnsmux_any):
    """dig checks the source of a UDP reply (`reply from unexpected source`):
    asked on 127.0.0.5, it gets its answer at the first try."""
    name = "dig.example."
    r = ns_run(netns, ["dig", "@127.0.0.5", "-p", str(DNSMUX_PORT), name, "A", "+tries=1",
                       "+time=%d" % int(2 + MARGIN), "+short"])
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "unexpected source" not in r.stdout + r.stderr, r.stdout
    assert r.stdout.split() == [answer_a(name)]
    st = dnsmux_any.stats()
    assert st["answered"] >= 1, st
