// The BullMQ peer's producer (bench/dispatch.sh): enqueues one job per notice, the very notices
// zhida sends for the same policy and population (SPEC §5 notice fields, id policy:profile:gw),
// with addBulk in chunks, several chunks in flight. Prints one "result producer ..." line.
//
//   node producer.mjs --redis 127.0.0.1:6379 --population pop.ndjson --policy policy.json
//                     [--n 1000000] [--gateway zlb] [--queue notices] [--chunk 1000]
import fs from 'node:fs';
import readline from 'node:readline';
import { Queue } from 'bullmq';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []));
const [host, port] = (args.redis || '127.0.0.1:6379').split(':');
const n = Number(args.n || 1000000);
const gateway = args.gateway || 'zlb';
const chunk = Number(args.chunk || 1000);
const policy = JSON.parse(fs.readFileSync(args.policy, 'utf8'));

// Retries as zhida's webhook does them: a few attempts with exponential back-off; finished
// jobs are removed so that Redis holds only the work not yet done (zhida's streams are trimmed).
const queue = new Queue(args.queue || 'notices', {
  connection: { host, port: Number(port), maxRetriesPerRequest: null },
  defaultJobOptions: { removeOnComplete: true, removeOnFail: 10000, attempts: 5,
                       backoff: { type: 'exponential', delay: 1000 } },
});
await queue.waitUntilReady();

const t0 = process.hrtime.bigint();
let produced = 0;
let batch = [];
const inflight = new Set();
const flush = async () => {
  const jobs = batch;
  batch = [];
  const p = queue.addBulk(jobs).then(() => inflight.delete(p));
  inflight.add(p);
  if (inflight.size >= 8) await Promise.race(inflight);
};
const lines = readline.createInterface({ input: fs.createReadStream(args.population), crlfDelay: Infinity });
for await (const line of lines) {
  if (produced >= n) break;
  if (!line) continue;
  const p = JSON.parse(line);
  const to = p.contacts && p.contacts[gateway];
  if (!to) continue; // zhida counts these as no_contact and sends nothing
  batch.push({ name: 'notice', data: {
    id: `${policy.id}:${p.id}:${gateway}`, policy: policy.id, profile: p.id, gateway, to,
    title: policy.title || '', body: policy.summary || '', url: policy.url || '',
    category: policy.category || '', urgent: !!policy.urgent, attempt: 1,
  } });
  produced++;
  if (batch.length >= chunk) await flush();
}
if (batch.length) await flush();
await Promise.all(inflight);
const s = Number(process.hrtime.bigint() - t0) / 1e9;
const waiting = await queue.getWaitingCount();
console.log(`result producer jobs=${produced} waiting=${waiting} seconds=${s.toFixed(3)} jobs_per_s=${Math.round(produced / s)}`);
await queue.close();
