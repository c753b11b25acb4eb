// All erasure-core tests live in this one file because tap pays a few seconds per file.
import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import {
  type EncodedStripe,
  type Layout,
  CorruptFrameError,
  DEFAULT_LAYOUT,
  ExactReader,
  FrameParser,
  type FrameCheck,
  NotEnoughShardsError,
  ShardSourceError,
  StripeCodec,
  TruncatedFrameError,
  UnexpectedEndError,
  blockCrc,
  blockLengthFor,
  crcBytes,
  decodeStripes,
  encodeStripes,
  rebuildFramed,
  shardDataLength,
  shardFrame,
  shardFramedLength,
  stripeBlockLength,
  stripeCount,
  stripeDataLength,
  stripeDataSize,
  stripesForRange,
  validateLayout,
  verifyFrame,
} from '../erasure/index.js';
import { rsEncode } from '../erasure/native.js';

// ---- helpers ----------------------------------------------------------------------------------

/** Deterministic PRNG (mulberry32) so failures reproduce. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** Cheap non-crypto bytes: a 32-bit xorshift written four bytes at a time. */
function patternBytes(n: number, seed: number): Buffer {
  const out = Buffer.alloc(Math.ceil(n / 4) * 4);
  let x = seed | 1;
  for (let i = 0; i < out.length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeInt32LE(x | 0, i);
  }
  return out.subarray(0, n);
}

/** Yields buf in random-size chunks (sometimes empty, sometimes a single byte). */
async function* chunked(buf: Buffer, rnd: () => number, max = 70_000): AsyncGenerator<Buffer> {
  let at = 0;
  while (at < buf.length) {
    const r = rnd();
    const n = r < 0.05 ? 0 : r < 0.1 ? 1 : Math.floor(rnd() * max) + 1;
    const end = Math.min(buf.length, at + n);
    yield buf.subarray(at, end);
    at = end;
  }
}

async function collect<T>(gen: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of gen) out.push(x);
  return out;
}

/** The rejection reason of p, or undefined when it fulfils. */
const failureOf = (p: Promise<unknown>): Promise<unknown> => p.then(() => undefined, (err: unknown) => err);

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

interface Encoded {
  stripes: EncodedStripe[];
  /** Unframed shard bytes, as a storage node would return them. */
  shards: Buffer[];
  /** Framed shard bytes, as sent to a storage node. */
  framed: Buffer[];
}

async function encodeSegment(data: Buffer, layout: Layout, seed: number, codec?: StripeCodec, maxChunk?: number): Promise<Encoded> {
  const stripes = await collect(encodeStripes(chunked(data, prng(seed), maxChunk), layout, codec));
  const n = layout.k + layout.m;
  const shards = Array.from({ length: n }, (_, i) => Buffer.concat(stripes.map((s) => s.blocks[i]!)));
  const framed = Array.from({ length: n }, (_, i) => Buffer.concat(stripes.flatMap((s) => shardFrame(s, i))));
  return { stripes, shards, framed };
}

function sourcesFor(shards: Buffer[], lost: number[], rnd: () => number): (AsyncIterable<Uint8Array> | null)[] {
  return shards.map((s, i) => (lost.includes(i) ? null : chunked(s, rnd)));
}

async function decodeAll(enc: Encoded, lost: number[], layout: Layout, size: number, seed: number, codec?: StripeCodec): Promise<Buffer> {
  const parts = await collect(decodeStripes(sourcesFor(enc.shards, lost, prng(seed)), layout, size, codec));
  return Buffer.concat(parts);
}

/** Every subset of 0..n-1 with at most `max` members, the empty one included. */
function lossCombos(n: number, max: number): number[][] {
  const out: number[][] = [];
  const walk = (from: number, acc: number[]): void => {
    out.push(acc);
    if (acc.length === max) return;
    for (let i = from; i < n; i++) walk(i + 1, [...acc, i]);
  };
  walk(0, []);
  return out;
}

