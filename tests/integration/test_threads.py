"""--threads N: N workers, each with its own SO_REUSEPORT listeners and its
own circuit to each upstream."""

import threading

import helpers
from conftest import Sampler, tcp_established, wait_until


def test_two_workers_both_serve_udp(knotd, dnsmux):
    d = dnsmux("--threads", "2", upstream=knotd.url("tcp"))
    # 100 clients = 100 source ports, spread over the two sockets by the kernel
    items = [("n%d.test." % (i % helpers.N_NAMES), "A") for i in range(600)]
    with Sampler(lambda: tcp_established(d.pid, knotd.port)) as samp:
        results = helpers.run_udp_load(d.port, items, clients=100, timeout=5.0)
    assert not helpers.summarize(results)

    st = d.stats()
    assert sorted(st.workers) == [0, 1], st
    per = [st.workers[w]["queries"] for w in (0, 1)]
    assert all(n > 0 for n in per), "queries per worker: %s" % per
    assert sum(per) == st["queries"] >= 600

    # one circuit per worker, never more
    assert wait_until(lambda: tcp_established(d.pid, knotd.port) == 2, 2.0), \
        "expected 2 upstream connections, kernel shows %d" % tcp_established(d.pid, knotd.port)
    counts = [v for v in samp.values if isinstance(v, int)]
    assert max(counts) == 2, counts


def test_two_workers_both_serve_tcp(knotd, dnsmux):
    d = dnsmux("--threads", "2", upstream=knotd.url("tcp"))
    errors = []

    def client(k):
        try:
            with helpers.tcp_connect(d.port, timeout=10) as s:
                for j in range(5):
                    name = "n%d.test." % ((k * 5 + j) % helpers.N_NAMES)
                    q = helpers.make_query(name, "A").to_wire()
                    s.sendall(helpers.frame(q))
                    errors.extend(helpers.check_answer(q, helpers.recv_frame(s, 10), helpers.expected_rdata(name, "A")))
        except Exception as e:
            errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:10]
    st = d.stats()
    per = [st.workers[w]["queries"] for w in sorted(st.workers)]
    assert len(per) == 2 and all(n > 0 for n in per), "queries per worker: %s" % per


def test_two_workers_one_tls_circuit_each(unbound_dot, pki, dnsmux):
    """--threads 2 over DoT: exactly one TLS connection per worker (kernel
    socket table), both workers serve, and a circuit reopened after idling
    resumes a session -- the ticket store is shared by the workers."""
    from conftest import tcp_established_ports
    d = dnsmux("--threads", "2", "--ca-file", pki.ca_file, "--circuit-idle", "300", upstream=unbound_dot.url())
    items = [("n%d.test." % (i % helpers.N_NAMES), "A") for i in range(600)]
    with Sampler(lambda: len(tcp_established_ports(d.pid, unbound_dot.port))) as samp:
        results = helpers.run_udp_load(d.port, items, clients=100, timeout=5.0)
    assert not helpers.summarize(results)
    counts = [v for v in samp.values if isinstance(v, int)]
    assert counts and max(counts) <= 2, counts
    st = d.stats()
    per = [st.workers[w]["queries"] for w in sorted(st.workers)]
    assert len(per) == 2 and all(n > 0 for n in per), "queries per worker: %s" % per
    assert st["tls_auth_failures"] == 0, st
    # idle circuits close; the next queries reconnect with resumed sessions
    assert wait_until(lambda: tcp_established(d.pid, unbound_dot.port) == 0, 3.0)
    results = helpers.run_udp_load(d.port, items[:100], clients=50, timeout=5.0)
    assert not helpers.summarize(results)
    st = d.stats()
    assert st["tls_resumed"] >= 1, st


def test_two_workers_doh_both_ways(knotd, pki, dnsmux):
    """--threads 2 on both sides of a DoH hop (run under ThreadSanitizer by
    make test): a DoH server with two workers, and a dnsmux with two
    workers reaching it over HTTP/2 -- one HTTP/2 connection per worker,
    both workers serve, every answer right."""
    from conftest import tcp_established_ports
    from test_doh_server import start_doh
    origin = start_doh(dnsmux, pki, knotd.url("tcp"), "--threads", "2")
    d = dnsmux("--threads", "2", "--ca-file", pki.ca_file,
               upstream="https://127.0.0.1:%d/dns-query#dns.test" % origin.https)
    items = [("n%d.test." % (i % helpers.N_NAMES), "A") for i in range(600)]
    with Sampler(lambda: len(tcp_established_ports(d.pid, origin.https))) as samp:
        results = helpers.run_udp_load(d.port, items, clients=100, timeout=5.0)
    assert not helpers.summarize(results)
    counts = [v for v in samp.values if isinstance(v, int)]
    assert counts and max(counts) <= 2, counts
    st = d.stats()
    per = [st.workers[w]["queries"] for w in sorted(st.workers)]
    assert len(per) == 2 and all(n > 0 for n in per), "queries per worker: %s" % per
    ost = origin.stats()
    assert ost["doh_h2_clients"] == 2, ost
