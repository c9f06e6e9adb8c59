"""The control socket (control: PATH, --control PATH) driven by the built
dnsmux-ctl, as an operator runs it (issue 11, item 5; doc/control.md):
status names the upstreams the test configured and follows their health;
stats counters move by exactly the queries sent, summed over --threads 2;
reload answers the new generation and the new routes answer, or a bad
file's FILE:LINE:COL with exit 1 and the old configuration still
answering; cache-flush of everything, of one name, of a name and below,
each checked at an origin that counts its queries, and again and again
while two workers answer from the cache; bad commands are an
error exit; a client that sends nothing holds up nobody, and the 17th
connection is told "busy"; the socket is 0660, a stale one is replaced and
a live one is not; dnsmux --version names the libraries."""

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import dns.rcode
import pytest

import helpers
from conftest import DNSMUX_BIN, MARGIN, Sampler, dnsmux_env, free_port, run_dnsmux, short_tmpdir, wait_until
from test_reload import EXAMPLE  # the zone example. with www.example. A 192.0.2.1

CTL = Path(os.environ.get("DNSMUX_CTL_BIN", DNSMUX_BIN.parent / "dnsmux-ctl"))


def ctl(sock, *args, timeout=30.0):
    if not (CTL.is_file() and os.access(CTL, os.X_OK)):
        pytest.fail("dnsmux-ctl not built beside %s (or set DNSMUX_CTL_BIN)" % DNSMUX_BIN)
    return subprocess.run([str(CTL), "-s", str(sock), *map(str, args)], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout, env=dnsmux_env())


def ctl_json(sock, *args):
    r = ctl(sock, *args)
    assert r.returncode == 0, (args, r.returncode, r.stderr)
    return json.loads(r.stdout)


def raw(sock, data, timeout=5.0):
    """data on a connection of our own, then everything until EOF."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(sock))
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            b = s.recv(65536)
            if not b:
                return out
            out += b


@pytest.fixture
def sock_path():
    d = short_tmpdir("dnsmux-ctl-")
    yield d / "control.sock"
    shutil.rmtree(d, ignore_errors=True)


def test_status_names_the_upstreams(knotd, dnsmux, sock_path):
    ups = [knotd.url("tcp"), knotd.url("udp")]
    d = dnsmux("--control", sock_path, "--cache", "1MiB", upstream=ups)
    st = os.lstat(sock_path)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)
    s = ctl_json(sock_path, "status")
    assert sorted(u["url"] for u in s["upstreams"]) == sorted(ups), s
    for u in s["upstreams"]:
        assert u["up"] is True and u["inflight"] == 0 and isinstance(u["circuits"], int), u
    assert s["generation"] == 1 and s["threads"] == 1 and s["file"] is None, s
    assert s["pid"] == d.pid and 0 <= s["uptime_seconds"] < 60, s
    version = run_dnsmux(["--version", "--listen", "127.0.0.1:%d" % free_port(), "--upstream", ups[0]])
    assert version.stdout.split("\n", 1)[0] == "dnsmux " + s["version"], (version.stdout, s)
    assert s["cache"]["entries"] == 0 and s["cache"]["size"] == 1 << 20 and s["cache"]["bytes"] > 0, s
    assert helpers.udp_query(d.port, "www.test.")[3].rcode() == dns.rcode.NOERROR
    assert ctl_json(sock_path, "status")["cache"]["entries"] == 1
    # the TCP circuit shows once the worker publishes its gauges (every second)
    tcp = knotd.url("tcp")
    assert wait_until(lambda: [u["circuits"] for u in ctl_json(sock_path, "status")["upstreams"]
                               if u["url"] == tcp] == [1], 3.0)


HEALTH = """\
control: {sock}
pools:
  default:
    members: [{a}, {b}]
    health: {{query: id.server. CH TXT, interval: 200ms, timeout: 150ms, fall: 2, rise: 2}}