/** An async iterable of one chunk that records how it was pulled, whether it ran to its end, whether it was closed. */
function tracked(buf: Buffer): { source: AsyncIterable<Uint8Array>; state: { pulls: number; closed: boolean; finished: boolean } } {
  const state = { pulls: 0, closed: false, finished: false };
  let given = false;
  const iterator: AsyncIterator<Uint8Array> = {
    next: async () => {
      state.pulls++;
      if (given) {
        state.finished = true;
        return { done: true, value: undefined };
      }
      given = true;
      return { done: false, value: buf };
    },
    return: async () => {
      state.closed = true;
      return { done: true, value: undefined };
    },
  };
  return { source: { [Symbol.asyncIterator]: () => iterator }, state };
}

class CountingCodec extends StripeCodec {
  calls = 0;
  override recover(data: Buffer, parity: Buffer, len: number, targets: number[], sources: number[]): Promise<void> {
    this.calls++;
    return super.recover(data, parity, len, targets, sources);
  }
}

const B = DEFAULT_LAYOUT.blockSize;
const S = stripeDataSize(DEFAULT_LAYOUT);

// ---- geometry ---------------------------------------------------------------------------------

t.test('geometry', async (t) => {
  const L = DEFAULT_LAYOUT;
  t.equal(S, 1024 * 1024);
  t.same([0, 1, S, S + 1, 3 * S].map((n) => stripeCount(L, n)), [0, 1, 1, 2, 3]);
  t.equal(stripeDataLength(L, S + 1, 0), S);
  t.equal(stripeDataLength(L, S + 1, 1), 1);
  t.same([1, 8, 32, 33, S - 1, S, 5 * S].map((n) => blockLengthFor(L, n)), [8, 8, 8, 16, B, B, B]);
  t.equal(stripeBlockLength(L, S + 100, 1), 32); // ceil(100/4) = 25 -> 32
  t.equal(shardDataLength(L, 0), 0);
  t.equal(shardFramedLength(L, 0), 0);
  t.equal(shardDataLength(L, S + 1), B + 8);
  t.equal(shardFramedLength(L, S + 1), B + 8 + 8);
  t.same(stripesForRange(L, 0, S - 1), { first: 0, last: 0 });
  t.same(stripesForRange(L, S - 1, S), { first: 0, last: 1 });
  for (const bad of [{ k: 0, m: 2, blockSize: 8 }, { k: 4, m: 7, blockSize: 8 }, { k: 4, m: 2, blockSize: 12 }, { k: 25, m: 1, blockSize: 8 }]) {
    t.throws(() => validateLayout(bad), RangeError, JSON.stringify(bad));
  }
  const rnd = prng(1);
  for (const layout of [L, { k: 3, m: 3, blockSize: 64 }, { k: 6, m: 3, blockSize: 4096 }]) {
    for (let trial = 0; trial < 200; trial++) {
      const size = Math.floor(rnd() * 5 * stripeDataSize(layout));
      const count = stripeCount(layout, size);
      let total = 0;
      let shard = 0;
      for (let s = 0; s < count; s++) {
        const data = stripeDataLength(layout, size, s);
        const len = stripeBlockLength(layout, size, s);
        if (len % 8 !== 0 || len * layout.k < data || len > layout.blockSize || (len > 8 && (len - 8) * layout.k >= data)) {
          t.fail(`bad block length ${len} for ${data} bytes in ${JSON.stringify(layout)}`);
        }
        total += data;
        shard += len;
      }
      if (total !== size || shard !== shardDataLength(layout, size)) t.fail(`sizes do not add up for ${size}`);
    }
  }
});

// ---- native addon and codec -------------------------------------------------------------------

