// Pooled stripe buffers: reused only once every holder has let go — the frame channel until the
// HTTP client pulls the next frame, a socket until the kernel has the bytes — and never early.
import t, { type Test } from 'tap';
import net from 'node:net';
import http from 'node:http';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { BufferPool, holdView, releaseBuffer, releaseOnWritten } from '../common/buffer-pool.js';
import { FrameChannel, UploadCancelledError } from '../gateway/data/frame-channel.js';
import { writeObjectData, type WriteOptions, type WriterDeps } from '../gateway/data/writer.js';
import { StripeCodec } from '../erasure/codec.js';
import { decodeStripes, type StripeBuffers } from '../erasure/stream.js';
import { MemoryBudget } from '../gateway/data/memory-budget.js';
import { StorageNodeClient } from '../storage-node/client.js';
import { TEST_SECRET } from './helpers/internal.js';

t.test('BufferPool: a buffer comes back once its last holder lets go, and only then', async (t) => {
  const pool = new BufferPool(1 << 20);
  const a = pool.take(4096);
  holdView(a.subarray(100, 200)); // a second holder, through a view
  releaseBuffer(a);
  t.equal(pool.idleSize, 0, 'one holder left: not idle');
  const b = pool.take(4096);
  t.not(b.buffer, a.buffer, 'a held buffer is not handed out again');
  releaseBuffer(a.subarray(5));
  t.equal(pool.idleSize, 4096, 'the last holder let go: idle');
  t.equal(pool.take(4096).buffer, a.buffer, 'and reused');
  t.same({ reused: pool.reused, allocated: pool.allocated }, { reused: 1, allocated: 2 });
  releaseBuffer(b);
  t.equal(holdView(b), undefined, 'an idle buffer has no lease to hold');
});

t.test('BufferPool: a release more than held throws, and idle bytes stay within the limit', async (t) => {
  const pool = new BufferPool(8192);
  const a = pool.take(4096);
  const lease = holdView(a)!;
  lease.release();
  lease.release();
  t.throws(() => lease.release(), /released more often than it was held/);
  const bufs = [pool.take(4096), pool.take(4096), pool.take(4096)];
  for (const buf of bufs) releaseBuffer(buf);
  t.equal(pool.idleSize, 8192, 'the third buffer is left to the garbage collector');
  releaseBuffer(randomBytes(16)); // not pooled: nothing to do
});

t.test('BufferPool: idle buffers go once none has been taken for the trim time, not while in use', async (t) => {
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  const pool = new BufferPool(1 << 20, 150);
  releaseBuffer(pool.take(1024));
  releaseBuffer(pool.take(2048));
  t.equal(pool.idleSize, 3072, 'both kept at first');
  // Taken and given back every 50 ms for 300 ms: never quiet for 150 ms, so never trimmed.
  for (let i = 0; i < 6; i++) {
    await sleep(50);
    releaseBuffer(pool.take(1024));
  }
  t.equal(pool.idleSize, 3072, 'kept while in use');
  t.equal(pool.allocated, 2, 'and reused');
  await sleep(400);
  t.equal(pool.idleSize, 0, 'let go after the quiet time');
  releaseBuffer(pool.take(1024));
  t.equal(pool.allocated, 3, 'the next one is new');
  t.equal(pool.idleSize, 1024);
});

