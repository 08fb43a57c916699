// A webhook receiver for zhida's tests that checks every request's signature with the
// Standard Webhooks reference library (npm "standardwebhooks"), so the wire format is checked
// by code the project did not write.
//
//   node verify_receiver.mjs PORT SECRET [SECRET...] [--tls CERT KEY]
//
// Each SECRET ("whsec_...") must verify the request on its own (a key rotation sends one
// signature per secret). Answers 200 when every secret verifies, else 401 with the library's
// message. Prints "listening" once ready, then one JSON line per request:
// {"id", "verified": [bool per secret], "errors", "notices", "ids" (the notice ids), "http",
// "session"}.
// With --tls it serves HTTPS with HTTP/2 offered through ALPN (HTTP/1.1 still allowed), and
// "session" numbers the TLS connections, so a test can count how many were opened.
import { readFileSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { Webhook } = require("standardwebhooks");

const args = process.argv.slice(2);
const port = Number(args.shift());
let tls = null;
const secrets = [];
while (args.length) {
  const a = args.shift();
  if (a === "--tls") tls = { cert: readFileSync(args.shift()), key: readFileSync(args.shift()) };
  else secrets.push(a);
}
const hooks = secrets.map((s) => new Webhook(s));
let sessions = 0;

function handle(req, res) {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks).toString("utf8");
    const headers = {
      "webhook-id": req.headers["webhook-id"],
      "webhook-timestamp": req.headers["webhook-timestamp"],
      "webhook-signature": req.headers["webhook-signature"],
    };
    const verified = [];
    const errors = [];
    for (const h of hooks) {
      try {
        h.verify(body, headers);
        verified.push(true);
      } catch (e) {
        verified.push(false);
        errors.push(String(e.message));
      }
    }
    let notices = 0;
    let ids = [];
    try {
      const list = JSON.parse(body).notices;
      notices = list.length;
      ids = list.map((n) => n.id);
    } catch (e) {
      errors.push("body is not {\"notices\": [...]}");
    }
    const ok = verified.every((v) => v) && errors.length === 0;
    const session = req.socket && req.socket.zdSession !== undefined ? req.socket.zdSession
      : (req.stream && req.stream.session && req.stream.session.socket.zdSession);
    process.stdout.write(JSON.stringify({
      id: headers["webhook-id"], verified, errors, notices, ids, http: req.httpVersion, session,
      idempotency_key: req.headers["idempotency-key"] || null,
    }) + "\n");
    res.writeHead(ok ? 200 : 401, { "content-type": "application/json" });
    res.end(JSON.stringify(ok ? {} : { error: errors.join("; ") }));
  });
}

let server;
if (tls) {
  server = http2.createSecureServer({ ...tls, allowHTTP1: true }, handle);
  server.on("secureConnection", (sock) => { sock.zdSession = ++sessions; });
} else {
  server = http.createServer({ keepAliveTimeout: 30000 }, handle);
  server.on("connection", (sock) => { sock.zdSession = ++sessions; });
}
server.listen(port, "127.0.0.1", () => process.stdout.write("listening\n"));
process.on("SIGTERM", () => process.exit(0));
