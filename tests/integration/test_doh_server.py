"""The DNS-over-HTTPS server (issue 8): --listen https://ADDR:PORT (TLS,
ALPN h2 or http/1.1, no ALPN -> HTTP/1.x) and --listen http://ADDR:PORT
(cleartext HTTP/1.1 and HTTP/2 with prior knowledge), RFC 8484 GET and POST
on the DoH path, the JSON API at /resolve, errors as 4xx without harm to
the connection's other streams. Real clients: curl (--doh-url, GET, POST,
--http2, --http1.1), kdig +https, httpx/h2 (dnspython's DoH transport).
Origin: knotd over TCP."""

import base64
import json
import shutil
import socket
import ssl
import subprocess
import threading

import dns.message
import dns.rcode
import dns.rdatatype
import httpx
import pytest

import helpers
from conftest import free_port, tls_client_context
from pki import SERVER_NAME

CURL = shutil.which("curl") or "/usr/bin/curl"
KDIG = shutil.which("kdig") or "/usr/bin/kdig"


def start_doh(dnsmux, pki, upstream, *args):
    """dnsmux with an https:// and an http:// DoH listener (ports as .https, .http)."""
    https, http = free_port(), free_port()
    d = dnsmux("--tls-cert", pki.cert_file("server"), "--tls-key", pki.key_file("server"), *args, upstream=upstream,
               listen=["https://127.0.0.1:%d" % https, "http://127.0.0.1:%d" % http])
    d.https, d.http = https, http
    return d


def https_url(d, path="/dns-query"):
    return "https://%s:%d%s" % (SERVER_NAME, d.https, path)


def curl(d, pki, *args, url=None, timeout=10):
    """curl against the https listener (dns.test resolved to 127.0.0.1); returns (status, headers, body)."""
    argv = [CURL, "-sS", "--max-time", "5", "--cacert", str(pki.ca_file), "--resolve",
            "%s:%d:127.0.0.1" % (SERVER_NAME, d.https), "-D", "-", *args, url or https_url(d)]
    r = subprocess.run(argv, capture_output=True, timeout=timeout)
    assert r.returncode == 0, r.stderr
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
    return status, headers, body


def b64(wire):
    return base64.urlsafe_b64encode(wire).rstrip(b"=").decode()


def query_wire(qname="www.test.", rdtype="A", qid=0, edns=None):
    return helpers.make_query(qname, rdtype, edns=edns, qid=qid).to_wire()


def check_www(body, qid=0):
    m = dns.message.from_wire(body)
    assert m.id == qid
    assert m.rcode() == dns.rcode.NOERROR
    assert helpers.rdata_set(m) == {helpers.WWW_A}, m
    return m