t.test('a socket holds a pooled chunk until the kernel has taken all of it', async (t) => {
  const pool = new BufferPool(64 << 20);
  let receiver: net.Socket | undefined;
  const server = net.createServer((s) => {
    receiver = s;
    s.pause(); // reads nothing until told: the sender's writes back up
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const sender = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  t.teardown(() => {
    sender.destroy();
    receiver?.destroy();
    server.close();
  });
  releaseOnWritten(sender);
  await once(sender, 'connect');
  const chunk = pool.take(16 << 20); // more than the socket buffers of both ends hold
  chunk.fill(7);
  let written = false;
  sender.write(chunk, () => (written = true));
  releaseBuffer(chunk); // the sender's own hold: the socket still has one
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.notOk(written, 'the write is not complete while the receiver reads nothing');
  t.equal(pool.idleSize, 0, 'so the buffer is not back in the pool');
  let got = 0;
  receiver!.on('data', (d: Buffer) => (got += d.length));
  receiver!.resume();
  while (!written) await new Promise((resolve) => setTimeout(resolve, 10));
  t.equal(pool.idleSize, 16 << 20, 'back in the pool once the write completed');
  t.ok(got > 0, 'the receiver got the bytes');
});

t.test('a socket destroyed with a pooled chunk unsent lets go of it', async (t) => {
  const pool = new BufferPool(64 << 20);
  const server = net.createServer((s) => s.pause());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const sender = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  t.teardown(() => server.close());
  releaseOnWritten(sender);
  await once(sender, 'connect');
  const chunk = pool.take(16 << 20);
  const second = pool.take(1 << 20);
  sender.write(chunk);
  sender.write(second); // queued behind the first, in the stream's own buffer
  releaseBuffer(chunk);
  releaseBuffer(second);
  t.equal(pool.idleSize, 0);
  sender.destroy();
  await once(sender, 'close');
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(pool.idleSize, 17 << 20, 'both chunks are back');
});

t.test('FrameChannel: holds a frame until the next pull; a destroyed channel drops its queue and fails the pull', async (t) => {
  const pool = new BufferPool(1 << 20);
  const channel = new FrameChannel(3000);
  const frames = [pool.take(1000), pool.take(1000), pool.take(1000)];
  t.equal(channel.write(frames[0]!), true);
  t.equal(channel.write(frames[1]!), true);
  t.equal(channel.write(frames[2]!), false, 'full at the high-water mark');
  for (const f of frames) releaseBuffer(f); // the writer's holds: the channel has its own
  let drained = false;
  void channel.drained().then(() => (drained = true));
  const it = channel[Symbol.asyncIterator]();
  t.equal((await it.next()).value, frames[0]);
  await Promise.resolve();
  t.ok(drained, 'drained once a frame left the queue');
  t.equal(pool.idleSize, 0, 'the pulled frame is held until the next pull');
  t.equal((await it.next()).value, frames[1]);
  t.equal(pool.idleSize, 1000, 'the first frame is let go once the second is pulled');
  channel.destroy();
  t.equal(pool.idleSize, 2000, 'the queued third frame is dropped at once');
  await t.rejects(it.next(), UploadCancelledError, 'the next pull fails: the request is aborted, not ended');
  t.equal(pool.idleSize, 3000, 'the frame the client had pulled is let go too');
  t.equal(channel.write(pool.take(10)), false, 'writes after destroy are refused');
});

t.test('FrameChannel: ends after its queue once ended', async (t) => {
  const channel = new FrameChannel(1 << 20);
  channel.write(Buffer.from('ab'));
  channel.end();
  const got: string[] = [];
  for await (const f of channel) got.push(f.toString());
  t.same(got, ['ab']);
  t.throws(() => channel.write(Buffer.from('c')), /write after the end/);
});

const layout = { k: 4, m: 2, blockSize: 1024 };
const STRIPE = layout.k * layout.blockSize;

t.test('the writer reuses stripe buffers across uploads and every shard holds exactly its bytes', async (t) => {
  const pool = new BufferPool(1 << 20);
  const buffers: StripeBuffers = { take: (n) => pool.take(n), release: releaseBuffer };
  const stored = new Map<string, Buffer>();
  const nodes = Array.from({ length: 6 }, (_, i) => ({ id: `n${i}`, url: `http://n${i}` }));
  const deps = {
    namespace: { listNodes: async () => nodes },
    directory: { place: async (count: number) => nodes.slice(0, count) },
    nodes: {
      get: () => ({
        // Consumes the body like undici: a chunk's bytes are gone (copied) before it pulls the next.
        putShard: async (id: string, _blockSize: number, body: AsyncIterable<Uint8Array>) => {
          const parts: Buffer[] = [];
          for await (const chunk of body) {
            parts.push(Buffer.from(chunk));
            await new Promise((resolve) => setImmediate(resolve)); // other uploads run meanwhile
          }
          stored.set(id, Buffer.concat(parts));
          return { id };
        },
        deleteShard: async () => undefined,
      }),
    },
    codec: new StripeCodec(layout),
    log: { warn: () => undefined },
    uploadBudget: new MemoryBudget(1 << 20),
    stripeBuffers: buffers,
  } as unknown as WriterDeps;
  const opts: WriteOptions = { layout, segmentSize: 4 * STRIPE, versionId: 'v', writeQuorum: 4, stallTimeoutMs: 5000 };
  const bodies = [9 * STRIPE + 5, 6 * STRIPE, 3 * STRIPE + 1].map((n) => randomBytes(n));
  const written = await Promise.all(
    bodies.map((body, i) => writeObjectData((async function* () { for (let at = 0; at < body.length; at += 700) yield body.subarray(at, at + 700); })(), { ...opts, versionId: `v${i}` }, deps)),
  );
  t.ok(pool.reused > 0, `buffers were reused (${pool.reused} reused, ${pool.allocated} allocated)`);
  for (const [i, data] of written.entries()) {
    const out: Buffer[] = [];
    for (const [s, segment] of data.segments.entries()) {
      // Frames are block ‖ CRC32C; the decoder wants the blocks alone.
      const shards = segment.placements.map((p) => unframe(stored.get(p.shardId)!, layout.blockSize));
      for await (const piece of decodeStripes(shards.map((sh) => (async function* () { yield sh; })()), layout, segment.size)) out.push(Buffer.from(piece));
      t.ok(segment.size > 0, `object ${i} segment ${s}`);
    }
    t.ok(Buffer.concat(out).equals(bodies[i]!), `object ${i} (${bodies[i]!.length} B) decodes to its bytes`);
  }
});

function unframe(framed: Buffer, blockSize: number): Buffer {
  const blocks: Buffer[] = [];
  for (let at = 0; at < framed.length; at += blockSize + 4) blocks.push(framed.subarray(at, Math.min(framed.length, at + blockSize + 4) - 4));
  return Buffer.concat(blocks);
}

/**
 * A storage node that takes a shard upload's request and reads nothing of its body until told
 * (`startReading`); then it reads it all and answers 201. Its client is a real StorageNodeClient.
 */
async function slowNode(t: Test): Promise<{ client: StorageNodeClient; requested: () => boolean; startReading: () => void; received: () => Buffer | undefined }> {
  let received: Buffer | undefined;
  let reading: (() => void) | undefined;
  const server = http.createServer((req, res) => {
    req.pause();
    reading = () => {
      const parts: Buffer[] = [];
      req.on('data', (d: Buffer) => parts.push(d));
      req.on('end', () => {
        received = Buffer.concat(parts);
        res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ id: 's.0.0' }));
      });
      req.resume();
    };
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = new StorageNodeClient(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}`, { secret: TEST_SECRET, timeoutMs: 10_000 });
  t.teardown(async () => {
    await client.close();
    server.close();
  });
  return { client, requested: () => reading !== undefined, startReading: () => reading!(), received: () => received };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

t.test('the node client holds a pooled frame until a slow node has read it, then it is reused', async (t) => {
  const pool = new BufferPool(64 << 20);
  const size = 32 << 20; // more than the kernel buffers of both ends of a loopback connection
  const node = await slowNode(t);
  const frame = pool.take(size);
  for (let i = 0; i < size; i += 4096) frame.writeUInt32LE(i, i);
  const expected = Buffer.from(frame);
  const channel = new FrameChannel(1 << 20);
  channel.write(frame);
  releaseBuffer(frame); // the writer lets go: the channel, then undici's socket, hold it
  channel.end();
  const put = node.client.putShard('s.0.0', 256 * 1024, channel);
  while (!node.requested()) await sleep(10);
  await sleep(200);
  t.equal(pool.idleSize, 0, 'not reusable while the node has not read it');
  node.startReading();
  await put;
  t.ok(node.received()?.equals(expected), 'the node got the bytes as they were written');
  t.equal(pool.idleSize, size, 'back in the pool once written');
  t.equal(pool.take(size).buffer, frame.buffer, 'and reused');
});

/** A pool that scribbles over every buffer it gets back, as a reuse would: early releases corrupt what is sent. */
class PoisoningPool extends BufferPool {
  override giveBack(buffer: Buffer): void {
    buffer.fill(0xee);
    super.giveBack(buffer);
  }
}

t.test('small pooled frames queued behind a full socket are not let go early (a reuse would corrupt them)', async (t) => {
  const pool = new PoisoningPool(64 << 20);
  const frameBytes = 8 * 1024; // below the socket's high-water mark: undici pulls the next while this one still waits
  const frames = 2048; // 16 MiB: more than the kernel buffers of both ends
  const node = await slowNode(t);
  const channel = new FrameChannel(1 << 20);
  const expected = randomBytes(frameBytes * frames);
  const put = node.client.putShard('s.0.0', 256 * 1024, channel);
  void (async () => {
    while (!node.requested()) await sleep(10);
    await sleep(300); // the socket fills up meanwhile
    node.startReading();
  })();
  for (let i = 0; i < frames; i++) {
    const frame = pool.take(frameBytes);
    expected.copy(frame, 0, i * frameBytes, (i + 1) * frameBytes);
    const full = !channel.write(frame);
    releaseBuffer(frame);
    if (full) await channel.drained();
  }
  channel.end();
  await put;
  t.equal(node.received()?.length, expected.length);
  t.ok(node.received()?.equals(expected), 'every frame arrived as written, none scribbled over by a reuse');
  t.ok(pool.idleSize > 0, 'frames came back to the pool');
});
