// The BullMQ peer's worker (bench/dispatch.sh): takes notice jobs from Redis and POSTs each one
// alone (a batch of one, SPEC §5 wire format) to the receiver, signed like zhida's webhook
// (Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature, Idempotency-Key), over
// keep-alive connections. A non-2xx answer fails the job, so BullMQ retries it.
//
//   node worker.mjs --redis 127.0.0.1:6379 --url http://127.0.0.1:PORT/hook --secret whsec_...
//                   [--concurrency 64] [--client http|undici] [--pipelining 1] [--queue notices]
//
// Prints "ready" once connected; runs until SIGTERM, then prints "result worker completed=N".
import crypto from 'node:crypto';
import http from 'node:http';
import { Worker } from 'bullmq';
import { Pool } from 'undici';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []));
const [host, port] = (args.redis || '127.0.0.1:6379').split(':');
const concurrency = Number(args.concurrency || 64);
const client = args.client || 'http';
const pipelining = Number(args.pipelining || 1);
const url = new URL(args.url);
const key = Buffer.from(args.secret.replace(/^whsec_/, ''), 'base64');

function headers(id, body) {
  const ts = Math.floor(Date.now() / 1000);
  const sig = crypto.createHmac('sha256', key).update(`${id}.${ts}.${body}`).digest('base64');
  return { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)),
           'webhook-id': id, 'webhook-timestamp': String(ts), 'webhook-signature': `v1,${sig}`,
           'idempotency-key': id };
}

let post;
if (client === 'undici') {
  const pool = new Pool(url.origin, { connections: concurrency, pipelining });
  post = async (id, body) => {
    const r = await pool.request({ path: url.pathname, method: 'POST', headers: headers(id, body), body });
    await r.body.dump();
    if (r.statusCode < 200 || r.statusCode > 299) throw new Error(`HTTP ${r.statusCode}`);
  };
} else {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency });
  post = (id, body) => new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent, headers: headers(id, body) }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode >= 200 && res.statusCode < 300
        ? resolve() : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

let completed = 0;
const worker = new Worker(args.queue || 'notices', async (job) => {
  await post(job.data.id, JSON.stringify({ notices: [job.data] }));
  completed++;
}, { connection: { host, port: Number(port), maxRetriesPerRequest: null }, concurrency });
worker.on('error', (e) => console.error('worker error:', e.message));
await worker.waitUntilReady();
console.log('ready');
process.on('SIGTERM', async () => {
  await worker.close();
  console.log(`result worker completed=${completed}`);
  process.exit(0);
});
