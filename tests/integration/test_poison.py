"""Malformed records in a client's query must never reach a shared
circuit: dnsmux answers them FORMERR itself and forwards only messages
that parse completely.

Guards fault 3: dnsmux checked the header, the question and the framing of
each record but not what the records held, and forwarded the rest. knotd
answers such a message on TCP with FORMERR and then closes the connection,
dropping every query pipelined behind it (or, for the ECS and cookie
forms, answers NOERROR as if the option were fine). In the probe 50 such
datagrams a second cut 20 victims' answered queries by 78 % and failed 169
circuits. Origin: the knotd fixture, over tcp://."""

import struct
import threading
import time

import dns.rcode
import pytest

import helpers
from conftest import MARGIN, assert_one_connection, connection_sampler, tcp_established_ports

QUESTION_WWW = b"\x03www\x04test\x00\x00\x01\x00\x01"  # www.test. A IN
TO_QNAME = b"\xc0\x0c"  # a compression pointer to the question's name


def query(qid, authority=(), additional=()):
    """A www.test. A query with these raw records after the question."""
    return (struct.pack("!HHHHHH", qid, 0x0100, 1, 0, len(authority), len(additional)) + QUESTION_WWW
            + b"".join(authority) + b"".join(additional))


def rr(owner, rtype, rdata, rclass=1):
    return owner + struct.pack("!HHIH", rtype, rclass, 0, len(rdata)) + rdata


def opt(options=b"", owner=b"\x00"):
    return rr(owner, 41, options, rclass=1232)


def option(code, data):
    return struct.pack("!HH", code, len(data)) + data


# Every form the probe found forwarded (or that knotd closes on). The first
# two are the probe's own bytes.
POISON = {
    "opt_option_past_rdlength": bytes.fromhex(
        "abcd0100000100000000000103777777047465737400000100010000" "2904d0000000000004000a4018"),
    "opt_rdlength_1": bytes.fromhex(
        "abcd010000010000000000010377777704746573740000010001" "00002904d000000000000100"),
    "a_5_bytes_additional": query(0x1001, additional=[rr(TO_QNAME, 1, b"\xc0\x00\x02\x01\x05")]),
    "aaaa_4_bytes_authority": query(0x1002, authority=[rr(TO_QNAME, 28, b"\x20\x01\x0d\xb8")]),
    "soa_empty_authority": query(0x1003, authority=[rr(b"\x04test\x00", 6, b"")]),
    # ECS (RFC 7871 6): family 1, source prefix 33 > 32, 5 address bytes
    "ecs_bad": query(0x1004, additional=[opt(option(8, b"\x00\x01\x21\x00\x0a\x00\x00\x01\x02"))]),
    # cookie (RFC 7873 4): 8 bytes, or 16 to 40
    "cookie_5_bytes": query(0x1005, additional=[opt(option(10, b"\x01\x02\x03\x04\x05"))]),
    "two_opts": query(0x1006, additional=[opt(), opt()]),
    "opt_owner_not_root": query(0x1007, additional=[opt(owner=TO_QNAME)]),
    "opt_in_authority": query(0x1008, authority=[opt()]),
}


def good_answered(port):
    _, qw, rw, _ = helpers.udp_query(port, "www.test.", "A")
    assert not helpers.check_answer(qw, rw, {helpers.WWW_A})


def poison_over_tcp(port, bad):
    """The bad message and a good query pipelined on one client connection:
    returns (reply to bad, problems with the good one's answer)."""
    good = helpers.make_query("www.test.", "A").to_wire()
    assert good[:2] != bad[:2]
    with helpers.tcp_connect(port) as s:
        s.sendall(helpers.frame(bad) + helpers.frame(good))
        replies = {}
        for _ in range(2):
            r = helpers.recv_frame(s, 5.0)
            replies[r[:2]] = r
    assert set(replies) == {bad[:2], good[:2]}, "replies with ids %s" % [k.hex() for k in replies]
    return replies[bad[:2]], helpers.check_answer(good, replies[good[:2]], {helpers.WWW_A})


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("name", sorted(POISON))
def test_malformed_formerr_and_circuit_kept(knotd, dnsmux, name, transport):
    """Over an open circuit to knotd: the malformed query gets FORMERR
    from dnsmux itself (counter `formerr`), a good query pipelined behind it
    is answered, and the upstream connection is the same one afterwards
    (same local port; circuits_opened 1, circuits_failed 0). Old binary:
    knotd's FORMERR and a closed circuit (or NOERROR for ecs/cookie); three
    forms (two_opts, opt_owner_not_root, opt_in_authority) were already
    refused and stay so."""
    d = dnsmux(upstream=knotd.url("tcp"))
    good_answered(d.port)
    ports = tcp_established_ports(d.pid, knotd.port)
    assert len(ports) == 1
    bad = POISON[name]
    if transport == "udp":
        r = helpers.udp_exchange(bad, d.port)
    else:
        r, good_problems = poison_over_tcp(d.port, bad)
        assert not good_problems
    assert r[:2] == bad[:2] and r[2] & 0x80, "reply is not for the bad query"
    assert helpers.rcode_of(r) == dns.rcode.FORMERR, dns.rcode.to_text(helpers.rcode_of(r))
    good_answered(d.port)
    assert tcp_established_ports(d.pid, knotd.port) == ports, "the upstream connection was replaced"
    st = d.stats()
    assert (st["formerr"], st["circuits_opened"], st["circuits_failed"]) == (1, 1, 0), st


