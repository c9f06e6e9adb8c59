"""SIGHUP re-reads the configuration file (issue 9, "Live changes"): a new
immutable snapshot swapped in by every worker; under load no query is lost
or answered twice; the new route is in force within a second; the TCP
circuit to an upstream present in both files is the same connection before
and after; an upstream the new file drops is drained, then closed; a bad
file is rejected with its line and the running configuration kept; the
command line still wins after a reload."""

import re
import signal
import threading
import time

import dns.message
import dns.rcode
import dns.rdatatype
import pytest

import helpers
from conftest import tcp_established_ports, wait_until

EXAMPLE = """$ORIGIN example.
$TTL 60
@ SOA ns hostmaster 1 3600 600 86400 60
@ NS ns
ns A 192.0.2.53
www A 192.0.2.1
www.corp A 198.51.100.1
"""
CORP = """$ORIGIN corp.example.
$TTL 60
@ SOA ns hostmaster 1 3600 600 86400 60
@ NS ns
ns A 10.0.0.53
www A 10.0.0.1
"""

V1 = """\
pools:
  main: {{members: ["{example}"]}}
routes:
  - suffix: .
    pool: main
"""
V2 = """\
pools:
  main: {{members: ["{example}"]}}
  corp: {{members: ["{corp}"]}}
routes:
  - suffix: corp.example.
    pool: corp
  - suffix: .
    pool: main
"""
DEFAULT = 'pools:\n  default: {members: ["%s"]}\n'
V3 = """\
pools:
  corp: {{members: ["{corp}"]}}
routes:
  - suffix: .
    pool: corp
"""


@pytest.fixture
def origins(knotd_factory):
    return knotd_factory(zones={"example.": EXAMPLE}), knotd_factory(zones={"corp.example.": CORP})


def a_of(wire):
    m = dns.message.from_wire(wire)
    return m.rcode(), {rd.address for rrset in m.answer for rd in rrset if rrset.rdtype == dns.rdatatype.A}


def ask(port, name, timeout=3.0):
    return a_of(helpers.udp_exchange(helpers.make_query(name, "A").to_wire(), port, timeout=timeout))


def hup_and_wait(d, generation, timeout=5.0):
    d.send_signal(signal.SIGHUP)
    pat = re.compile(r"configuration %d in force" % generation)
    assert wait_until(lambda: pat.search(d.log()), timeout), d.log()[-2000:]


class Load:
    """Clients asking for www.example. over UDP throughout, each query
    with its own ID; every answer checked (NOERROR, the right address, the
    ID asked) and counted per query, so a lost or doubled answer shows."""

    def __init__(self, port, clients=4, per_client=600, seconds=20.0):
        self.port, self.clients, self.per_client, self.seconds = port, clients, per_client, seconds
        self.results = []  # (client, i, outcome)
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(c,), daemon=True) for c in range(clients)]
        self.stop = threading.Event()

    def run(self, c):
        import socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(3.0)
        deadline = time.monotonic() + self.seconds
        for i in range(self.per_client):
            if self.stop.is_set() or time.monotonic() > deadline:
                break
            q = helpers.make_query("www.example.", "A")
            s.sendto(q.to_wire(), ("127.0.0.1", self.port))
            try:
                got = []
                while True:
                    data, _ = s.recvfrom(65535)
                    m = dns.message.from_wire(data)
                    if m.id == q.id:
                        got.append(a_of(data))
                        s.settimeout(0.0 if got else 3.0)
                        break
            except (socket.timeout, BlockingIOError):
                got = []
            outcome = "lost" if not got else "ok" if got[0] == (dns.rcode.NOERROR, {"192.0.2.1"}) else repr(got[0])
            with self.lock:
                self.results.append((c, i, outcome))
            s.settimeout(3.0)
        s.close()

    def answered(self):
        with self.lock:
            return len(self.results)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(10)


def test_reload_under_load(origins, dnsmux, tmp_path):
    example, corp = origins
    conf = tmp_path / "dnsmux.yaml"
    conf.write_text(V1.format(example=example.url("tcp"), corp=corp.url("tcp")))
    d = dnsmux("-c", conf, "--threads", "2", "-v", "-v")
    assert ask(d.port, "www.corp.example.") == (dns.rcode.NOERROR, {"198.51.100.1"})  # example.'s origin
    with Load(d.port) as load:
        assert wait_until(lambda: load.answered() >= 100 and tcp_established_ports(d.pid, example.port), 10)
        before = set(tcp_established_ports(d.pid, example.port))
        conf.write_text(V2.format(example=example.url("tcp"), corp=corp.url("tcp")))
        t0 = time.monotonic()
        hup_and_wait(d, 2)
        # the new route in force within a second of the signal
        assert wait_until(lambda: ask(d.port, "www.corp.example.", timeout=0.5)
                          == (dns.rcode.NOERROR, {"10.0.0.1"}), 1.0), d.log()[-2000:]
        assert time.monotonic() - t0 < 1.5
        n = load.answered()
        assert wait_until(lambda: load.answered() >= n + 200, 10)
        after = set(tcp_established_ports(d.pid, example.port))
    outcomes = [o for _, _, o in load.results]
    assert outcomes and all(o == "ok" for o in outcomes), [r for r in load.results if r[2] != "ok"][:10]
    # the circuits to the unchanged upstream: the same connections (local ports) before and after
    assert before and before <= after, (before, after)
    st = d.stats()
    assert st["servfail"] == 0, st


