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
"""
import base64
import hashlib
import hmac
import json
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


class Receiver:
    def __init__(self, secrets=()):
        self.secrets = list(secrets)
        self.requests = []
        self.failed = {}
        self.seen = {}  # notice id -> requests that carried it
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        self.connections = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                with receiver.lock:
                    receiver.connections += 1
                    self.conn_no = receiver.connections

            def log_message(self, *args):
                pass

            def answer(self, status, body=b"{}", headers=()):
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
                ids = [x.get("id") for x in (rec["json"] or {}).get("notices", [])] \
                    if isinstance(rec["json"], dict) else []
                with receiver.lock:
                    receiver.requests.append(rec)
                    for i in ids:
                        receiver.seen[i] = receiver.seen.get(i, 0) + 1
                    times = [receiver.seen[i] for i in ids]
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
                    self.close_connection = True
                elif mode == "echo":
                    self.answer(401, json.dumps({"error": "bad signature",
                                                 "notice": rec["json"]["notices"][0]},
                                                ensure_ascii=False).encode())
                else:
                    self.answer(404)

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