"""


def test_status_follows_the_health_probes(knotd_factory, dnsmux, tmp_path, sock_path):
    a, b = knotd_factory(), knotd_factory()
    conf = tmp_path / "dnsmux.yaml"
    conf.write_text(HEALTH.format(sock=sock_path, a=a.url("tcp"), b=b.url("tcp")))
    dnsmux("-c", conf)  # control: from the file

    def up():
        return {u["url"]: u["up"] for u in ctl_json(sock_path, "status")["upstreams"]}

    assert up() == {a.url("tcp"): True, b.url("tcp"): True}
    assert ctl_json(sock_path, "status")["file"] == str(conf)
    b.kill()
    assert wait_until(lambda: up()[b.url("tcp")] is False, 5.0), up()
    assert up()[a.url("tcp")] is True
    b.start()
    assert wait_until(lambda: up()[b.url("tcp")] is True, 5.0), up()


@pytest.mark.parametrize("threads", [1, 2])
def test_stats_move_by_what_was_sent(knotd, dnsmux, sock_path, threads):
    up = knotd.url("tcp")
    d = dnsmux("--control", sock_path, "--threads", threads, upstream=up)
    s0 = ctl_json(sock_path, "stats")
    items = [("n%d.test." % (i % helpers.N_NAMES), "A") for i in range(60)]
    assert not helpers.summarize(helpers.run_udp_load(d.port, items, clients=30, timeout=5.0))
    for i in range(5):
        assert helpers.tcp_query(d.port, "n%d.test." % i)[3].rcode() == dns.rcode.NOERROR
    s = ctl_json(sock_path, "stats")
    c0, c = s0["counters"], s["counters"]
    assert c["queries"] - c0["queries"] == 65, (c0, c)
    assert c["answered"] - c0["answered"] == 65
    assert s["queries_by_frontend"]["udp"] - s0["queries_by_frontend"]["udp"] == 60
    assert s["queries_by_frontend"]["tcp"] - s0["queries_by_frontend"]["tcp"] == 5
    assert s["answers_by_rcode"]["NOERROR"] - s0["answers_by_rcode"]["NOERROR"] == 65
    assert set(METRICS_NAMES) <= set(c), sorted(set(METRICS_NAMES) - set(c))
    (u,) = [x for x in s["upstreams"] if x["url"] == up]
    (u0,) = [x for x in s0["upstreams"] if x["url"] == up] or [{"queries": 0, "latency": {"count": 0}}]
    assert u["queries"] - u0["queries"] == 65
    assert u["latency"]["count"] - u0["latency"]["count"] == 65 and u["latency"]["sum_seconds"] > 0
    assert set(u["errors"]) == {"timeout", "reset", "refused", "tls", "mismatch"}
    assert u["connects"] == threads  # a circuit per worker
    # the same as the SIGUSR1 lines' total: a sum over the workers
    st = d.stats()
    assert st["queries"] == c["queries"] and len(st.workers) == threads
    if threads == 2:
        per = [st.workers[w]["queries"] for w in sorted(st.workers)]
        assert all(n > 0 for n in per) and sum(per) == c["queries"], per  # not one worker's


METRICS_NAMES = ["queries", "answered", "servfail", "late", "mismatched", "overflow", "cache_hits",
                 "cache_misses", "circuits_opened", "tcp_clients", "querylog_dropped"]

ONE_POOL = """\
control: {sock}
pools:
  default: {{members: ["{up}"]}}
"""
TWO_POOLS = """\
control: {sock}
pools:
  default: {{members: ["{up}"]}}
  ex: {{members: ["{ex}"]}}
routes:
  - suffix: example.
    pool: ex
  - suffix: .
    pool: default
