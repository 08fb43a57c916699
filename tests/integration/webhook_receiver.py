"""A real webhook receiver for the gateway tests: a threaded HTTP/1.1 server on 127.0.0.1
that records every request (headers, body, connection, arrival time, whether each configured
secret's Standard Webhooks signature verifies) and answers as its path says:

  /ok                     200 {}                (?delay_ms=N: answer after N ms)
  /status/<N>             status N with a small JSON body
  /retry-after/<value>    429 with Retry-After: <value> (URL-decoded)
  /failed                 200 {"failed": [...]} from the receiver's `failed` dict id -> permanent
                          (True, False, or an int n: transient for the first n times it is seen)
  /flaky/<n>/<status>     status while any notice of the batch was seen at most n times, then 200
  /ra-once/<value>        429 with Retry-After: <value> the first time a notice is seen, then 200
  /slow/<ms>              200 after <ms> ms (past a client's timeout)
  /close                  reads the request, closes the connection without answering
  /echo                   401 whose body repeats the notice, contact included

Run-time modes (set from the test while zhidad sends; they apply whatever the path):
  down()                  stops listening and cuts every open connection, so zhidad sees
                          connection refused; up() listens again on the same port
  set_mode("slow", ms)    every request is answered (as its path says) after ms
  set_mode("status", N)   every request is answered N (e.g. 500) with a small JSON body
  set_mode("drop")        every request is taken (its notices count as accepted) and its
                          connection closed without an answer: the sender must retry, so
                          the receiver gets duplicates (what a lost 200 looks like)
  set_mode(None)          back to the path's answer
Every notice of a request the receiver answered 2xx (minus its `failed` list) is appended to
`accepted` as (notice id, verified by every secret, monotonic time, request headers); every
notice of every request, whatever the answer, to `arrivals`. tests/integration/delivery_check.py
compares them with who was matched.
"""
import base64
import hashlib
import hmac
import json
import socket
import socketserver
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer


def secret_key(secret):
    return base64.b64decode(secret[len("whsec_"):] + "=" * (-len(secret[len("whsec_"):]) % 4))