t.test('the addon is never handed an empty buffer', async (t) => {
  const codec = new StripeCodec(DEFAULT_LAYOUT);
  await t.rejects(codec.encode(Buffer.alloc(0), Buffer.alloc(0), 0), RangeError);
  await t.rejects(codec.encode(Buffer.alloc(32), Buffer.alloc(16), 0), RangeError);
  await t.rejects(codec.encode(Buffer.alloc(16), Buffer.alloc(8), 4), RangeError, 'len % 8');
  await t.rejects(codec.encode(Buffer.alloc(32), Buffer.alloc(8), 8), RangeError, 'parity too short');
  await t.rejects(codec.reconstruct(Buffer.alloc(32), Buffer.alloc(16), 8, [0, 1, 2]), RangeError, 'more than m');
  await t.rejects(codec.reconstruct(Buffer.alloc(32), Buffer.alloc(16), 8, []), RangeError, 'nothing to do');
  await t.rejects(codec.reconstruct(Buffer.alloc(32), Buffer.alloc(16), 8, [6]), RangeError, 'index out of range');
  const ctx = Buffer.alloc(0);
  const call = { context: ctx, sources: 15, targets: 48, buffer: Buffer.alloc(32), bufferOffset: 0, bufferSize: 32, parity: Buffer.alloc(16), parityOffset: 0, paritySize: 16 };
  t.throws(() => rsEncode(call), RangeError, 'empty context');
  t.throws(() => rsEncode({ ...call, context: Buffer.alloc(8), buffer: Buffer.alloc(0), bufferSize: 0 }), RangeError, 'empty buffer');
  t.throws(() => rsEncode({ ...call, context: Buffer.alloc(8), parity: Buffer.alloc(0), paritySize: 0 }), RangeError, 'empty parity');
  t.throws(() => rsEncode({ ...call, context: Buffer.alloc(8), bufferOffset: 8 }), RangeError, 'region past the end');
  t.same(await collect(encodeStripes(chunked(Buffer.alloc(0), prng(2)), DEFAULT_LAYOUT)), [], 'a 0-byte segment has no stripes');
  t.same(await collect(encodeStripes((async function* () { yield new Uint8Array(0); })(), DEFAULT_LAYOUT)), []);
  t.throws(() => new StripeCodec({ k: 4, m: 0, blockSize: 8 }), RangeError);
});

t.test('codec honours subarrays and repairs every loss pattern in place', async (t) => {
  const layout = { k: 4, m: 2, blockSize: 1024 };
  const codec = new StripeCodec(layout);
  const len = 1024;
  const data = patternBytes(4 * len, 7);
  const parity = Buffer.alloc(2 * len);
  await codec.encode(data, parity, len);
  t.notOk(parity.equals(Buffer.alloc(2 * len)), 'parity was written');

  // The same stripe placed in the middle of larger buffers: the addon must use the views' offsets.
  const bigData = Buffer.alloc(4 * len + 100, 0xee);
  const bigParity = Buffer.alloc(2 * len + 200, 0xee);
  data.copy(bigData, 40);
  const subData = bigData.subarray(40, 40 + 4 * len);
  const subParity = bigParity.subarray(120, 120 + 2 * len);
  await codec.encode(subData, subParity, len);
  t.ok(subParity.equals(parity), 'parity of a subarray matches');
  t.ok(bigParity.subarray(0, 120).every((b) => b === 0xee) && bigParity.subarray(120 + 2 * len).every((b) => b === 0xee), 'bytes around the view untouched');

  const whole = Buffer.concat([data, parity]);
  for (const missing of lossCombos(6, 2).filter((c) => c.length > 0)) {
    const d = Buffer.from(data);
    const p = Buffer.from(parity);
    for (const i of missing) (i < 4 ? d : p).fill(0xa5, (i % 4) * len, (i % 4 + 1) * len);
    await codec.reconstruct(d, p, len, missing);
    if (!Buffer.concat([d, p]).equals(whole)) t.fail(`reconstruct ${missing.join(',')}`);
  }

  const runs = await Promise.all(Array.from({ length: 8 }, async (_, i) => {
    const d = patternBytes(4 * len, 100 + i);
    const p = Buffer.alloc(2 * len);
    const again = Buffer.alloc(2 * len);
    await codec.encode(d, p, len);
    await new StripeCodec(layout).encode(d, again, len);
    return p.equals(again);
  }));
  t.same(runs, Array(8).fill(true), 'concurrent calls sharing a context agree');
});

