// The writer overlaps segments: the next segment is placed and sent while the nodes of the one
// before still finish its shards (their last writes and fsyncs), never more than two at once, and a
// failure in either discards the shards of both.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { MemoryBudget } from '../gateway/data/memory-budget.js';
import { writeObjectData, type WriteOptions, type WriterDeps } from '../gateway/data/writer.js';
import { StripeCodec } from '../erasure/codec.js';

const layout = { k: 4, m: 2, blockSize: 1024 };
const STRIPE = layout.k * layout.blockSize;
const opts: WriteOptions = { layout, segmentSize: 4 * STRIPE, versionId: 'v', writeQuorum: 4, stallTimeoutMs: 5000 };

/**
 * Nodes in memory whose answer for a shard waits until `confirm(segment)`; after `fail(segment)`
 * the nodes of shards 3..5 refuse (a write quorum of 4 is then out of reach) and 0..2 confirm.
 * Records the order of placements and confirmations, and the shards deleted.
 */
function gatedCluster() {
  const events: string[] = [];
  const deleted = new Set<string>();
  const gates = new Map<number, { open: Promise<void>; resolve: () => void; reject: (err: Error) => void }>();
  const gate = (segment: number) => {
    let g = gates.get(segment);
    if (!g) {
      let resolve!: () => void;
      let reject!: (err: Error) => void;
      const open = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
      open.catch(() => undefined);
      gates.set(segment, (g = { open, resolve, reject }));
    }
    return g;
  };
  let placements = 0;
  const nodes = Array.from({ length: 6 }, (_, i) => ({ id: `n${i}`, url: `http://n${i}` }));
  const deps = {
    namespace: { listNodes: async () => nodes },
    directory: { place: async (count: number) => (events.push(`place ${placements++}`), nodes.slice(0, count)) },
    nodes: {
      get: () => ({
        putShard: async (id: string, _blockSize: number, body: AsyncIterable<Uint8Array>) => {
          for await (const _ of body) void _;
          const [, segment, index] = id.split('.').map(Number);
          await gate(segment!).open.catch((err: Error) => {
            if (index! >= 3) throw err;
          });
          return { id };
        },
        deleteShard: async (id: string) => void deleted.add(id),
      }),
    },
    codec: new StripeCodec(layout),
    log: { warn: () => undefined },
    uploadBudget: new MemoryBudget(1 << 20),
  } as unknown as WriterDeps;
  const confirm = (segment: number) => (events.push(`confirm ${segment}`), gate(segment).resolve());
  const fail = (segment: number) => (events.push(`fail ${segment}`), gate(segment).reject(new Error('disk gone')));
  return { deps, events, deleted, confirm, fail };
}

const until = async (what: () => boolean): Promise<void> => {
  for (let i = 0; i < 500 && !what(); i++) await new Promise((resolve) => setTimeout(resolve, 2));
  if (!what()) throw new Error('timed out');
};

t.test('the next segment is placed and sent while the one before waits for its nodes; two at most', async (t) => {
  const c = gatedCluster();
  const body = randomBytes(10 * STRIPE + 7); // segments of 4, 4 and 2 stripes (+7 bytes)
  const writing = writeObjectData((async function* () { yield body; })(), opts, c.deps);
  await until(() => c.events.includes('place 1'));
  await new Promise((resolve) => setTimeout(resolve, 20));
  t.same(c.events, ['place 0', 'place 1'], 'segment 1 placed before segment 0 is confirmed, and segment 2 waits');
  c.confirm(0);
  await until(() => c.events.includes('place 2'));
  c.confirm(1);
  c.confirm(2);
  const written = await writing;
  t.same(written.segments.map((s) => s.size), [4 * STRIPE, 4 * STRIPE, 2 * STRIPE + 7], 'segments in order');
  t.equal(written.size, body.length);
  t.same(written.segments.map((s) => s.placements[0]!.shardId), ['v.0.0', 'v.1.0', 'v.2.0']);
  t.equal(c.deleted.size, 0);
});

t.test('a segment failing while the next one is sent: the write fails and the shards of both are discarded', async (t) => {
  const c = gatedCluster();
  const body = randomBytes(8 * STRIPE);
  const writing = writeObjectData((async function* () { yield body; })(), opts, c.deps);
  await until(() => c.events.includes('place 1'));
  c.confirm(1);
  c.fail(0);
  await t.rejects(writing, { code: 'ServiceUnavailable' });
  await until(() => c.deleted.size === 9);
  const stored = ['v.0.0', 'v.0.1', 'v.0.2', ...Array.from({ length: 6 }, (_, i) => `v.1.${i}`)];
  t.same([...c.deleted].sort(), stored.sort(), 'every shard the nodes stored, of both segments, is deleted');
});