def signature(secret, msg_id, ts, body):
    mac = hmac.new(secret_key(secret), msg_id.encode() + b"." + ts.encode() + b"." + body,
                   hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


class _Server(socketserver.ThreadingMixIn, HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        # A sender killed mid-request (the fault tests do that) resets its connections.
        import sys
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class Receiver:
    def __init__(self, secrets=(), keep_requests=True):
        self.secrets = list(secrets)
        self.requests = []
        self.keep_requests = keep_requests  # False: only `accepted` and `arrivals` (large runs)
        self.failed = {}
        self.seen = {}  # notice id -> requests that carried it
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        self.connections = 0
        self.mode = None  # None, ("slow", ms) or ("status", N): see set_mode()
        self.is_down = False
        self.downs = 0  # down() calls: a request that outlived one is not answered
        self.socks = set()  # open connections, cut by down()
        self.accepted = []  # (notice id, verified, time, headers) of notices answered 2xx
        self.arrivals = []  # (notice id, verified, time, status answered or None)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                with receiver.lock:
                    receiver.connections += 1
                    self.conn_no = receiver.connections
                    receiver.socks.add(self.connection)

            def finish(self):
                with receiver.lock:
                    receiver.socks.discard(self.connection)
                try:
                    super().finish()
                except OSError:
                    pass

            def log_message(self, *args):
                pass

            def answer(self, status, body=b"{}", headers=()):
                receiver._record(self.rec, status, body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                with receiver.lock:
                    receiver.active += 1
                    receiver.max_active = max(receiver.max_active, receiver.active)
                try:
                    self.handle_post()
                finally:
                    with receiver.lock:
                        receiver.active -= 1

            def handle_post(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                h = {k.lower(): v for k, v in self.headers.items()}
                sigs = h.get("webhook-signature", "").split(" ")
                verified = [signature(s, h.get("webhook-id", ""), h.get("webhook-timestamp", ""),
                                      body) in sigs for s in receiver.secrets]
                url = urllib.parse.urlsplit(self.path)
                parts = url.path.strip("/").split("/")
                query = urllib.parse.parse_qs(url.query)
                rec = {"path": url.path, "headers": h, "body": body, "time": time.monotonic(),
                       "conn": self.conn_no, "verified": verified}
                try:
                    rec["json"] = json.loads(body)
                except ValueError:
                    rec["json"] = None
                self.rec = rec
                ids = [x.get("id") for x in (rec["json"] or {}).get("notices", [])] \
                    if isinstance(rec["json"], dict) else []
                with receiver.lock:
                    if receiver.keep_requests:
                        receiver.requests.append(rec)
                    for i in ids:
                        receiver.seen[i] = receiver.seen.get(i, 0) + 1
                    times = [receiver.seen[i] for i in ids]
                    override = receiver.mode
                    downs = receiver.downs
                if receiver.is_down:
                    # Went down while this request was on its way: no answer.
                    receiver._record(rec, None, b"")
                    self.close_connection = True
                    return
                if override and override[0] == "slow":
                    time.sleep(override[1] / 1000)
                    if receiver.is_down or receiver.downs != downs:
                        receiver._record(rec, None, b"")
                        self.close_connection = True
                        return
                elif override and override[0] == "status":
                    self.answer(override[1], b'{"error": "as the test asked"}')
                    return
                elif override and override[0] == "drop":
                    receiver._record(rec, 200, b"{}")
                    self.close_connection = True
                    return
                mode = parts[0]
                if mode == "ok":
                    delay = int(query.get("delay_ms", ["0"])[0])
                    if delay:
                        time.sleep(delay / 1000)
                    self.answer(200)
                elif mode == "status":
                    self.answer(int(parts[1]), b'{"error": "as asked"}')
                elif mode == "retry-after":
                    self.answer(429, b"{}", [("Retry-After", urllib.parse.unquote(parts[1]))])
                elif mode == "failed":
                    failed = []
                    for i, n in zip(ids, times):
                        f = receiver.failed.get(i)
                        if f is True or f is False:
                            failed.append({"id": i, "permanent": f})
                        elif isinstance(f, int) and n <= f:
                            failed.append({"id": i, "permanent": False})
                    self.answer(200, json.dumps({"failed": failed}).encode())
                elif mode == "flaky":
                    if times and min(times) <= int(parts[1]):
                        self.answer(int(parts[2]), b'{"error": "flaky"}')
                    else:
                        self.answer(200)
                elif mode == "ra-once":
                    if times and min(times) == 1:
                        self.answer(429, b"{}", [("Retry-After", urllib.parse.unquote(parts[1]))])
                    else:
                        self.answer(200)
                elif mode == "slow":
                    time.sleep(int(parts[1]) / 1000)
                    try:
                        self.answer(200)
                    except OSError:
                        pass
                elif mode == "close":
                    receiver._record(rec, None, b"")
                    self.close_connection = True
                elif mode == "echo":
                    self.answer(401, json.dumps({"error": "bad signature",
                                                 "notice": rec["json"]["notices"][0]},
                                                ensure_ascii=False).encode())
                else:
                    self.answer(404)

        self.handler = Handler
        self.port = 0
        self._listen()

    def _listen(self):
        self.server = _Server(("127.0.0.1", self.port), self.handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _record(self, rec, status, body):
        """Notes the notices of a request once, as it is answered (status None: not at all)."""
        if rec.get("recorded"):
            return
        rec["recorded"] = True
        notices = rec["json"].get("notices") if isinstance(rec["json"], dict) else None
        if not isinstance(notices, list):
            return
        ok = all(rec["verified"]) and bool(rec["verified"] or not self.secrets)
        failed = set()
        if status is not None and 200 <= status < 300:
            try:
                failed = {f["id"] for f in json.loads(body).get("failed", [])}
            except (ValueError, AttributeError, KeyError, TypeError):
                failed = set()
        with self.lock:
            for n in notices:
                nid = n.get("id") if isinstance(n, dict) else None
                self.arrivals.append((nid, ok, rec["time"], status))
                if status is not None and 200 <= status < 300 and nid not in failed:
                    self.accepted.append((nid, ok, rec["time"], rec["headers"]))

    def set_mode(self, mode, value=None):
        """None (answer as the path says), "slow" (value ms before answering), "status"
        (answer value to everything) or "drop" (take the notices, close without answering)."""
        with self.lock:
            self.mode = None if mode is None else (mode, value)

    def down(self):
        """Connection refused from now on: the listener is closed and every open connection
        cut (a request being read or slowed gets no answer)."""
        self.is_down = True
        with self.lock:
            self.downs += 1
        self.server.shutdown()
        self.server.server_close()
        with self.lock:
            socks = list(self.socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def up(self):
        """Listens again on the same port."""
        deadline = time.monotonic() + 10
        while True:
            try:
                self._listen()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.is_down = False

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def close(self):
        if not self.is_down:
            self.server.shutdown()
            self.server.server_close()
        self.is_down = True