def test_removed_upstream_drains_and_closes(origins, dnsmux, tmp_path):
    example, corp = origins
    conf = tmp_path / "dnsmux.yaml"
    conf.write_text(V2.format(example=example.url("tcp"), corp=corp.url("tcp")))
    d = dnsmux("-c", conf, "-v", "-v")
    assert ask(d.port, "www.example.") == (dns.rcode.NOERROR, {"192.0.2.1"})
    assert tcp_established_ports(d.pid, example.port)
    conf.write_text(V3.format(example=example.url("tcp"), corp=corp.url("tcp")))
    hup_and_wait(d, 2)
    # everything goes to corp.example.'s origin now: www.example. is not in its zone
    assert ask(d.port, "www.example.")[0] in (dns.rcode.REFUSED, dns.rcode.NXDOMAIN)
    assert ask(d.port, "www.corp.example.") == (dns.rcode.NOERROR, {"10.0.0.1"})
    # the removed upstream's circuit is closed once it holds nothing, and its snapshot freed
    assert wait_until(lambda: not tcp_established_ports(d.pid, example.port), 5), d.log()[-2000:]
    assert wait_until(lambda: "configuration 1 released" in d.log(), 5), d.log()[-2000:]


def test_bad_file_keeps_the_running_configuration(origins, dnsmux, tmp_path):
    example, corp = origins
    conf = tmp_path / "dnsmux.yaml"
    conf.write_text(V2.format(example=example.url("tcp"), corp=corp.url("tcp")))
    d = dnsmux("-c", conf)
    assert ask(d.port, "www.corp.example.") == (dns.rcode.NOERROR, {"10.0.0.1"})
    conf.write_text(V3.format(example=example.url("tcp"), corp=corp.url("tcp")) + "  - suffix: x.\n    pool: nosuch\n")
    d.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "keeping the running configuration" in d.log(), 5), d.log()[-2000:]
    line = [ln for ln in d.log().splitlines() if "keeping the running configuration" in ln][-1]
    assert re.search(r"dnsmux\.yaml:\d+:\d+: ", d.log()), d.log()[-2000:]
    assert "nosuch" in d.log(), line
    # still V2: both routes
    assert ask(d.port, "www.corp.example.") == (dns.rcode.NOERROR, {"10.0.0.1"})
    assert ask(d.port, "www.example.") == (dns.rcode.NOERROR, {"192.0.2.1"})
    # a file that is not there: the same
    conf.unlink()
    d.send_signal(signal.SIGHUP)
    assert wait_until(lambda: d.log().count("keeping the running configuration") >= 2, 5), d.log()[-2000:]
    assert ask(d.port, "www.example.") == (dns.rcode.NOERROR, {"192.0.2.1"})
    assert d.alive()


def test_command_line_wins_after_a_reload(origins, dnsmux, tmp_path):
    """--upstream replaces the file's pool "default" at start and on every
    reload; --timeout too."""
    example, corp = origins
    conf = tmp_path / "dnsmux.yaml"
    conf.write_text(DEFAULT % corp.url("tcp"))
    d = dnsmux("-c", conf, upstream=example.url("tcp"))
    assert ask(d.port, "www.example.") == (dns.rcode.NOERROR, {"192.0.2.1"})
    conf.write_text(DEFAULT % corp.url("tcp") + "timeout: 3s\n")
    hup_and_wait(d, 2)
    assert ask(d.port, "www.example.") == (dns.rcode.NOERROR, {"192.0.2.1"})


def test_listener_change_needs_a_restart(origins, dnsmux, tmp_path):
    example, _ = origins
    conf = tmp_path / "dnsmux.yaml"
    conf.write_text(DEFAULT % example.url("tcp"))
    d = dnsmux("-c", conf)
    conf.write_text(DEFAULT % example.url("tcp") + "threads: 3\n")
    hup_and_wait(d, 2)
    assert "threads 1 -> 3 needs a restart" in d.log()
    assert ask(d.port, "www.example.") == (dns.rcode.NOERROR, {"192.0.2.1"})


def test_reload_with_tls_upstream_keeps_its_session(unbound_dot, dnsmux, tmp_path, pki):
    """A tls:// upstream in both files: its TLS context (and the circuit)
    carry over; a reload that drops it frees it (ASan checks both)."""
    conf = tmp_path / "dnsmux.yaml"
    conf.write_text(DEFAULT % unbound_dot.url() + "tls: {ca-file: %s}\n" % pki.ca_file)
    d = dnsmux("-c", conf)
    r = helpers.udp_exchange(helpers.make_query("www.test.", "A").to_wire(), d.port, timeout=5)
    assert dns.message.from_wire(r).rcode() == dns.rcode.NOERROR
    before = set(tcp_established_ports(d.pid, unbound_dot.port))
    assert len(before) == 1
    hup_and_wait(d, 2)
    r = helpers.udp_exchange(helpers.make_query("www.test.", "A").to_wire(), d.port, timeout=5)
    assert dns.message.from_wire(r).rcode() == dns.rcode.NOERROR
    assert set(tcp_established_ports(d.pid, unbound_dot.port)) == before