# ---------------------------------------------------------------------------
# Under load

N_VICTIMS = 20
VICTIM_QPS = 25  # each
CATCH_UP_S = 0.5
PHASE_S = 2.0
PHASES = ["clean", "poison", "poison", "clean"] * 2  # ABBA: a steady drift in the load cancels out
POISON_PER_S = 50


class Victims:
    """N_VICTIMS UDP clients asking knotd's names through dnsmux, each at
    VICTIM_QPS, one query at a time, until stopped (bounded: a count per
    client and the caller's stop). A fixed rate well below what dnsmux and
    these clients can do (not as fast as possible): then other work on a
    shared machine does not move the count, and only answers lost or late
    do. A client that falls behind catches up at once, by up to CATCH_UP_S
    of queries. Keeps (sent, answered right) per query, and what was wrong."""

    def __init__(self, port, per_client=100000):
        self.port = port
        self.per_client = per_client
        self.log = []  # (time sent, answered right)
        self.wrong = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(c,), daemon=True) for c in range(N_VICTIMS)]

    def _run(self, c):
        with helpers.udp_socket() as s:
            t_next = time.monotonic()
            for i in range(self.per_client):
                if self._stop.wait(max(0.0, t_next - time.monotonic())):  # the client's pace
                    return
                name = "n%d.test." % ((c * 97 + i) % helpers.N_NAMES)
                r = helpers.udp_one(s, (name, "A"), self.port, "127.0.0.1", 2.0 + MARGIN, True)
                ok = not (r.error or r.problems)
                with self._lock:
                    self.log.append((r.sent, ok))
                    if not ok:
                        self.wrong.append("%s: %s" % (name, r.error or "; ".join(r.problems)))
                t_next = max(t_next + 1.0 / VICTIM_QPS, time.monotonic() - CATCH_UP_S)

    def answered(self):
        with self._lock:
            return sum(ok for _, ok in self.log)

    def answered_between(self, t0, t1):
        with self._lock:
            return sum(ok for t, ok in self.log if t0 <= t < t1)

    def sent_between(self, t0, t1):
        with self._lock:
            return sum(1 for t, _ in self.log if t0 <= t < t1)

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join(2.0 + MARGIN + 2.0)


def attack(port, until):
    """Send the POISON forms in turn, POISON_PER_S a second, until `until`
    (time.monotonic()); the FORMERRs are read and dropped."""
    forms = list(POISON.values())
    with helpers.udp_socket() as s:
        s.setblocking(False)
        n = 0
        next_t = time.monotonic()
        while next_t < until:
            s.sendto(forms[n % len(forms)], ("127.0.0.1", port))
            n += 1
            try:
                while s.recv(65535):
                    pass
            except BlockingIOError:
                pass
            next_t += 1.0 / POISON_PER_S
            time.sleep(max(0.0, next_t - time.monotonic()))  # pacing, not synchronisation
    return n


def test_victims_unharmed_by_poison_stream(knotd, dnsmux):
    """20 victim clients under load while an attacker sends every malformed
    form at 50/s, in 2 s phases (clean, poison, poison, clean, x2): the victims
    answered in the poisoned phases are within 5 % of the clean phases, every
    victim answer is right, and the one origin connection stays the same
    all along (kernel socket table; circuits_opened 1). Old binary: the
    probe saw 78 % fewer answers and 169 failed circuits."""
    d = dnsmux(upstream=knotd.url("tcp"))
    counts = {"clean": 0, "poison": 0}
    asked = {"clean": 0, "poison": 0}
    sent = 0
    with connection_sampler(d.pid, knotd.port) as samp, Victims(d.port) as v:
        deadline = time.monotonic() + 10.0
        while v.answered() < 200 and time.monotonic() < deadline:  # warmed up
            time.sleep(0.02)
        assert v.answered() >= 200, "the victims' load did not get going"
        for kind in PHASES:
            t0 = time.monotonic()
            if kind == "poison":
                sent += attack(d.port, t0 + PHASE_S)
            else:
                time.sleep(PHASE_S)  # a clean phase is a span of time
            counts[kind] += v.answered_between(t0, t0 + PHASE_S)
            asked[kind] += v.sent_between(t0, t0 + PHASE_S)
    st = d.stats()
    assert not v.wrong, "%d victim queries failed (answered right per phase kind %s; %s): %s" % (
        len(v.wrong), counts, st, v.wrong[:5])
    assert sent >= 0.8 * POISON_PER_S * PHASE_S * PHASES.count("poison"), "attacker sent only %d" % sent
    print("victims answered right:", counts, "of", asked)
    # Per query the victims sent: on a machine busy with other work the
    # victims' own threads may send fewer in a phase (they are paced, and a
    # starved thread falls behind) -- that is not dnsmux's doing. What
    # dnsmux is answerable for is the share of what was asked that it
    # answered right, and that share must not drop by more than 5 %.
    share = {k: counts[k] / max(1, asked[k]) for k in counts}
    assert share["poison"] >= 0.95 * share["clean"], (counts, asked)
    assert counts["poison"] >= 0.5 * counts["clean"], (counts, asked)  # and the load really ran
    assert_one_connection(samp, d.pid, knotd.port)
    assert st["circuits_opened"] == 1 and st["circuits_failed"] == 0, st
    assert st["formerr"] >= sent, st
