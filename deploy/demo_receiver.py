#!/usr/bin/env python3
"""The demo's app backend: a webhook receiver (Python standard library only) that checks each
request's Standard Webhooks signature (SPEC §5) with the secret in ZLB_SECRET, counts the
notices it accepted, and answers GET /stats with {"requests", "notices", "distinct",
"bad_signatures", "example"}. Listens on 127.0.0.1:PORT (argv[1]) until killed."""
import base64
import hashlib
import hmac
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = os.environ["ZLB_SECRET"]
KEY = base64.b64decode(SECRET[len("whsec_"):])
lock = threading.Lock()
stats = {"requests": 0, "notices": 0, "distinct": 0, "bad_signatures": 0, "example": None}
seen = set()


def verified(headers, body):
    msg_id, ts = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    mac = hmac.new(KEY, msg_id.encode() + b"." + ts.encode() + b"." + body, hashlib.sha256)
    want = "v1," + base64.b64encode(mac.digest()).decode()
    return any(hmac.compare_digest(want, s) for s in headers.get("webhook-signature", "").split())


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, code, obj):
        body = json.dumps(obj, ensure_ascii=False).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        with lock:
            self.answer(200, stats)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if not verified(self.headers, body):
            with lock:
                stats["bad_signatures"] += 1
            self.answer(401, {"error": "bad signature"})
            return
        notices = json.loads(body)["notices"]
        with lock:
            stats["requests"] += 1
            stats["notices"] += len(notices)
            for n in notices:
                seen.add(n["id"])
            stats["distinct"] = len(seen)
            if stats["example"] is None and notices:
                n = notices[0]
                stats["example"] = {k: n[k] for k in ("id", "title", "body", "url", "attempt")}
        self.answer(200, {})


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