// ---- exact reader -----------------------------------------------------------------------------

t.test('ExactReader', async (t) => {
  const data = patternBytes(100_000, 3);
  for (let seed = 0; seed < 5; seed++) {
    const r = new ExactReader(chunked(data, prng(seed), 5000));
    const a = await r.read(10);
    const b = Buffer.alloc(30_000);
    await r.readInto(b, 0, 30_000);
    await r.discard(5);
    const c = await r.read(data.length - 30_015);
    t.equal(r.bytesRead, data.length);
    t.ok(await r.atEnd());
    t.ok(Buffer.concat([a, b, data.subarray(30_010, 30_015), c]).equals(data), `seed ${seed}`);
    t.equal(await r.readSome(10), undefined);
  }
  const short = new ExactReader(chunked(data.subarray(0, 50), prng(1)));
  await t.rejects(short.read(60), UnexpectedEndError);
  const closer = tracked(data);
  const r = new ExactReader(closer.source);
  t.equal((await r.read(4)).length, 4);
  await r.close();
  t.ok(closer.state.closed, 'close() releases the source');
});

// ---- frames -----------------------------------------------------------------------------------

t.test('frames: parsing over random chunkings, corruption and truncation', async (t) => {
  const layout = { k: 3, m: 2, blockSize: 64 };
  const size = 3 * 64 * 5 + 77; // 5 full stripes and a short one
  const enc = await encodeSegment(patternBytes(size, 11), layout, 5);
  const blocks = stripeCount(layout, size);
  t.equal(enc.framed[0]!.length, shardFramedLength(layout, size));

  const parse = (framed: Buffer, rnd: () => number): Buffer[] => {
    const parser = new FrameParser(layout.blockSize);
    const out: Buffer[] = [];
    const frameSize = layout.blockSize + 4;
    // The parser reports lengths and CRCs only: the block is where its frame starts in the input.
    const blockOf = (f: FrameCheck): Buffer => {
      if (f.index !== out.length) throw new Error(`frame ${f.index} reported out of order`);
      const data = framed.subarray(f.index * frameSize, f.index * frameSize + f.dataLength);
      if (blockCrc(data) !== f.crc) throw new Error(`frame ${f.index}: reported CRC is not the block's`);
      return data;
    };
    let at = 0;
    while (at < framed.length) {
      const n = Math.min(framed.length - at, Math.floor(rnd() * 150));
      for (const f of parser.push(framed.subarray(at, at + n))) out.push(blockOf(f));
      at += n;
    }
    for (const f of parser.end()) out.push(blockOf(f));
    if (out.length !== blocks) throw new Error(`expected ${blocks} blocks, parsed ${out.length}`);
    return out;
  };

  for (let shard = 0; shard < 5; shard++) {
    for (let seed = 0; seed < 10; seed++) {
      const got = Buffer.concat(parse(enc.framed[shard]!, prng(seed * 7 + shard)));
      if (!got.equals(enc.shards[shard]!)) t.fail(`shard ${shard} seed ${seed}`);
    }
  }

  // Flip one bit in every byte position of a shard (data and CRC bytes alike): always caught, at the right block.
  const framed = enc.framed[4]!;
  const frameSize = layout.blockSize + 4;
  let caught = 0;
  for (let pos = 0; pos < framed.length; pos++) {
    const bad = Buffer.from(framed);
    bad[pos]! ^= 1 << pos % 8;
    try {
      parse(bad, prng(pos));
    } catch (err) {
      if (err instanceof CorruptFrameError && err.blockIndex === Math.floor(pos / frameSize)) caught++;
      else t.fail(`bit flip at ${pos} gave ${String(err)}`);
    }
  }
  t.equal(caught, framed.length, 'every flipped bit detected with its block index');

  // Cut the stream anywhere: an error, or a block count that betrays it.
  let detected = 0;
  for (let cut = 0; cut < framed.length; cut++) {
    try {
      parse(framed.subarray(0, cut), prng(cut));
    } catch (err) {
      if (err instanceof CorruptFrameError || err instanceof TruncatedFrameError || (err instanceof Error && /expected/.test(err.message))) detected++;
    }
  }
  t.equal(detected, framed.length, 'every truncation detected');
  t.throws(() => verifyFrame(Buffer.alloc(3), 0), TruncatedFrameError);
  const block = patternBytes(64, 9);
  t.equal(verifyFrame(Buffer.concat([block, crcBytes(blockCrc(block))]), 2).index, 2);
  t.equal(blockCrc(Buffer.from('123456789')), 0xe3069283, 'CRC32C check value');
});

