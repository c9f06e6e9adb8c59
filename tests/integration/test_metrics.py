"""/metrics (--metrics ADDR:PORT, metrics: in the file): the Prometheus text
format scraped with curl, as a Prometheus server would, and parsed here
(and with python3-prometheus-client when it is installed): every name with
its type, counters that move by exactly what the test sent, histograms
that are cumulative and whose counts match the answers, sums over
--threads 2, dnsmux_upstream_up following health probes, and the HTTP
server's bounds."""

import re
import socket
import subprocess
import time

import dns.rcode
import pytest

import helpers
from conftest import free_port, run_dnsmux, wait_until

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # (optional: the parser below is the test's own)
    text_string_to_metric_families = None

TYPES = {
    "dnsmux_queries_total": "counter",
    "dnsmux_answers_total": "counter",
    "dnsmux_upstream_queries_total": "counter",
    "dnsmux_upstream_errors_total": "counter",
    "dnsmux_upstream_latency_seconds": "histogram",
    "dnsmux_upstream_queue_seconds": "histogram",
    "dnsmux_upstream_wire_seconds": "histogram",
    "dnsmux_upstream_handshake_seconds": "histogram",
    "dnsmux_upstream_inflight": "gauge",
    "dnsmux_upstream_up": "gauge",
    "dnsmux_circuits": "gauge",
    "dnsmux_circuit_connects_total": "counter",
    "dnsmux_tls_handshakes_total": "counter",
    "dnsmux_cache_hits_total": "counter",
    "dnsmux_cache_misses_total": "counter",
    "dnsmux_cache_entries": "gauge",
    "dnsmux_dropped_total": "counter",
    "dnsmux_ratelimit_slipped_total": "counter",
    "dnsmux_querylog_dropped_total": "counter",
}
HISTS = [n for n, t in TYPES.items() if t == "histogram"]

SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class Scrape:
    """One /metrics text: .types {family: type}, .samples [(name, labels, value)]."""

    def __init__(self, text):
        self.text = text
        self.types = {}
        self.samples = []
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, typ = line.split(" ", 3)
                assert name not in self.types, "two TYPE lines for %s" % name
                self.types[name] = typ
                continue
            if line.startswith("#") or not line:
                continue
            m = SAMPLE_RE.match(line)
            assert m, "not a sample line: %r" % line
            labels = dict(LABEL_RE.findall(m.group(2) or ""))
            self.samples.append((m.group(1), labels, float(m.group(3))))
        for name, _, _ in self.samples:
            fam = re.sub(r"_(bucket|sum|count)$", "", name) if name not in self.types else name
            assert fam in self.types, "sample %s before/without its TYPE line" % name
        if text_string_to_metric_families is not None:
            fams = {f.name: f.type for f in text_string_to_metric_families(text)}
            for name, typ in TYPES.items():
                base = name[:-len("_total")] if typ == "counter" else name
                assert fams.get(base) == typ, (name, fams.get(base))

    def get(self, name, **labels):
        """The value of the one sample of name with these labels (0 if absent)."""
        vals = [v for n, l, v in self.samples if n == name and all(l.get(k) == str(x) for k, x in labels.items())]
        assert len(vals) <= 1, (name, labels, vals)
        return vals[0] if vals else 0

    def has(self, name, **labels):
        return any(n == name and all(l.get(k) == str(x) for k, x in labels.items()) for n, l, _ in self.samples)

    def buckets(self, family, upstream):
        out = [(l["le"], v) for n, l, v in self.samples if n == family + "_bucket" and l.get("upstream") == upstream]
        return [(float("inf") if le == "+Inf" else float(le), v) for le, v in out]


def scrape(port, path="/metrics"):
    r = subprocess.run(["curl", "-s", "-S", "-D", "-", "--max-time", "5", "http://127.0.0.1:%d%s" % (port, path)],
                       capture_output=True, timeout=10)
    assert r.returncode == 0, r.stderr
    head, _, body = r.stdout.decode().partition("\r\n\r\n")
    return head, body


def metrics(port):
    head, body = scrape(port)
    assert head.startswith("HTTP/1.1 200"), head
    assert re.search(r"(?mi)^content-type: text/plain; version=0\.0\.4", head), head
    return Scrape(body)


def start(dnsmux, knotd, *args, threads=1):
    mport = free_port()
    d = dnsmux("--metrics", "127.0.0.1:%d" % mport, "--threads", str(threads), *args, upstream=knotd.url("tcp"))
    d.mport = mport
    return d


