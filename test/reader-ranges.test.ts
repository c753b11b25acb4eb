// The read path's ranges: a healthy ranged read asks each data shard for exactly the bytes it holds
// of the range (a 4 KiB range moves 4 KiB from its node, not the block around it), and a read that
// loses a data shard on the way reads the window again as whole blocks of k shards and decodes it,
// serving the same bytes. Shards (data and parity, really encoded) are served from memory.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { crc32c } from '@node-rs/crc32';
import { readObjectRange, type ReaderDeps } from '../gateway/data/reader.js';
import { MemoryBudget } from '../gateway/data/memory-budget.js';
import { sharedCodec } from '../erasure/codec.js';
import { encodeStripes } from '../erasure/stream.js';
import type { Layout } from '../erasure/layout.js';
import type { ObjectRecord } from '../namespace/types.js';

const layout: Layout = { k: 4, m: 2, blockSize: 4096 };
const STRIPE = layout.k * layout.blockSize;

interface Fetch {
  shard: string;
  start: number;
  end: number;
}

/** An object of segments of these sizes, encoded for real; shard i of every segment on node n<i>. */
async function fixture(segmentSizes: number[]) {
  const body = randomBytes(segmentSizes.reduce((a, b) => a + b, 0));
  const shards = new Map<string, Buffer>();
  const segments = [];
  let at = 0;
  for (const [seg, size] of segmentSizes.entries()) {
    const bytes = body.subarray(at, at + size);
    at += size;
    const parts: Buffer[][] = Array.from({ length: layout.k + layout.m }, () => []);
    for await (const stripe of encodeStripes(oneChunk(bytes), layout, sharedCodec(layout))) stripe.blocks.forEach((block, i) => parts[i]!.push(Buffer.from(block)));
    parts.forEach((p, i) => shards.set(`s${seg}.${i}`, Buffer.concat(p)));
    segments.push({ size, crc32c: crc32c(bytes) >>> 0, placements: parts.map((_, i) => ({ nodeId: `n${i}`, shardId: `s${seg}.${i}` })) });
  }
  const record = { bucket: 'b', key: 'k', size: body.length, layout, segments } as unknown as ObjectRecord;
  const fetches: Fetch[] = [];
  const failing = new Set<string>();
  const refused = new Set<string>();
  const deps = {
    nodes: {
      get: (url: string) => ({
        readShardChunks: async (id: string, range: { start: number; end: number }) => {
          fetches.push({ shard: id, ...range });
          const node = url.slice('http://'.length);
          if (failing.has(node)) throw Object.assign(new Error(`${node} failed`), { code: 'Unavailable' });
          const shard = shards.get(id)!;
          if (range.end >= shard.length) throw new Error(`range ${range.start}-${range.end} beyond shard ${id} of ${shard.length}`);
          // Two chunks, as a socket would deliver them.
          const mid = range.start + Math.floor((range.end - range.start + 1) / 2);
          return [Buffer.from(shard.subarray(range.start, mid)), Buffer.from(shard.subarray(mid, range.end + 1))];
        },
      }),
    },
    directory: { lookup: async (id: string) => ({ id, url: `http://${id}`, state: 'up' }), isRefused: (id: string) => refused.has(id), noteRefused: () => undefined },
    codec: sharedCodec(layout),
    log: { warn: () => undefined },
    readTimeoutMs: 5000,
    downloadBudget: new MemoryBudget(1 << 30, 30_000, 'download'),
  } as unknown as ReaderDeps;
  const read = async (start: number, end: number): Promise<Buffer> => {
    const out: Buffer[] = [];
    for await (const piece of readObjectRange(record, start, end, deps)) out.push(Buffer.from(piece));
    return Buffer.concat(out);
  };
  return { body, read, fetches, failing, refused };
}

async function* oneChunk(bytes: Buffer): AsyncGenerator<Buffer> {
  yield bytes;
}

/** Ranges that start and end inside blocks, on block and stripe edges, across stripes and segments, and a suffix of the short last stripe. */
function ranges(size: number, segment0: number): [number, number][] {
  const r: [number, number][] = [
    [0, 0],
    [5, 5 + 4095],
    [100, 100 + 1_000_000 > size ? size - 1 : 100 + 1_000_000],
    [layout.blockSize - 1, layout.blockSize],
    [STRIPE - 10, STRIPE + 10],
    [3 * STRIPE + 2 * layout.blockSize + 7, 5 * STRIPE + 11],
    [segment0 - 3000, segment0 + 3000],
    [size - 17, size - 1],
    [0, size - 1],
  ];
  let x = 12345;
  for (let i = 0; i < 30; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    const start = x % size;
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    r.push([start, Math.min(size - 1, start + (x % (3 * STRIPE)))]);
  }
  return r;
}

const SEGMENTS = [40 * STRIPE, 5 * STRIPE + 3 * layout.blockSize + 123];

t.test('a healthy ranged read fetches exactly the bytes of the range from the data shards', async (t) => {
  const { body, read, fetches } = await fixture(SEGMENTS);
  for (const [start, end] of ranges(body.length, SEGMENTS[0]!)) {
    fetches.length = 0;
    const got = await read(start, end);
    t.ok(got.equals(body.subarray(start, end + 1)), `bytes ${start}-${end}`);
    const moved = fetches.reduce((n, f) => n + f.end - f.start + 1, 0);
    t.equal(moved, end - start + 1, `bytes ${start}-${end}: only the range's bytes moved`);
    t.ok(fetches.every((f) => Number(f.shard.split('.')[1]) < layout.k), 'from data shards only');
  }
});

t.test('a data shard that fails during a ranged read: the window is read again as whole blocks of k shards and decoded', async (t) => {
  const { body, read, fetches, failing } = await fixture(SEGMENTS);
  failing.add('n1');
  let decoded = 0;
  for (const [start, end] of ranges(body.length, SEGMENTS[0]!)) {
    fetches.length = 0;
    t.ok((await read(start, end)).equals(body.subarray(start, end + 1)), `bytes ${start}-${end} with shard 1 failing`);
    if (fetches.some((f) => f.shard.endsWith('.1'))) {
      decoded++;
      t.ok(fetches.some((f) => /\.[45]$/.test(f.shard)), 'parity was read to decode');
    }
  }
  t.ok(decoded >= 10, `${decoded} ranges needed shard 1 and were decoded`);
});

t.test('a data shard on a node refused lately: whole blocks of k shards from the start, decoded', async (t) => {
  const { body, read, fetches, refused } = await fixture(SEGMENTS);
  refused.add('n2');
  let decoded = 0;
  for (const [start, end] of ranges(body.length, SEGMENTS[0]!)) {
    fetches.length = 0;
    t.ok((await read(start, end)).equals(body.subarray(start, end + 1)), `bytes ${start}-${end} with node n2 skipped`);
    t.notOk(fetches.some((f) => f.shard.endsWith('.2')), 'n2 is not asked');
    // A range that needs shard 2 reads parity, and every shard of such a window as whole blocks.
    if (fetches.some((f) => /\.[45]$/.test(f.shard))) {
      decoded++;
      t.ok(fetches.every((f) => f.start % layout.blockSize === 0), 'every fetch starts at a block');
    }
  }
  t.ok(decoded >= 10, `${decoded} ranges needed shard 2 and were decoded`);
});