// ---- encode / decode round trips ------------------------------------------------------------

async function roundTrip(t: Test, layout: Layout, sizes: number[], maxLost: number, seed: number, maxChunk?: number): Promise<void> {
  const n = layout.k + layout.m;
  const combos = lossCombos(n, maxLost);
  const codec = new StripeCodec(layout);
  for (const size of sizes) {
    const data = patternBytes(size, seed + size);
    const enc = await encodeSegment(data, layout, seed + size, codec, maxChunk);
    const count = stripeCount(layout, size);
    let ok = enc.stripes.length === count && enc.shards.every((s) => s.length === shardDataLength(layout, size));
    ok &&= enc.framed.every((f) => f.length === shardFramedLength(layout, size));
    for (const s of enc.stripes) {
      const len = stripeBlockLength(layout, size, s.index);
      ok &&= s.blockLength === len && s.dataLength === stripeDataLength(layout, size, s.index);
      ok &&= s.blocks.length === n && s.blocks.every((b, i) => b.length === len && blockCrc(b) === s.crcs[i]);
      const start = s.index * stripeDataSize(layout);
      const expected = Buffer.alloc(layout.k * len);
      data.copy(expected, 0, start, start + s.dataLength);
      ok &&= Buffer.concat(s.blocks.slice(0, layout.k)).equals(expected);
    }
    t.ok(ok, `${JSON.stringify(layout)} size ${size}: ${count} stripes, geometry, CRCs and zero padding`);
    const want = sha(data);
    const failed: string[] = [];
    for (const lost of combos) {
      const out = await decodeAll(enc, lost, layout, size, seed + lost.length, codec);
      if (out.length !== size || sha(out) !== want) failed.push(lost.join(',') || 'none');
    }
    t.same(failed, [], `size ${size}: decoded with each of ${combos.length} loss patterns`);
  }
}

t.test('round trip, default layout, every loss pattern up to m', async (t) => {
  const sizes = [0, 1, 7, 8, 9, B - 1, B, B + 1, 2 * B + 1, 3 * B - 1, S - 1, S, S + 1, 3 * S + 12_345];
  await roundTrip(t, DEFAULT_LAYOUT, sizes, 2, 1);
});

t.test('round trip, default layout, large source chunks (the first stripe grows from 64 KiB)', async (t) => {
  // Chunks up to 2 MiB: a stripe often arrives in one piece, larger or smaller than its first
  // allocation, and a tail can end a few bytes short of its padded length.
  const sizes = [65_535, 65_536, 65_537, 100_001, B + 3, S - 1, S, S + 1, 2 * S + 5];
  await roundTrip(t, DEFAULT_LAYOUT, sizes, 2, 7, 2 * S);
});