def test_every_name_with_its_type(knotd, dnsmux):
    d = start(dnsmux, knotd, "--cache", "1MiB")
    helpers.udp_query(d.port, "n1.test.")
    helpers.tcp_query(d.port, "n2.test.")
    s = metrics(d.mport)
    for name, typ in TYPES.items():
        assert s.types.get(name) == typ, (name, s.types.get(name))
    up = knotd.url("tcp")
    for h in HISTS:
        b = s.buckets(h, up)
        assert b and b[-1][0] == float("inf"), (h, b)
        assert [le for le, _ in b] == sorted(le for le, _ in b)
        counts = [v for _, v in b]
        assert counts == sorted(counts), "%s not cumulative: %s" % (h, counts)
        assert s.get(h + "_count", upstream=up) == counts[-1]
    for kind in ("timeout", "reset", "refused", "tls", "mismatch"):
        assert s.has("dnsmux_upstream_errors_total", upstream=up, kind=kind)
    for fe in ("udp", "tcp", "dot", "doh"):
        assert s.has("dnsmux_queries_total", frontend=fe)
    for rc in ("NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", "FORMERR", "NOTIMP"):
        assert s.has("dnsmux_answers_total", rcode=rc)
    for reason in ("acl", "ratelimit"):  # (test_acl.py moves them)
        assert s.has("dnsmux_dropped_total", reason=reason)
    for res in ("yes", "no"):
        assert s.has("dnsmux_tls_handshakes_total", upstream=up, resumed=res)
    assert s.get("dnsmux_cache_entries") == 2


def test_counters_move_by_what_was_sent(knotd, dnsmux):
    d = start(dnsmux, knotd, "--cache", "1MiB")
    up = knotd.url("tcp")
    s0 = metrics(d.mport)
    for i in range(20):
        assert helpers.udp_query(d.port, "n%d.test." % i)[3].rcode() == dns.rcode.NOERROR
    for i in range(20, 25):
        assert helpers.tcp_query(d.port, "n%d.test." % i)[3].rcode() == dns.rcode.NOERROR
    assert helpers.udp_query(d.port, "nothing-here.test.")[3].rcode() == dns.rcode.NXDOMAIN
    assert helpers.udp_query(d.port, "n0.test.")[3].rcode() == dns.rcode.NOERROR  # a cache hit
    s = metrics(d.mport)

    def delta(name, **labels):
        return s.get(name, **labels) - s0.get(name, **labels)

    assert delta("dnsmux_queries_total", frontend="udp") == 22
    assert delta("dnsmux_queries_total", frontend="tcp") == 5
    assert delta("dnsmux_answers_total", rcode="NOERROR") == 26
    assert delta("dnsmux_answers_total", rcode="NXDOMAIN") == 1
    assert delta("dnsmux_cache_hits_total") == 1
    assert delta("dnsmux_cache_misses_total") == 26
    # 26 went to the origin and were answered: each seen once by every histogram but the handshake's
    assert delta("dnsmux_upstream_queries_total", upstream=up) == 26
    for h in ("dnsmux_upstream_latency_seconds", "dnsmux_upstream_queue_seconds", "dnsmux_upstream_wire_seconds"):
        assert delta(h + "_count", upstream=up) == 26, h
        assert s.get(h + "_bucket", upstream=up, le="+Inf") == s.get(h + "_count", upstream=up)
    assert delta("dnsmux_upstream_latency_seconds_sum", upstream=up) > 0
    assert s.get("dnsmux_upstream_handshake_seconds_count", upstream=up) >= 1  # the circuit's connect
    assert s.get("dnsmux_circuit_connects_total", upstream=up) >= 1
    assert s.get("dnsmux_upstream_up", upstream=up) == 1
    # gauges are published by the worker every second
    assert wait_until(lambda: metrics(d.mport).get("dnsmux_circuits", upstream=up) == 1, 3.0)
    assert metrics(d.mport).get("dnsmux_upstream_inflight", upstream=up) == 0
    assert s.get("dnsmux_upstream_errors_total", upstream=up, kind="timeout") == 0


def test_two_workers_are_summed(knotd, dnsmux):
    d = start(dnsmux, knotd, threads=2)
    up = knotd.url("tcp")
    items = [("n%d.test." % (i % helpers.N_NAMES), "A") for i in range(400)]
    assert not helpers.summarize(helpers.run_udp_load(d.port, items, clients=100, timeout=5.0))
    st = d.stats()
    per = [st.workers[w]["queries"] for w in sorted(st.workers)]
    assert len(per) == 2 and all(n > 0 for n in per), per  # both served: a sum is not one worker's
    s = metrics(d.mport)
    assert s.get("dnsmux_queries_total", frontend="udp") == 400
    assert s.get("dnsmux_answers_total", rcode="NOERROR") == 400
    assert s.get("dnsmux_upstream_queries_total", upstream=up) == 400
    assert s.get("dnsmux_upstream_latency_seconds_count", upstream=up) == 400
    assert s.get("dnsmux_circuit_connects_total", upstream=up) == 2
    assert wait_until(lambda: metrics(d.mport).get("dnsmux_circuits", upstream=up) == 2, 3.0)