@pytest.mark.parametrize("http", ["--http2", "--http1.1"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_curl_get_and_post(knotd, pki, dnsmux, http, method):
    d = start_doh(dnsmux, pki, knotd.url("tcp"))
    w = query_wire(qid=0x4d2)  # the client's ID comes back as sent (0 or any other)
    if method == "GET":
        status, hdr, body = curl(d, pki, http, url=https_url(d, "/dns-query?dns=" + b64(w)))
    else:
        status, hdr, body = post(d, pki, http, w)
    assert status == 200, body
    assert hdr["content-type"] == "application/dns-message"
    assert hdr["cache-control"] == "max-age=300"  # the zone's TTL (RFC 8484 5.1)
    check_www(body, qid=0x4d2)


def post(d, pki, http, wire):
    argv = [CURL, "-sS", "--max-time", "5", "--cacert", str(pki.ca_file), "--resolve",
            "%s:%d:127.0.0.1" % (SERVER_NAME, d.https), "-D", "-", http, "-H",
            "content-type: application/dns-message", "--data-binary", "@-", https_url(d)]
    r = subprocess.run(argv, input=wire, capture_output=True, timeout=10)
    assert r.returncode == 0, r.stderr
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
    return int(lines[0].split()[1]), headers, body


def test_curl_doh_url_resolves(knotd, pki, dnsmux):
    """curl --doh-url: curl itself resolves loop.test through dnsmux, then
    fetches a URL there (dnsmux's own http:// listener, which answers 404
    for / -- proof enough that the name resolved to 127.0.0.1)."""
    d = start_doh(dnsmux, pki, knotd.url("tcp"))
    argv = [CURL, "-sS", "--max-time", "5", "--cacert", str(pki.ca_file), "--resolve",
            "%s:%d:127.0.0.1" % (SERVER_NAME, d.https), "--doh-url", https_url(d), "-o", "/dev/null",
            "-w", "%{http_code} %{remote_ip}", "http://loop.test:%d/" % d.http]
    r = subprocess.run(argv, capture_output=True, timeout=15, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "404 127.0.0.1", r.stdout


def test_kdig_https(knotd, pki, dnsmux):
    d = start_doh(dnsmux, pki, knotd.url("tcp"))
    r = subprocess.run([KDIG, "@127.0.0.1", "-p", str(d.https), "+https", "+tls-ca=%s" % pki.ca_file,
                        "+tls-hostname=%s" % SERVER_NAME, "www.test", "A"], capture_output=True, text=True, timeout=15)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "status: NOERROR" in r.stdout, r.stdout
    assert helpers.WWW_A in r.stdout, r.stdout


def resolve(d, pki, query, http="--http2"):
    status, hdr, body = curl(d, pki, http, url=https_url(d, "/resolve?" + query))
    assert status == 200, body
    assert hdr["content-type"] == "application/dns-json"
    return json.loads(body)


def test_json_a_aaaa_cname_chain(knotd, pki, dnsmux):
    d = start_doh(dnsmux, pki, knotd.url("tcp"))
    j = resolve(d, pki, "name=www.test&type=A")
    assert j["Status"] == 0 and j["RD"] is True and j["TC"] is False
    assert j["RA"] is False  # as the origin (knotd, authoritative) answers
    assert j["AD"] is False and j["CD"] is False
    assert j["Question"] == [{"name": "www.test.", "type": 1}]
    assert j["Answer"] == [{"name": "www.test.", "type": 1, "TTL": 300, "data": helpers.WWW_A}]
    j = resolve(d, pki, "name=www.test&type=28")  # type by number
    assert [a["data"] for a in j["Answer"]] == [helpers.WWW_AAAA]
    j = resolve(d, pki, "name=alias2.test&type=A&cd=1")
    assert j["CD"] is False  # knotd does not echo CD; dnsmux passes its flags through
    assert [(a["name"], a["type"], a["data"]) for a in j["Answer"]] == [
        ("alias2.test.", 5, "alias.test."), ("alias.test.", 5, "www.test."), ("www.test.", 1, helpers.WWW_A)]


def test_json_txt_and_nxdomain(knotd, pki, dnsmux):
    d = start_doh(dnsmux, pki, knotd.url("tcp"))
    j = resolve(d, pki, "name=huge.test&type=TXT", http="--http1.1")
    got = sorted(a["data"] for a in j["Answer"])
    want = sorted('"%s"' % helpers.txt_string("huge", i) for i in range(helpers.HUGE_TXT_COUNT))
    assert got == want
    j = resolve(d, pki, "name=nope.test&type=A&do=1")
    assert j["Status"] == 3  # NXDOMAIN
    assert "Answer" not in j
    soa = j["Authority"]
    assert len(soa) == 1 and soa[0]["type"] == 6 and soa[0]["name"] == "test."
    assert soa[0]["data"].startswith("ns.test. hostmaster.test. 2024010101 ")
    # ct= asks for the wire format instead
    status, hdr, body = curl(d, pki, "--http2", url=https_url(d, "/resolve?name=www.test&ct=application/dns-message"))
    assert status == 200 and hdr["content-type"] == "application/dns-message"
    check_www(body)


@pytest.fixture
def loop_name_resolution(monkeypatch):
    """httpx connects to dns.test: make it resolve to 127.0.0.1 in this process only."""
    real = socket.getaddrinfo

    def fake(host, *a, **kw):
        return real("127.0.0.1" if host == SERVER_NAME else host, *a, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", fake)


BAD = [
    # (method, path, content type, body, status)
    ("GET", "/nope", None, None, 404),
    ("PUT", "/dns-query", "application/dns-message", b"x" * 20, 405),
    ("POST", "/dns-query", "text/plain", None, 415),
    ("GET", "/dns-query?dns=%%%%", None, None, 400),
    ("GET", "/dns-query?dns=AAAA", None, None, 400),  # 3 bytes: no DNS message
    ("GET", "/dns-query", None, None, 400),  # no dns=
    ("POST", "/dns-query", "application/dns-message", b"\x00" * 5, 400),
    ("GET", "/resolve?type=A", None, None, 400),  # no name
    ("GET", "/resolve?name=www.test&type=NOSUCHTYPE", None, None, 400),
    ("POST", "/dns-query", "application/dns-message", b"\x00" * 70000, 413),
]


@pytest.mark.parametrize("http2", [True, False], ids=["h2", "http1.1"])
def test_bad_requests_leave_the_connection_working(knotd, pki, dnsmux, http2, loop_name_resolution):
    """Each malformed request gets its 4xx with a short reason, on one
    connection, and a good query on the same connection is answered after
    every one of them."""
    d = start_doh(dnsmux, pki, knotd.url("tcp"))
    ctx = tls_client_context(pki.ca_file)
    with httpx.Client(http2=http2, verify=ctx, timeout=5.0) as c:
        base = "https://%s:%d" % (SERVER_NAME, d.https)
        for method, path, ct, body, want in BAD:
            hdrs = {"content-type": ct} if ct else {}
            r = c.request(method, base + path, headers=hdrs, content=body)
            assert r.status_code == want, (method, path, r.status_code, r.text)
            assert r.text and len(r.text) < 200, r.text
            ok = c.get(base + "/dns-query", params={"dns": b64(query_wire())})
            assert ok.status_code == 200
            check_www(ok.content)
    st = d.stats()
    assert st["doh_bad_requests"] == len(BAD), st
    assert st["doh_h2_clients" if http2 else "doh_h1_clients"] == 1, st


def test_500_concurrent_queries_on_one_h2_connection(knotd, pki, dnsmux):
    """500 queries in flight at once on one HTTP/2 connection (python3-h2,
    the HTTP/2 engine of dnspython's DoH transport, driven from one thread
    so that all 500 streams are open before the first answer is read):
    every one answered right on its own stream, one client connection."""
    import h2.config
    import h2.connection
    import h2.events
    d = start_doh(dnsmux, pki, knotd.url("tcp"), "--tcp-pipeline", "1000")
    ctx = tls_client_context(pki.ca_file)
    ctx.set_alpn_protocols(["h2"])
    names = ["n%d.test." % (i % helpers.N_NAMES) for i in range(500)]
    raw = socket.create_connection(("127.0.0.1", d.https), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname=SERVER_NAME)
    assert s.selected_alpn_protocol() == "h2"
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    stream_of = {}
    for i, name in enumerate(names):
        sid = conn.get_next_available_stream_id()
        w = query_wire(name, qid=i)
        conn.send_headers(sid, [(":method", "POST"), (":scheme", "https"), (":authority", SERVER_NAME),
                                (":path", "/dns-query"), ("content-type", "application/dns-message"),
                                ("content-length", str(len(w)))])
        conn.send_data(sid, w, end_stream=True)
        stream_of[sid] = i
    s.sendall(conn.data_to_send())
    bodies, status, done = {}, {}, set()
    while len(done) < 500:
        data = s.recv(65536)
        assert data, "connection closed with %d of 500 answered" % len(done)
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                status[ev.stream_id] = dict(ev.headers)[b":status"]
            elif isinstance(ev, h2.events.DataReceived):
                bodies[ev.stream_id] = bodies.get(ev.stream_id, b"") + ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                done.add(ev.stream_id)
        out = conn.data_to_send()
        if out:
            s.sendall(out)
    s.close()
    for sid, i in stream_of.items():
        assert status[sid] == b"200", (i, status[sid])
        m = dns.message.from_wire(bodies[sid])
        assert m.id == i
        assert helpers.rdata_set(m) == helpers.expected_rdata(names[i], "A"), (i, m)
    st = d.stats()
    assert st["doh_h2_clients"] == 1 and st["queries"] == 500, st


def test_cleartext_http1_and_h2_prior_knowledge(knotd, pki, dnsmux):
    """http:// (for a reverse proxy): HTTP/1.1 with keep-alive (two requests,
    one connection), HTTP/1.0 with Connection: close, HTTP/2 by prior knowledge."""
    d = start_doh(dnsmux, pki, knotd.url("tcp"))
    url = "http://127.0.0.1:%d/dns-query?dns=%s" % (d.http, b64(query_wire()))
    r = subprocess.run([CURL, "-sS", "--max-time", "5", "--http1.1", "-w", "%{http_code} %{num_connects}\n",
                        "-o", "/dev/null", url, "-o", "/dev/null", url], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["200 1", "200 0"], r.stdout  # the second one reused the connection
    for flag in ("--http1.0", "--http2-prior-knowledge"):
        out = subprocess.run([CURL, "-sS", "--max-time", "5", flag, url], capture_output=True, timeout=10)
        assert out.returncode == 0, out.stderr
        check_www(out.stdout)
    st = d.stats()
    assert st["doh_h2_clients"] == 1 and st["doh_h1_clients"] == 2, st


def test_raw_http10_connection_close(knotd, pki, dnsmux):
    """What nginx's proxy_pass sends by default: HTTP/1.0, Connection:
    close, over TLS without ALPN and without SNI. The answer comes, then
    the connection is closed by dnsmux."""
    d = start_doh(dnsmux, pki, knotd.url("tcp"))
    ctx = tls_client_context(pki.ca_file, check_hostname=False)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    raw = socket.create_connection(("127.0.0.1", d.https), timeout=5)
    s = ctx.wrap_socket(raw)  # no server_hostname: no SNI; no ALPN set
    w = query_wire()
    s.sendall(b"POST /dns-query HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
              b"Content-Type: application/dns-message\r\nContent-Length: %d\r\n\r\n" % len(w) + w)
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except (ssl.SSLZeroReturnError, ConnectionResetError):
            break
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"Content-Type: application/dns-message" in head
    check_www(body)


NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

# The set-up users copy from blog posts: nginx terminates TLS and passes
# /dns-query and /resolve to dnsmux. One server block with proxy_pass
# https:// as written (nginx then speaks HTTP/1.0, Connection: close, TLS
# without ALPN or SNI), one with proxy_pass http:// to the cleartext
# listener, HTTP/1.1 keep-alive and X-Forwarded-For.
NGINX_CONF = """\
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream dnsmux_plain {{ server 127.0.0.1:{http}; keepalive 4; }}
    server {{
        listen 127.0.0.1:{tls_port} ssl http2;
        server_name {name};
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location /dns-query {{ proxy_pass https://127.0.0.1:{https}/dns-query; }}
        location /resolve {{ proxy_pass https://127.0.0.1:{https}/resolve; }}
    }}
    server {{
        listen 127.0.0.1:{plain_port};
        location /dns-query {{
            proxy_pass http://dnsmux_plain;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
}}
"""


class Nginx:
    def __init__(self, tmp, pki, d):
        self.dir = tmp / "nginx"
        self.dir.mkdir()
        self.tls_port, self.plain_port = free_port(), free_port()
        conf = self.dir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=self.dir, tls_port=self.tls_port, plain_port=self.plain_port,
                                          name=SERVER_NAME, cert=pki.cert_file("server"), key=pki.key_file("server"),
                                          https=d.https, http=d.http))
        self.proc = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(self.dir)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        import conftest
        conftest._children.append(self.proc)
        ok = conftest.wait_until(lambda: self._listening(), 10)
        assert ok, (self.dir / "error.log").read_text()

    def _listening(self):
        for p in (self.tls_port, self.plain_port):
            try:
                socket.create_connection(("127.0.0.1", p), timeout=0.2).close()
            except OSError:
                return False
        return True

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def nginx(tmp_path):
    made = []

    def make(pki, d):
        n = Nginx(tmp_path, pki, d)
        made.append(n)
        return n

    yield make
    for n in made:
        n.stop()


def test_behind_nginx(knotd, pki, dnsmux, nginx):
    d = start_doh(dnsmux, pki, knotd.url("tcp"), "--trusted-proxy", "127.0.0.1")
    n = nginx(pki, d)
    w = query_wire(qid=7)
    for http in ("--http2", "--http1.1"):
        url = "https://%s:%d/dns-query?dns=%s" % (SERVER_NAME, n.tls_port, b64(w))
        r = subprocess.run([CURL, "-sS", "--max-time", "5", "--cacert", str(pki.ca_file), http, "--resolve",
                            "%s:%d:127.0.0.1" % (SERVER_NAME, n.tls_port), url], capture_output=True, timeout=10)
        assert r.returncode == 0, r.stderr
        check_www(r.stdout, qid=7)
    r = subprocess.run([CURL, "-sS", "--max-time", "5", "--cacert", str(pki.ca_file), "--resolve",
                        "%s:%d:127.0.0.1" % (SERVER_NAME, n.tls_port),
                        "https://%s:%d/resolve?name=www.test&type=A" % (SERVER_NAME, n.tls_port)],
                       capture_output=True, timeout=10)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["Answer"][0]["data"] == helpers.WWW_A
    for i in range(3):  # through the keep-alive upstream connection
        r = subprocess.run([CURL, "-sS", "--max-time", "5", "-H", "content-type: application/dns-message",
                            "--data-binary", "@-", "http://127.0.0.1:%d/dns-query" % n.plain_port],
                           input=query_wire(qid=i), capture_output=True, timeout=10)
        assert r.returncode == 0, r.stderr
        check_www(r.stdout, qid=i)
    st = d.stats()
    assert st["doh_bad_requests"] == 0, st
    assert st["doh_h1_clients"] >= 2, st  # nginx speaks HTTP/1.x to both listeners


@pytest.mark.parametrize("listener", ["https", "http"])
def test_answer_padding(knotd, pki, dnsmux, listener, loop_name_resolution):
    """RFC 8467 4.1 over https://: an answer to a padded query is padded to
    a multiple of 468 bytes; over cleartext http:// it is not padded."""
    import dns.edns
    d = start_doh(dnsmux, pki, knotd.url("tcp"))
    q = dns.message.make_query("www.test.", "A", use_edns=0, payload=1232,
                               options=[dns.edns.GenericOption(12, b"\x00" * 40)])
    q.id = 0
    w = q.to_wire()
    ctx = tls_client_context(pki.ca_file)
    url = https_url(d) if listener == "https" else "http://127.0.0.1:%d/dns-query" % d.http
    with httpx.Client(http2=listener == "https", verify=ctx, timeout=5.0) as c:
        r = c.post(url, content=w, headers={"content-type": "application/dns-message"})
    assert r.status_code == 200
    m = check_www(r.content)
    pads = [o for o in m.options if o.otype == 12]
    if listener == "https":
        assert len(r.content) % 468 == 0, len(r.content)
        assert len(pads) == 1, m.options
    else:
        assert not pads, m.options