t.test('a declared size sizes the first stripe buffer; the bytes are the same whatever it says', async (t) => {
  /** The shards' digests, and the sizes of the buffers of 64 KiB or more the encoder made (negative: allocUnsafe, not the pool). */
  const run = async (data: Buffer, expectedBytes?: number): Promise<{ shards: string[]; made: number[] }> => {
    const made: number[] = [];
    const buffers = { take: (size: number) => (made.push(size), Buffer.allocUnsafe(size)), release: () => undefined };
    const allocUnsafe = Buffer.allocUnsafe;
    // Watched only while the encoder runs: how else to see a buffer it grows and drops?
    Buffer.allocUnsafe = ((size: number) => (size >= 64 * 1024 && made.push(-size), allocUnsafe(size))) as typeof Buffer.allocUnsafe;
    let stripes: EncodedStripe[];
    try {
      stripes = await collect(encodeStripes(chunked(data, prng(3), 4096), DEFAULT_LAYOUT, undefined, { buffers, ...(expectedBytes === undefined ? {} : { expectedBytes }) }));
    } finally {
      Buffer.allocUnsafe = allocUnsafe;
    }
    return { made, shards: Array.from({ length: 6 }, (_, i) => sha(Buffer.concat(stripes.map((st) => st.blocks[i]!)))) };
  };
  const data = patternBytes(2 * S + 12_345, 9);
  const unhinted = await run(data);
  t.same(unhinted.made.slice(0, 3), [-64 * 1024, -256 * 1024, S], 'without a declared size, the first stripe grows 64 KiB → 256 KiB → a full buffer');
  const hinted = await run(data, 8 * 1024 * 1024);
  t.equal(hinted.made[0], S, 'with 8 MiB declared it takes a full buffer at once');
  t.notOk(hinted.made.some((n) => n === -64 * 1024 || n === -256 * 1024), 'and grows through nothing');
  t.same(hinted.shards, unhinted.shards, 'the same shards with and without the hint');
  const mid = await run(patternBytes(300_000, 2), 300_000);
  t.same(mid.made.slice(0, 1), [-300_000], 'a 300,000-byte body gets a buffer of its size, not 64 KiB grown twice');
  // A client that declares more than it sends (or less) still gets exactly what it sent encoded.
  const short = patternBytes(100, 6);
  t.same((await run(short, 8 * 1024 * 1024)).shards, (await run(short)).shards, 'a declared size larger than the body changes nothing');
  t.same((await run(data, 10)).shards, unhinted.shards, 'nor one smaller');
});

t.test('round trip, k=3 m=3 with 64-byte blocks', async (t) => {
  await roundTrip(t, { k: 3, m: 3, blockSize: 64 }, [0, 1, 23, 24, 25, 63, 64, 65, 191, 192, 193, 1000, 5000], 3, 2);
});

t.test('round trip, k=6 m=3 with 4 KiB blocks', async (t) => {
  const S6 = 6 * 4096;
  await roundTrip(t, { k: 6, m: 3, blockSize: 4096 }, [1, 4095, 4097, S6 - 1, S6 + 1, 3 * S6 + 999], 3, 3);
});

t.test('decode reads only the data shards when they are all present', async (t) => {
  const size = 2 * S + 999;
  const data = patternBytes(size, 21);
  const enc = await encodeSegment(data, DEFAULT_LAYOUT, 21);
  const counting = new CountingCodec(DEFAULT_LAYOUT);
  const all = enc.shards.map((s) => tracked(s));
  const out = Buffer.concat(await collect(decodeStripes(all.map((x) => x.source), DEFAULT_LAYOUT, size, counting)));
  t.ok(out.equals(data));
  t.equal(counting.calls, 0, 'no Reed-Solomon call');
  t.same(all.map((x) => x.state.pulls > 0), [true, true, true, true, false, false], 'parity never pulled');
  t.same(all.map((x) => x.state.finished || x.state.closed), Array(6).fill(true), 'every source read to its end or closed');

  counting.calls = 0;
  const out2 = await decodeAll(enc, [1], DEFAULT_LAYOUT, size, 3, counting);
  t.ok(out2.equals(data));
  t.equal(counting.calls, 3, 'one RS call per stripe when a data shard is lost');
});