HEALTH = """\
metrics: 127.0.0.1:{mport}
pools:
  default:
    members: [{a}, {b}]
    health: {{query: id.server. CH TXT, interval: 200ms, timeout: 150ms, fall: 2, rise: 2}}
"""


def test_up_follows_the_health_probes(knotd_factory, dnsmux, tmp_path):
    a, b = knotd_factory(), knotd_factory()
    mport = free_port()
    conf = tmp_path / "dnsmux.yaml"
    conf.write_text(HEALTH.format(mport=mport, a=a.url("tcp"), b=b.url("tcp")))
    dnsmux("-c", conf)

    def up(k):
        return metrics(mport).get("dnsmux_upstream_up", upstream=k.url("tcp"))

    assert wait_until(lambda: up(a) == 1 and up(b) == 1, 5.0)
    b.kill()
    assert wait_until(lambda: up(b) == 0, 5.0), metrics(mport).text[-3000:]
    assert up(a) == 1
    assert metrics(mport).get("dnsmux_upstream_errors_total", upstream=b.url("tcp"), kind="timeout") + \
        metrics(mport).get("dnsmux_upstream_errors_total", upstream=b.url("tcp"), kind="reset") + \
        metrics(mport).get("dnsmux_upstream_errors_total", upstream=b.url("tcp"), kind="refused") > 0
    b.start()
    assert wait_until(lambda: up(b) == 1, 5.0)


def test_other_paths_methods_and_bounds(knotd, dnsmux):
    d = start(dnsmux, knotd)
    head, _ = scrape(d.mport, "/")
    assert head.startswith("HTTP/1.1 404"), head
    head, _ = scrape(d.mport, "/metrics?name[]=x")
    assert head.startswith("HTTP/1.1 200"), head
    r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                        "http://127.0.0.1:%d/metrics" % d.mport], capture_output=True, text=True, timeout=10)
    assert r.stdout == "405"
    r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "X-Big: " + "a" * 9000,
                        "http://127.0.0.1:%d/metrics" % d.mport], capture_output=True, text=True, timeout=10)
    assert r.stdout == "431"
    with socket.create_connection(("127.0.0.1", d.mport), timeout=5) as s:
        s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400")
    # 16 idle connections hold every slot: the 17th is closed at once, and a
    # slot frees when one of them goes
    idle = [socket.create_connection(("127.0.0.1", d.mport), timeout=5) for _ in range(16)]
    try:
        with socket.create_connection(("127.0.0.1", d.mport), timeout=5) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                assert s.recv(100) == b""
            except ConnectionResetError:
                pass  # (closed with the request unread: a reset)
        assert wait_until(lambda: "more closed at once" in d.log(), 3.0)
        idle.pop().close()
        assert wait_until(lambda: scrape(d.mport)[0].startswith("HTTP/1.1 200"), 3.0)
        # one that never sends its request is closed after 5 s
        t0 = time.monotonic()
        idle[0].settimeout(10)
        assert idle[0].recv(100) == b""
        assert time.monotonic() - t0 < 5.0 + 2.0
    finally:
        for s in idle:
            s.close()
    assert helpers.udp_query(d.port, "n1.test.")[3].rcode() == dns.rcode.NOERROR


def test_bad_address_and_address_in_use(knotd, tmp_path):
    port = free_port()
    r = run_dnsmux(["--listen", "127.0.0.1:%d" % port, "--upstream", knotd.url("tcp"), "--metrics", "tcp://1.2.3.4:9"])
    assert r.returncode == 2 and "--metrics" in r.stderr, r.stderr
    conf = tmp_path / "bad.yaml"
    conf.write_text("metrics: nowhere\n")
    r = run_dnsmux(["-c", str(conf), "--check-config", "--listen", "127.0.0.1:%d" % port, "--upstream", knotd.url("tcp")])
    assert r.returncode == 2 and "bad.yaml:1:10: metrics:" in r.stderr, r.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        mport = busy.getsockname()[1]
        r = run_dnsmux(["--listen", "127.0.0.1:%d" % port, "--upstream", knotd.url("tcp"),
                        "--metrics", "127.0.0.1:%d" % mport])
    assert r.returncode == 1 and "cannot serve metrics on 127.0.0.1:%d" % mport in r.stderr, r.stderr
