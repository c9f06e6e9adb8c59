"""config/etcd.c's watcher against a real etcd (the `etcd` fixture), through
tests/tools/etcd_watch, which prints every set of backends the watcher hands
over (the daemon's glue is tested end to end elsewhere): the first read, a
put seen within a second, a delete, a bad value skipped with the others
kept, etcd killed (no empty set, the watcher goes on), etcd back on the same
data with changes made meanwhile (caught up), another endpoint tried when
the first is down, and etcd_stop within 200 ms whatever the watcher waits on.

The binary is $DNSMUX_ETCD_WATCH, else etcd_watch beside $DNSMUX_BIN."""

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import DNSMUX_BIN, MARGIN, _children, free_port, sanitizer_report

WATCH_BIN = Path(os.environ.get("DNSMUX_ETCD_WATCH", DNSMUX_BIN.parent / "etcd_watch"))
MIEK = r"^[ab]*\.miek\.nl\.$"


class Watcher:
    """etcd_watch ENDPOINTS PREFIX, its sets read by a thread: each a dict
    key -> (upstream URL, kind, match), with .revision."""

    def __init__(self, endpoints, prefix="/dnsrouter/"):
        if not WATCH_BIN.exists():
            pytest.fail("%s not built (ninja -C <build dir>)" % WATCH_BIN)
        self.err_path = Path(os.environ.get("TMPDIR", "/tmp")) / ("etcd_watch-%d-%d.err" % (os.getpid(), id(self)))
        self.err = open(self.err_path, "wb")
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        self.proc = subprocess.Popen([str(WATCH_BIN), ",".join(endpoints), prefix], stdout=subprocess.PIPE,
                                     stderr=self.err, stdin=subprocess.DEVNULL, text=True, env=env)
        _children.append(self.proc)
        self.sets = []        # (time seen, revision, {key: (url, kind, match)})
        self.stopped_ms = None
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        cur = None
        for line in self.proc.stdout:
            words = line.rstrip("\n").split(" ")
            with self.cond:
                if words[0] == "set":
                    cur = (int(words[2]), {})
                elif words[0] == "end":
                    self.sets.append((time.monotonic(), cur[0], cur[1]))
                    cur = None
                elif words[0] == "stopped":
                    self.stopped_ms = float(words[1])
                elif cur is not None:
                    cur[1][words[0]] = tuple(words[1:4])
                self.cond.notify_all()

    def wait_set(self, pred, timeout, after=0):
        """The first set from index `after` on for which pred(set) holds:
        (index, time seen, set). Fails after timeout seconds."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i in range(after, len(self.sets)):
                    if pred(self.sets[i][2]):
                        return i, self.sets[i][0], self.sets[i][2]
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    pytest.fail("no such set within %.1fs; sets: %r\nstderr:\n%s"
                                % (timeout, [s[2] for s in self.sets], self.stderr()))
                self.cond.wait(min(left, 0.1))

    def stderr(self):
        self.err.flush()
        return self.err_path.read_text(errors="replace")

    def wait_log(self, text, timeout):
        deadline = time.monotonic() + timeout
        while text not in self.stderr():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                pytest.fail("no %r in the log within %.1fs:\n%s" % (text, timeout, self.stderr()))
            time.sleep(0.02)

    def stop(self):
        """SIGTERM: etcd_stop, which must take at most 200 ms; exit 0, no sanitizer report."""
        assert self.proc.poll() is None, "etcd_watch died:\n" + self.stderr()
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(10)
        self.reader.join(5)
        err = self.stderr()
        self.err.close()
        self.err_path.unlink()
        assert rc == 0, err
        assert not sanitizer_report(err), err
        assert self.stopped_ms is not None and self.stopped_ms <= 200, (self.stopped_ms, err)
        return self.stopped_ms


@pytest.fixture
def watcher():
    made = []

    def make(endpoints, prefix="/dnsrouter/"):
        w = Watcher(endpoints, prefix)
        made.append(w)
        return w

    yield make
    for w in made:
        if w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait(5)


def udp(hostport):
    return "udp://" + hostport


def test_read_put_delete_and_a_bad_value(etcd, watcher):
    etcd.put("/dnsrouter/a", "10.1.1.15:5300," + MIEK)
    etcd.put("/dnsrouter/b", '{"upstream": "tls://192.0.2.1#dns.example", "suffix": "Shard.Example."}')
    etcd.put("/other/x", "10.9.9.9:53,^x$")  # outside the prefix
    w = watcher([etcd.url])
    i, _, s = w.wait_set(lambda s: True, 10)
    assert s == {"/dnsrouter/a": (udp("10.1.1.15:5300"), "regex", MIEK),
                 "/dnsrouter/b": ("tls://192.0.2.1#dns.example", "suffix", "shard.example.")}

    # a registration, as dnsrouter's backends make it, seen within a second
    etcd.put("/dnsrouter/c", "[::1]:5301,^c\\.$")
    t0 = time.monotonic()
    i, seen, s = w.wait_set(lambda s: "/dnsrouter/c" in s, 5, after=i + 1)
    assert seen - t0 < 1.0, "put seen after %.2fs" % (seen - t0)
    assert s["/dnsrouter/c"] == (udp("[::1]:5301"), "regex", "^c\\.$") and len(s) == 3

    etcd.delete("/dnsrouter/a")
    t0 = time.monotonic()
    i, seen, s = w.wait_set(lambda s: "/dnsrouter/a" not in s, 5, after=i + 1)
    assert seen - t0 < 1.0, "delete seen after %.2fs" % (seen - t0)
    assert set(s) == {"/dnsrouter/b", "/dnsrouter/c"}

    # a bad value: skipped (logged once), the others kept; no set for it
    etcd.put("/dnsrouter/bad", "10.1.1.16:5300,([unclosed")
    w.wait_log("key /dnsrouter/bad (revision", 5)
    etcd.put("/dnsrouter/d", '{"upstream": "tcp://192.0.2.4:53", "regex": "^d\\\\."}')
    j, _, s = w.wait_set(lambda s: "/dnsrouter/d" in s, 5, after=i + 1)
    assert j == i + 1, "a set was made for the bad value: %r" % (w.sets[i + 1:],)
    assert set(s) == {"/dnsrouter/b", "/dnsrouter/c", "/dnsrouter/d"}
    assert s["/dnsrouter/d"] == ("tcp://192.0.2.4:53", "regex", "^d\\.")
    assert w.stderr().count("key /dnsrouter/bad (revision") == 1
    w.stop()


def test_etcd_killed_then_back(etcd, watcher):
    etcd.put("/dnsrouter/a", "10.1.1.15:5300," + MIEK)
    etcd.put("/dnsrouter/b", "10.1.1.16:5300," + MIEK)
    w = watcher([etcd.url])
    i, _, s = w.wait_set(lambda s: len(s) == 2, 10)

    etcd.kill()
    w.wait_log("keeping the last set (2 backends)", 5)
    # the watcher retries (with backoff) and hands over nothing meanwhile
    w.wait_log("Couldn't connect to server", 5 * MARGIN)
    assert w.proc.poll() is None
    assert len(w.sets) == i + 1, "sets while etcd was away: %r" % (w.sets[i + 1:],)

    # back on the same data, changed at once (before the watcher's next try,
    # most likely): the full read catches up on the new key and the delete
    etcd.start()
    etcd.put("/dnsrouter/c", "10.1.1.17:5300,^c\\.$")
    etcd.delete("/dnsrouter/a")
    _, _, s = w.wait_set(lambda s: "/dnsrouter/c" in s and "/dnsrouter/a" not in s, 8 * MARGIN, after=i + 1)
    assert set(s) == {"/dnsrouter/b", "/dnsrouter/c"}
    assert all(len(x[2]) > 0 for x in w.sets), "an empty set was handed over"
    # and follows the watch again
    k = len(w.sets)
    etcd.put("/dnsrouter/d", "10.1.1.18:5300,^d\\.$")
    t0 = time.monotonic()
    _, seen, _ = w.wait_set(lambda s: "/dnsrouter/d" in s, 5, after=k - 1)
    assert seen - t0 < 1.0
    w.stop()


def test_an_empty_prefix_is_an_empty_set(etcd, watcher):
    w = watcher([etcd.url], prefix="/nothing-here/")
    _, _, s = w.wait_set(lambda s: True, 10)
    assert s == {}
    w.stop()


def test_the_next_endpoint_when_one_is_down(etcd, watcher):
    etcd.put("/dnsrouter/a", "10.1.1.15:5300," + MIEK)
    dead = "http://127.0.0.1:%d" % free_port()  # nobody listens there
    w = watcher([dead, etcd.url])
    _, _, s = w.wait_set(lambda s: "/dnsrouter/a" in s, 10)
    w.stop()


def test_stop_is_prompt_while_etcd_is_away(etcd, watcher):
    w = watcher([etcd.url])
    w.wait_set(lambda s: True, 10)
    etcd.kill()
    w.wait_log("keeping the last set", 5)
    w.wait_log("Couldn't connect to server", 5 * MARGIN)  # in the retries
    w.stop()  # asserts <= 200 ms