t.test('decode failures', async (t) => {
  const layout = { k: 4, m: 2, blockSize: 64 };
  const size = 1000;
  const enc = await encodeSegment(patternBytes(size, 31), layout, 31);
  for (const lost of lossCombos(6, 3).filter((c) => c.length === 3)) {
    const given = enc.shards.map((s, i) => (lost.includes(i) ? null : tracked(s)));
    await t.rejects(collect(decodeStripes(given.map((g) => g?.source ?? null), layout, size)), NotEnoughShardsError, `lost ${lost.join(',')}`);
    if (!given.every((g) => g === null || (g.state.closed && g.state.pulls === 0))) t.fail('sources left open after refusing');
  }
  await t.rejects(collect(rebuildFramed(openFrom(enc.shards, prng(1)), [3, 4, 5], [0, 1], layout, size, new StripeCodec(layout))), RangeError, 'a rebuild reads exactly k shards');

  const short = enc.shards.map((s, i) => (i === 2 ? s.subarray(0, s.length - 1) : s));
  const shortErr = await failureOf(collect(decodeStripes(short.map((s) => chunked(s, prng(4))), layout, size)));
  t.ok(shortErr instanceof ShardSourceError && shortErr.shardIndex === 2 && shortErr.cause instanceof UnexpectedEndError, 'a source that ends early is named');
  const long = enc.shards.map((s, i) => (i === 3 ? Buffer.concat([s, Buffer.alloc(8)]) : s));
  const longErr = await failureOf(collect(decodeStripes(long.map((s) => chunked(s, prng(5))), layout, size)));
  t.ok(longErr instanceof ShardSourceError && longErr.shardIndex === 3, 'a source that runs long is named');
  const failing = async function* (): AsyncGenerator<Buffer> {
    yield enc.shards[0]!.subarray(0, 10);
    throw new Error('connection reset');
  };
  const failErr = await failureOf(collect(decodeStripes([failing(), ...enc.shards.slice(1).map((s) => chunked(s, prng(6)))], layout, size)));
  t.ok(failErr instanceof ShardSourceError && failErr.shardIndex === 0 && /connection reset/.test(failErr.message), 'a failing source is named');
  await t.rejects(collect(decodeStripes(enc.shards.map((s) => chunked(s, prng(1))), layout, size, new StripeCodec({ k: 3, m: 3, blockSize: 64 }))), RangeError, 'codec for another layout');
  await t.rejects(collect(decodeStripes(enc.shards.slice(1).map((s) => chunked(s, prng(1))), layout, size)), RangeError, 'wrong number of sources');

  // A consumer that stops early releases every source.
  const given = enc.shards.map((s) => tracked(s));
  for await (const part of decodeStripes(given.map((g) => g.source), layout, size)) {
    t.ok(part.length > 0);
    break;
  }
  t.ok(given.every((g) => g.state.closed || g.state.finished), 'early exit closes the sources');
});

t.test('decode a span of stripes', async (t) => {
  const layout = { k: 4, m: 2, blockSize: 64 };
  const size = 256 * 10 + 100;
  const data = patternBytes(size, 41);
  const enc = await encodeSegment(data, layout, 41);
  for (const [first, last] of [[0, 0], [3, 5], [9, 10], [10, 10]] as const) {
    const from = first * 64;
    const to = from + (last - first) * 64 + stripeBlockLength(layout, size, last);
    const parts = enc.shards.map((s, i) => (i === 1 ? null : chunked(s.subarray(from, to), prng(first))));
    const out = Buffer.concat(await collect(decodeStripes(parts, layout, size, undefined, { first, last })));
    t.ok(out.equals(data.subarray(first * 256, Math.min(size, (last + 1) * 256))), `stripes ${first}..${last}`);
  }
  await t.rejects(collect(decodeStripes(enc.shards.map(() => null), layout, size, undefined, { first: 0, last: 11 })), RangeError);
});

