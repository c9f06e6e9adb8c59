"""Upstream connects that fail at once, inside uv_tcp_connect (EMFILE when
clients hold every descriptor; ENETUNREACH where there is no route): the
query is answered, the circuit is retired cleanly, and dnsmux still stops
on SIGTERM with exit code 0 and no sanitizer report.

Guards fault 1: such a failure freed the circuit while its upstream still
listed it. ASan builds reported a heap use-after-free at SIGTERM; release
builds spun a worker at 100 % CPU and never exited. Reached by `make run`
(the embedded default, DNS-over-TLS to public resolvers) on a machine
without a network, and by one client holding ~1,100 idle TCP connections
at `ulimit -n 1024`. Now dnsmux raises its soft descriptor limit to the
hard one and lowers --tcp-max-clients, with a warning, when clients could
otherwise take the descriptors circuits need."""

import select
import socket
import time

import helpers
from conftest import MARGIN, Dnsmux, prlimit_wrapper, process_nofile_limit, tcp_clients, wait_until
from test_listen_any import netns, ns_run  # noqa: F401  (netns: a fresh namespace with only lo)

DRAIN_S = 2.0 + 2.0  # default --timeout for queries in flight, then the client drain


def stop_within_drain(d):
    """SIGTERM; dnsmux must be gone within the drain time (fails otherwise),
    exit 0, no sanitizer report."""
    t0 = time.monotonic()
    rc = d.stop(timeout=DRAIN_S + MARGIN + 2.0)
    took = time.monotonic() - t0
    assert rc == 0, "exit code %s after SIGTERM:\n%s" % (rc, d.log()[-3000:])
    assert took <= DRAIN_S + MARGIN, "exit took %.1fs" % took
    assert not d.problems()


def test_embedded_default_without_network(netns, tmp_path):  # noqa: F811
    """`make run` where nothing but lo is up: dnsmux with no options at all
    (127.0.0.1:53, DoT to public resolvers, unreachable here) in a fresh
    network namespace. One query gets SERVFAIL (or, at worst, no answer
    within dig's wait) without a crash; then SIGTERM -> exit 0 within the
    drain time, no sanitizer report. Old binary: ASan use-after-free at
    SIGTERM (exit 1); release build: never exits."""
    d = Dnsmux([], tmp_path, 0, netns=netns)
    d.start()
    r = ns_run(netns, ["dig", "@127.0.0.1", "-p", "53", "www.example.com", "A", "+tries=1",
                       "+time=%d" % int(2 + MARGIN + 2)], timeout=15)
    status = [ln for ln in r.stdout.splitlines() if "status:" in ln]
    if status:
        assert "status: SERVFAIL" in status[0], r.stdout
    else:
        assert "timed out" in r.stdout or "no servers could be reached" in r.stdout, (r.stdout, r.stderr)
    assert d.alive(), "dnsmux died after one query:\n" + d.log()[-3000:]
    stop_within_drain(d)


N_IDLE = 1100  # more client connections than `ulimit -n 1024` has descriptors


def open_idle_clients(port, n):
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5.0)
        s.connect(("127.0.0.1", port))
        socks.append(s)
    return socks


def closed_by_peer(socks):
    """How many of socks the other end has closed (EOF or reset); poll(),
    not select(): their descriptor numbers run past FD_SETSIZE."""
    p = select.poll()
    by_fd = {s.fileno(): s for s in socks}
    for fd in by_fd:
        p.register(fd, select.POLLIN)
    n = 0
    for fd, ev in p.poll(0):
        if ev & (select.POLLHUP | select.POLLERR):
            n += 1
            continue
        try:
            n += by_fd[fd].recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) == b""
        except BlockingIOError:
            pass
        except OSError:
            n += 1
    return n


def test_circuit_opens_while_clients_hold_every_descriptor(knotd, dnsmux):
    """Hard and soft limit 1024 descriptors, --tcp-max-clients 1024, and
    1,100 idle client connections opened before any query: the circuit to
    knotd still opens and 20 UDP queries are answered right; a warning
    names tcp-max-clients; SIGTERM with every connection still open -> exit
    0 within the drain time, no sanitizer report. Old binary: the circuit's
    connect failed with EMFILE, every query SERVFAIL, use-after-free."""
    d = dnsmux("--tcp-max-clients", "1024", upstream=knotd.url("tcp"), ready=False)
    d.wrapper = prlimit_wrapper(1024)
    d.start()
    assert process_nofile_limit(d.pid) == (1024, 1024)
    socks = open_idle_clients(d.port, N_IDLE)
    try:
        # every connection is either held by dnsmux or closed by it
        settled = wait_until(lambda: tcp_clients(d.pid, d.port) + closed_by_peer(socks) == N_IDLE, 15.0)
        assert settled, "%d held, %d closed of %d" % (tcp_clients(d.pid, d.port), closed_by_peer(socks), N_IDLE)
        held = tcp_clients(d.pid, d.port)
        assert held > 0
        items = [("n%d.test." % i, "A") for i in range(20)]
        results = helpers.run_udp_load(d.port, items, clients=10, timeout=2.0 + MARGIN)
        assert not helpers.summarize(results), (held, helpers.summarize(results), d.log()[-2000:])
        warnings = [ln for ln in d.log().splitlines() if ln.startswith("warning:") and "tcp-max-clients" in ln]
        assert warnings, "no warning naming tcp-max-clients:\n" + d.log()[-2000:]
        assert d.stats()["circuits_failed"] == 0
        stop_within_drain(d)
    finally:
        for s in socks:
            s.close()


def test_soft_descriptor_limit_raised_to_hard(knotd, dnsmux):
    """Soft limit 1024 under a hard limit of 4096: dnsmux runs with 4096
    (what nginx and systemd services do), so its default --tcp-max-clients
    fits and needs no warning. Old binary: kept 1024."""
    d = dnsmux(upstream=knotd.url("tcp"), ready=False)
    d.wrapper = prlimit_wrapper(1024, 4096)
    d.start()
    assert process_nofile_limit(d.pid) == (4096, 4096)
    assert "tcp-max-clients" not in d.log()
    _, qw, rw, _ = helpers.udp_query(d.port, "www.test.", "A")
    assert not helpers.check_answer(qw, rw, {helpers.WWW_A})