"""


def a_of(port, name):
    r = helpers.udp_query(port, name)[3]
    return r.rcode(), {rd.address for rrset in r.answer for rd in rrset}


def test_reload_a_good_file_and_a_bad_one(knotd, knotd_factory, dnsmux, tmp_path, sock_path):
    ex = knotd_factory(zones={"example.": EXAMPLE})
    conf = tmp_path / "dnsmux.yaml"
    conf.write_text(ONE_POOL.format(sock=sock_path, up=knotd.url("tcp")))
    d = dnsmux("-c", conf)
    assert a_of(d.port, "www.example.")[0] != dns.rcode.NOERROR  # knotd serves test. only
    conf.write_text(TWO_POOLS.format(sock=sock_path, up=knotd.url("tcp"), ex=ex.url("tcp")))
    r = ctl_json(sock_path, "reload")
    assert r["generation"] == 2 and r["file"] == str(conf), r
    # synchronous: in force for the next query, no wait
    assert a_of(d.port, "www.example.") == (dns.rcode.NOERROR, {"192.0.2.1"})
    assert ctl_json(sock_path, "status")["generation"] == 2
    # a bad file: exit 1, FILE:LINE:COL on stderr, nothing changes
    conf.write_text(TWO_POOLS.format(sock=sock_path, up=knotd.url("tcp"), ex=ex.url("tcp"))
                    + "  - suffix: x.\n    pool: nosuch\n")
    r = ctl(sock_path, "reload")
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == ""
    assert "%s:11:11: " % conf in r.stderr and "nosuch" in r.stderr, r.stderr
    assert ctl_json(sock_path, "status")["generation"] == 2
    assert a_of(d.port, "www.example.") == (dns.rcode.NOERROR, {"192.0.2.1"})
    assert a_of(d.port, "www.test.") == (dns.rcode.NOERROR, {helpers.WWW_A})
    # a file that is not YAML, then none at all
    conf.write_text("pools: [\n")
    r = ctl(sock_path, "reload")
    assert r.returncode == 1 and "%s:2:1: not YAML" % conf in r.stderr, r.stderr
    conf.unlink()
    r = ctl(sock_path, "reload")
    assert r.returncode == 1 and "cannot open" in r.stderr, r.stderr
    assert a_of(d.port, "www.example.") == (dns.rcode.NOERROR, {"192.0.2.1"})
    # SIGHUP and the socket count the same generations
    conf.write_text(ONE_POOL.format(sock=sock_path, up=knotd.url("tcp")))
    assert ctl_json(sock_path, "reload")["generation"] == 3
    assert a_of(d.port, "www.example.")[0] != dns.rcode.NOERROR
    d.send_signal(signal.SIGHUP)
    assert wait_until(lambda: ctl_json(sock_path, "status")["generation"] == 4, 5.0)
    # a new control: path takes a restart: the socket stays where it is
    conf.write_text(ONE_POOL.format(sock=sock_path.parent / "other.sock", up=knotd.url("tcp")))
    assert ctl_json(sock_path, "reload")["generation"] == 5
    assert "control: a new path takes a restart; still %s" % sock_path in d.log()
    assert not os.path.lexists(sock_path.parent / "other.sock")


def test_reload_without_a_file(knotd, dnsmux, sock_path):
    dnsmux("--control", sock_path, upstream=knotd.url("tcp"))
    r = ctl_json(sock_path, "reload")
    assert r == {"generation": 1, "file": None, "certificate": None}, r  # (no tls:// listener)


def test_cache_flush_all_one_name_and_below(knotd_factory, dnsmux, sock_path):
    k = knotd_factory()
    d = dnsmux("--control", sock_path, "--cache", "4MiB", upstream=k.url("udp"))
    names = ["www.test.", "a.test.", "b.test.", "n1.test."]

    def ask_all():
        n0 = k.queries()
        for n in names:
            assert helpers.udp_query(d.port, n)[3].rcode() == dns.rcode.NOERROR
        return k.queries() - n0

    assert ask_all() == 4  # all to the origin, then
    assert ask_all() == 0  # all from the cache
    r = ctl_json(sock_path, "cache-flush", "--exact", "WWW.test")  # any case, final dot optional
    assert r == {"flushed": 1, "name": "WWW.test.", "below": False}, r
    assert ask_all() == 1  # only www. reached the origin again
    assert ask_all() == 0
    # test. and below: every entry; the root: every entry too
    r = ctl_json(sock_path, "cache-flush", "test.")
    assert r == {"flushed": 4, "name": "test.", "below": True}, r
    assert ctl_json(sock_path, "status")["cache"]["entries"] == 0
    assert ask_all() == 4
    r = ctl_json(sock_path, "cache-flush", "a.test")
    assert r["flushed"] == 1
    assert ask_all() == 1
    r = ctl_json(sock_path, "cache-flush")
    assert r == {"flushed": 4, "name": None, "below": False}, r
    assert ask_all() == 4
    st = ctl_json(sock_path, "stats")["counters"]
    assert st["cache_misses"] == 4 + 1 + 4 + 1 + 4 and st["cache_hits"] == 4 + 3 + 4 + 0 + 3, st


def test_cache_flush_while_two_workers_answer(knotd, dnsmux, sock_path):
    """The flush takes the shards' locks beside the workers (ThreadSanitizer
    runs this too): under a load of cached names, every answer stays right."""
    d = dnsmux("--control", sock_path, "--cache", "4MiB", "--threads", 2, upstream=knotd.url("tcp"))
    items = [("n%d.test." % (i % 50), "A") for i in range(500)]
    bad, rounds = [], 0
    with Sampler(lambda: ctl_json(sock_path, "cache-flush", "test.")["flushed"], interval=0.05) as samp:
        # rounds of load until three flushes ran beside it (a fast machine
        # answers one round before dnsmux-ctl has run once); at most 20
        while rounds < 20 and (rounds < 3 or sum(isinstance(v, int) for v in samp.values) < 3):
            bad += helpers.summarize(helpers.run_udp_load(d.port, items, clients=20, timeout=5.0))
            rounds += 1
    flushed = [v for v in samp.values if isinstance(v, int)]
    assert not bad, bad[:5]
    assert len(flushed) >= 3 and sum(flushed) > 0, samp.values
    assert d.alive()


def test_bad_commands(knotd, dnsmux, sock_path):
    d = dnsmux("--control", sock_path, upstream=knotd.url("tcp"))  # no cache
    r = ctl(sock_path, "bogus")
    assert r.returncode == 2 and 'unknown command "bogus"' in r.stderr, r.stderr
    r = ctl(sock_path, "status", "now")
    assert r.returncode == 2 and "takes no argument" in r.stderr, r.stderr
    r = ctl(sock_path, "cache-flush", "a..b")
    assert r.returncode == 2 and "not a domain name" in r.stderr, r.stderr
    r = ctl(sock_path, "cache-flush")
    assert r.returncode == 1 and "the cache is off" in r.stderr, r.stderr
    r = ctl(sock_path)
    assert r.returncode == 2 and "Usage" in r.stderr
    r = ctl(sock_path.parent / "nothing.sock", "status")
    assert r.returncode == 2 and "cannot connect" in r.stderr, r.stderr
    # what dnsmux-ctl does not send, another client may: each an error reply
    for req, why in [(b"bogus\n", "unknown command"), (b"\n", "empty request"), (b"", "empty request"),
                     (b"st\x00atus\n", "\\x00 at offset 2"), (b"status " + b"x" * 2000, "longer than 1023"),
                     (b"\xff\xfe\n", "\\xff"), (b"cache-flush a b\n", "unexpected")]:
        rep = json.loads(raw(sock_path, req))
        assert rep["ok"] is False and why in rep["error"], (req, rep)
    # one request per connection; a CRLF line is fine; what follows the line is not read
    rep = json.loads(raw(sock_path, b"status\r\nstats\n"))
    assert rep["ok"] is True and "upstreams" in rep and "counters" not in rep
    assert d.alive()
    assert ctl_json(sock_path, "status")["generation"] == 1


def test_silent_clients_block_nobody_and_the_17th_is_told_busy(knotd, dnsmux, sock_path):
    d = dnsmux("--control", sock_path, upstream=knotd.url("tcp"))
    silent = []
    try:
        for _ in range(16):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(str(sock_path))
            silent.append(s)
        rep = json.loads(raw(sock_path, b"status\n"))
        assert rep == {"ok": False, "error": "busy: 16 control connections open; try again"}, rep
        r = ctl(sock_path, "status")
        assert r.returncode == 1 and "busy" in r.stderr, r.stderr
        silent.pop().close()
        t0 = time.monotonic()
        assert wait_until(lambda: ctl(sock_path, "status").returncode == 0, 3.0)
        assert time.monotonic() - t0 < 3.0
        # each silent one is closed 5 s after it connected, without a reply
        silent[0].settimeout(10)
        assert silent[0].recv(100) == b""
        assert time.monotonic() - t0 < 5.0 + MARGIN + 1
    finally:
        for s in silent:
            s.close()
    # a slow one that sends half a line, then stops: the same
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(sock_path))
        s.sendall(b"sta")
        assert ctl(sock_path, "status").returncode == 0
        t0 = time.monotonic()
        assert s.recv(100) == b""
        assert time.monotonic() - t0 < 5.0 + MARGIN
    assert helpers.udp_query(d.port, "www.test.")[3].rcode() == dns.rcode.NOERROR


def test_the_socket_file_stale_live_or_not_a_socket(knotd, dnsmux, sock_path):
    up = knotd.url("tcp")
    # a stale socket (its process gone without removing it) is replaced
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(sock_path))
    s.close()
    assert stat.S_ISSOCK(os.lstat(sock_path).st_mode)
    d = dnsmux("--control", sock_path, upstream=up)
    assert "removed a stale socket" in d.log()
    assert ctl_json(sock_path, "status")["pid"] == d.pid
    # a live one is not: a second dnsmux exits 1, the first goes on
    r = run_dnsmux(["--control", str(sock_path), "--listen", "127.0.0.1:%d" % free_port(), "--upstream", up])
    assert r.returncode == 1 and "another process" in r.stderr, r.stderr
    assert ctl_json(sock_path, "status")["pid"] == d.pid
    # removed at exit
    assert d.stop() == 0
    assert not os.path.lexists(sock_path)
    # a file that is not a socket is never replaced
    sock_path.write_text("precious\n")
    r = run_dnsmux(["--control", str(sock_path), "--listen", "127.0.0.1:%d" % free_port(), "--upstream", up])
    assert r.returncode == 1 and "is not a socket" in r.stderr, r.stderr
    assert sock_path.read_text() == "precious\n"
    # nor is a directory that is not there made
    r = run_dnsmux(["--control", str(sock_path.parent / "no" / "c.sock"), "--listen",
                    "127.0.0.1:%d" % free_port(), "--upstream", up])
    assert r.returncode == 1 and "No such file or directory" in r.stderr, r.stderr


def test_control_flag_and_key_errors(knotd, tmp_path):
    up = knotd.url("tcp")
    r = run_dnsmux(["--control", "/" + "x" * 200, "--listen", "127.0.0.1:%d" % free_port(), "--upstream", up])
    assert r.returncode == 2 and "--control" in r.stderr and "under 108 bytes" in r.stderr, r.stderr
    conf = tmp_path / "dnsmux.yaml"
    conf.write_text('control: [a]\npools:\n  default: {members: ["%s"]}\n' % up)
    r = run_dnsmux(["-c", str(conf), "--check-config"])
    assert r.returncode == 2 and "%s:1:10: control:" % conf in r.stderr, r.stderr
    conf.write_text('control: /run/dnsmux/control.sock\nlisten: [127.0.0.1:%d]\npools:\n  default: {members: ["%s"]}\n'
                    % (free_port(), up))
    r = run_dnsmux(["-c", str(conf), "--check-config"])
    assert r.returncode == 0, r.stderr


def test_version_names_the_libraries(knotd):
    r = run_dnsmux(["--version", "--listen", "127.0.0.1:%d" % free_port(), "--upstream", knotd.url("tcp")])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("dnsmux "), r.stdout
    libs = {ln.split()[0]: ln.split()[1:] for ln in lines[2:]}
    for lib in ("libuv", "libknot", "GnuTLS", "nghttp2", "http-parser", "libyaml", "PCRE2", "jansson", "libcurl"):
        assert lib in libs, (lib, r.stdout)
    for lib in ("libuv", "GnuTLS", "nghttp2", "http-parser", "jansson"):
        assert libs[lib][0] == libs[lib][1] or libs[lib][1][0].isdigit(), (lib, libs[lib])  # compiled, running
    assert "libknot.so" in " ".join(libs["libknot"]) and "on demand" in " ".join(libs["libcurl"])
    r = subprocess.run([str(CTL), "--version"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and r.stdout == lines[0].replace("dnsmux", "dnsmux-ctl", 1) + "\n"
    r = subprocess.run([str(CTL), "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "cache-flush" in r.stdout and "/run/dnsmux/control.sock" in r.stdout