t.test('rebuildFramed recreates lost shards, each block framed with its CRC', async (t) => {
  for (const [layout, size] of [[DEFAULT_LAYOUT, S + B + 13], [{ k: 6, m: 3, blockSize: 4096 }, 6 * 4096 * 2 + 5]] as const) {
    const enc = await encodeSegment(patternBytes(size, 51), layout, 51);
    const codec = new StripeCodec(layout);
    const failed: string[] = [];
    for (const lost of lossCombos(layout.k + layout.m, layout.m).filter((c) => c.length > 0)) {
      const sources = [...Array(layout.k + layout.m).keys()].filter((i) => !lost.includes(i)).slice(0, layout.k);
      const rebuilt = await collect(rebuildFramed(openFrom(enc.shards, prng(lost.length)), sources, lost, layout, size, codec));
      const good = rebuilt.length === enc.stripes.length && rebuilt.every((r, s) =>
        r.stripe === s && lost.every((shard, j) => r.frames[j]!.equals(Buffer.concat([enc.stripes[s]!.blocks[shard]!, crcBytes(enc.stripes[s]!.crcs[shard]!)]))));
      if (!good) failed.push(lost.join(','));
    }
    t.same(failed, [], `k=${layout.k} m=${layout.m}: every loss pattern rebuilt`);
  }
  const small = { k: 4, m: 2, blockSize: 64 };
  const enc = await encodeSegment(patternBytes(500, 1), small, 1);
  const codec = new StripeCodec(small);
  await t.rejects(collect(rebuildFramed(openFrom(enc.shards, prng(1)), [1, 2, 3, 4], [0, 0], small, 500, codec)), RangeError);
  await t.rejects(collect(rebuildFramed(openFrom(enc.shards, prng(1)), [1, 2, 3, 4], [6], small, 500, codec)), RangeError);
  // A wanted shard is never read: it is recomputed, not copied (a corrupt copy could not leak through).
  await t.rejects(collect(rebuildFramed(openFrom(enc.shards, prng(1)), [1, 2, 3, 5], [5], small, 500, codec)), RangeError);
});

/** Opens shard i of `shards` as a stream of awkward chunks. */
function openFrom(shards: Buffer[], rnd: () => number): (index: number) => Promise<AsyncIterable<Uint8Array>> {
  return async (index) => chunked(shards[index]!, rnd);
}

// ---- memory and speed ---------------------------------------------------------------------------

t.test('encoding 256 MiB keeps memory flat', async (t) => {
  const total = 256 * 1024 * 1024;
  const chunk = 64 * 1024;
  const pattern = patternBytes(2 * 1024 * 1024, 99);
  async function* source(): AsyncGenerator<Buffer> {
    for (let at = 0; at < total; at += chunk) {
      const off = (at * 7) % (pattern.length - chunk);
      yield pattern.subarray(off, off + chunk);
    }
  }
  const codec = new StripeCodec(DEFAULT_LAYOUT);
  // Warm up so lazily created pools and code do not count as growth.
  await collect(encodeStripes(chunked(patternBytes(4 * S, 1), prng(1)), DEFAULT_LAYOUT, codec));
  const base = process.memoryUsage().rss;
  let peak = base;
  let bytes = 0;
  let stripes = 0;
  const started = process.hrtime.bigint();
  for await (const stripe of encodeStripes(source(), DEFAULT_LAYOUT, codec)) {
    bytes += stripe.dataLength;
    stripes++;
    if (shardFrame(stripe, 5)[1]!.length !== 4) t.fail('frame');
    if (stripes % 8 === 0) peak = Math.max(peak, process.memoryUsage().rss);
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const growth = (peak - base) / 2 ** 20;
  t.equal(bytes, total);
  t.equal(stripes, 256);
  t.ok(growth < 64, `RSS grew ${growth.toFixed(1)} MiB (limit 64)`);
  t.ok(seconds < 10, `encoded 256 MiB in ${seconds.toFixed(2)} s (${(total / 1e6 / seconds).toFixed(0)} MB/s)`);
});
