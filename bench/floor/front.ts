// The floor's gateway: the least a front of Cairn's shape does for an object, and nothing else
// (no authentication, no checksums, no erasure coding, no S3 errors). PUT: MD5 of the body for the
// ETag; a body up to INLINE_MAX goes into its record; a larger one is cut into stripes of K blocks,
// block i to sink i and two more blocks to the parity sinks (copies: the bytes RS parity would be),
// then the record is committed. GET: the record, then the K data shards read in parallel and
// interleaved. Records go to the index in batches of one event-loop turn, as Cairn's gateway sends them.
import { createHash } from 'node:crypto';
import http from 'node:http';
import { Batcher, type Outcome } from '../../common/batcher.js';
import { listenLoopback, readAll, serverOf, type Listening } from './http.js';

const K = 4;
const M = 2;
/** Cairn's default: objects up to k × 4 KiB live in their namespace record. */
const INLINE_MAX = K * 4096;
/** Cairn's block: stripes of k × 256 KiB (smaller objects: a quarter of the object each). */
const MAX_BLOCK = 256 * 1024;

interface FloorRecord {
  size: number;
  etag: string;
  /** base64, when inline. */
  data?: string;
}

export async function startFront(sinkPorts: number[], indexPort: number): Promise<Listening> {
  if (sinkPorts.length !== K + M) throw new Error(`the floor wants ${K + M} sinks`);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const call = async (port: number, method: string, target: string, body?: Buffer): Promise<http.IncomingMessage> =>
    new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method, path: target, agent, headers: body ? { 'content-length': body.length } : {} }, resolve);
      req.on('error', reject);
      req.end(body);
    });
  const lines = async (target: string, items: unknown[]): Promise<Outcome<string>[]> => {
    const res = await call(indexPort, 'POST', target, Buffer.from(items.map((i) => JSON.stringify(i)).join('\n')));
    const text = (await readAll(res)).toString('utf8');
    if (res.statusCode !== 200) throw new Error(`index ${target}: ${res.statusCode} ${text}`);
    return text.split('\n').map((value) => ({ ok: true, value }));
  };
  const puts = new Batcher<{ key: string; record: FloorRecord }, string>((items) => lines('/put', items), { maxInFlight: 4, maxBatch: 64, gatherTurn: true });
  const gets = new Batcher<string, string>((keys) => lines('/get', keys), { maxInFlight: 4, maxBatch: 64, gatherTurn: true });

  async function put(key: string, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const size = Number(req.headers['content-length'] ?? 0);
    const md5 = createHash('md5');
    let record: FloorRecord;
    if (size <= INLINE_MAX) {
      const body = await readAll(req);
      record = { size: body.length, etag: md5.update(body).digest('hex'), data: body.toString('base64') };
    } else {
      const block = blockSize(size);
      const stripes = Math.ceil(size / (K * block));
      const shards = sinkPorts.map((port) => {
        const out = http.request({ host: '127.0.0.1', port, method: 'PUT', path: `/${encodeURIComponent(key)}`, agent, headers: { 'content-length': stripes * block } });
        const answered = new Promise<void>((resolve, reject) => {
          out.on('response', (r: http.IncomingMessage) => (r.resume(), r.on('end', () => (r.statusCode === 200 ? resolve() : reject(new Error(`sink answered ${r.statusCode}`))))));
          out.on('error', reject);
        });
        answered.catch(() => undefined); // awaited below; a failed PUT may leave it unawaited
        return { out, answered };
      });
      let stripe = Buffer.alloc(K * block);
      let filled = 0;
      const send = async (): Promise<void> => {
        const blocks = [0, 1, 2, 3, 0, 1].map((i) => stripe.subarray(i * block, (i + 1) * block));
        const full = shards.filter((s, i) => !s.out.write(blocks[i]));
        await Promise.all(full.map((s) => new Promise((resolve) => s.out.once('drain', resolve))));
        stripe = Buffer.alloc(K * block);
        filled = 0;
      };
      try {
        for await (const chunk of req as AsyncIterable<Buffer>) {
          md5.update(chunk);
          for (let at = 0; at < chunk.length; ) {
            const n = chunk.copy(stripe, filled, at);
            filled += n;
            at += n;
            if (filled === stripe.length) await send();
          }
        }
        if (filled > 0) await send();
        for (const s of shards) s.out.end();
        await Promise.all(shards.map((s) => s.answered));
      } catch (err) {
        for (const s of shards) s.out.destroy();
        throw err;
      }
      record = { size, etag: md5.digest('hex') };
    }
    await puts.submit({ key, record });
    res.writeHead(200, { etag: `"${record.etag}"`, 'content-length': 0 }).end();
  }

  async function get(key: string, res: http.ServerResponse): Promise<void> {
    const found = await gets.submit(key);
    if (found === 'null') {
      res.writeHead(404, { 'content-length': 0 }).end();
      return;
    }
    const record = JSON.parse(found) as FloorRecord;
    res.writeHead(200, { etag: `"${record.etag}"`, 'content-length': record.size });
    if (record.data !== undefined) {
      res.end(Buffer.from(record.data, 'base64'));
      return;
    }
    const block = blockSize(record.size);
    const readers = await Promise.all(sinkPorts.slice(0, K).map(async (port) => blocksOf(await call(port, 'GET', `/${encodeURIComponent(key)}`), block)));
    let left = record.size;
    // One stripe read ahead, as Cairn's reader does.
    let ahead = readers.map((r) => r.next());
    try {
      while (left > 0) {
        const stripe = await Promise.all(ahead);
        if (stripe.every((b) => b.done)) throw new Error(`the shards of ${key} ended ${left} bytes short`);
        ahead = readers.map((r) => r.next());
        for (const b of stripe) {
          if (b.done || left === 0) continue;
          const part = b.value.subarray(0, Math.min(b.value.length, left));
          left -= part.length;
          if (!res.write(part)) await new Promise((resolve) => (res.once('drain', resolve), res.once('close', resolve)));
          if (res.destroyed) throw new Error('the client went away');
        }
      }
      res.end();
    } finally {
      // Reads still out are dropped; closing each generator closes its sink response.
      for (const read of ahead) read.catch(() => undefined);
      for (const reader of readers) void reader.return(undefined).catch(() => undefined);
    }
  }

  const server = serverOf(async (req, res) => {
    const [bucket, ...rest] = (req.url ?? '/').slice(1).split('?')[0]!.split('/');
    const key = `${bucket}/${rest.join('/')}`;
    if (rest.length === 0) {
      await readAll(req); // a bucket: nothing to create
      res.end();
    } else if (req.method === 'PUT') await put(key, req, res);
    else await get(key, res);
  });
  return listenLoopback(server, async () => agent.destroy());
}

function blockSize(size: number): number {
  return Math.min(MAX_BLOCK, Math.ceil(size / K));
}

/** A shard's body in blocks of `block` bytes (the last may be short). */
async function* blocksOf(body: http.IncomingMessage, block: number): AsyncGenerator<Buffer> {
  if (body.statusCode !== 200) throw new Error(`sink answered ${body.statusCode}`);
  let held: Buffer[] = [];
  let length = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    held.push(chunk);
    length += chunk.length;
    while (length >= block) {
      const all = held.length === 1 ? held[0]! : Buffer.concat(held, length);
      yield all.subarray(0, block);
      const rest = all.subarray(block);
      held = rest.length > 0 ? [rest] : [];
      length = rest.length;
    }
  }
  if (length > 0) yield Buffer.concat(held, length);
}
