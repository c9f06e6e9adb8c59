"""log.queries: PATH -- one line per answered query (ISO 8601 time, client,
frontend, name, type, rcode, upstream, latency in ms), written off the
query path: a FIFO nobody reads (no reader at all, or a reader that never
reads) costs lines, counted in dnsmux_querylog_dropped_total, never
answers or their time. Also: no query names in the normal log, and
log.target: syslog (journald reads the same socket) in a mount namespace
of the test's own where /dev/log is a socket the test reads."""

import datetime
import os
import re
import shutil
import socket
import subprocess
import time

import pytest

import helpers
from conftest import DNSMUX_BIN, free_port, sanitizer_report, wait_until
from test_metrics import metrics

LINE_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (\S+)#(\d+) (udp|tcp|dot|doh) (\S+) (\S+) "
                     r"([A-Z0-9]+) (\S+) (\d+\.\d{3})$")


def start(dnsmux, knotd, tmp_path, path, *args):
    mport = free_port()
    conf = tmp_path / "dnsmux.yaml"
    conf.write_text("log:\n  queries: %s\nmetrics: 127.0.0.1:%d\n" % (path, mport))
    d = dnsmux("-c", conf, *args, upstream=knotd.url("tcp"))
    d.mport = mport
    return d


def lines(path):
    try:
        return [ln for ln in path.read_text().split("\n") if ln]
    except FileNotFoundError:
        return []


def test_one_line_per_answer_with_each_field(knotd, dnsmux, tmp_path):
    log = tmp_path / "queries.log"
    d = start(dnsmux, knotd, tmp_path, log)
    sent = []
    with helpers.udp_socket() as s:
        port = s.getsockname()[1]
        for i in range(10):
            name, rdtype = "n%d.test." % i, "AAAA" if i % 2 else "A"
            q = helpers.make_query(name, rdtype, edns=1232)
            s.sendto(q.to_wire(), ("127.0.0.1", d.port))
            s.settimeout(5)
            s.recvfrom(65535)
            sent.append(("udp", port, name, rdtype, "NOERROR"))
    helpers.tcp_query(d.port, "missing.test.")
    sent.append(("tcp", None, "missing.test.", "A", "NXDOMAIN"))
    t0 = datetime.datetime.now(datetime.timezone.utc)
    assert wait_until(lambda: len(lines(log)) == len(sent), 5.0), lines(log)
    got = lines(log)
    for (fe, cport, name, rdtype, rcode), line in zip(sent, got):
        m = LINE_RE.match(line)
        assert m, line
        when = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
        assert abs((when - t0).total_seconds()) < 10, line
        assert m.group(2) == "127.0.0.1", line
        if cport:
            assert int(m.group(3)) == cport, line
        assert (m.group(4), m.group(5), m.group(6), m.group(7)) == (fe, name, rdtype, rcode), line
        assert m.group(8) == knotd.url("tcp"), line
        assert 0 < float(m.group(9)) < 2000, line
    assert metrics(d.mport).get("dnsmux_querylog_dropped_total") == 0
    # the normal log has no query names
    assert "n1.test" not in d.log() and "missing.test" not in d.log()
    # SIGHUP reopens the file (log rotation)
    log.rename(tmp_path / "queries.log.1")
    d.send_signal(__import__("signal").SIGHUP)
    assert wait_until(lambda: log.exists(), 5.0)
    helpers.udp_query(d.port, "n42.test.")
    assert wait_until(lambda: len(lines(log)) == 1, 5.0)
    assert " n42.test. A NOERROR " in lines(log)[0]


def load(d, n=2000):
    items = [("n%d.test." % (i % helpers.N_NAMES), "A") for i in range(n)]
    t0 = time.monotonic()
    results = helpers.run_udp_load(d.port, items, clients=50, timeout=2.0)
    assert not helpers.summarize(results)
    slowest = max(r.elapsed for r in results)
    assert slowest < 1.0, "an answer took %.2f s" % slowest
    return time.monotonic() - t0


def test_a_fifo_nobody_opened(knotd, dnsmux, tmp_path):
    fifo = tmp_path / "q.fifo"
    os.mkfifo(fifo)
    d = start(dnsmux, knotd, tmp_path, fifo)
    load(d)
    assert wait_until(lambda: metrics(d.mport).get("dnsmux_querylog_dropped_total") == 2000, 5.0), \
        metrics(d.mport).get("dnsmux_querylog_dropped_total")
    assert "query log %s: cannot open" % fifo in d.log()


def test_a_fifo_whose_reader_never_reads(knotd, dnsmux, tmp_path):
    fifo = tmp_path / "q.fifo"
    os.mkfifo(fifo)
    r = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader: open succeeds, then writes fill the pipe
    try:
        d = start(dnsmux, knotd, tmp_path, fifo)
        load(d)

        def dropped():
            return metrics(d.mport).get("dnsmux_querylog_dropped_total")

        # the pipe (64 KiB) and the writer's buffer (64 KiB) hold some; the rest is dropped, counted
        assert wait_until(lambda: dropped() > 0, 5.0)
        n = dropped()
        data = b""
        while True:
            try:
                chunk = os.read(r, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            data += chunk
        got = data.decode().split("\n")
        whole = [ln for ln in got[:-1] if ln]  # (the last may be cut where the pipe was full: its rest comes later)
        assert all(LINE_RE.match(ln) for ln in whole), whole[:3]
        assert 0 < len(whole) < 2000 and len(whole) + n <= 2000, (len(whole), n)
    finally:
        os.close(r)


SYSLOG_SH = """\
set -e
mkdir -p {d}/dev
mount --bind /dev {d}/dev
mount -t tmpfs tmpfs /dev
for n in null zero full random urandom tty; do touch /dev/$n; mount --bind {d}/dev/$n /dev/$n; done
ln -s {sock} /dev/log
exec "$@"
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare(1)")
def test_syslog_target(knotd, tmp_path):
    sockdir = tmp_path / "sys"
    sockdir.mkdir()
    sock_path = sockdir / "log.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(sock_path))
    s.settimeout(10)
    script = tmp_path / "ns.sh"
    script.write_text(SYSLOG_SH.format(d=sockdir, sock=sock_path))
    conf = tmp_path / "dnsmux.yaml"
    conf.write_text("log:\n  target: journald\n")
    port = free_port()
    p = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", str(script), str(DNSMUX_BIN), "-c",
                          str(conf), "--listen", "127.0.0.1:%d" % port, "--upstream", knotd.url("tcp")],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        got = b""
        deadline = time.monotonic() + 20
        while b"ready" not in got and time.monotonic() < deadline:
            try:
                got += s.recv(4096) + b"\n"
            except socket.timeout:
                break
        assert re.search(rb"<30>.*dnsmux\[\d+\]: \[DAEMON\] ready: 1 worker", got), got
        assert helpers.udp_query(port, "n1.test.")[3].rcode() == 0
    finally:
        p.terminate()
        out, err = p.communicate(timeout=30)
        s.close()
    assert p.returncode == 0, err
    assert b"ready" not in err, err  # the log went to syslog, not stderr
    assert not sanitizer_report(err.decode(errors="replace")), err
