// The storage node's shard index (storage-node/store.ts ShardIndex over SortedIds): sizes and the
// used-bytes total at once, and listing pages in id order however puts, deletes and re-puts
// interleave with them, checked against a plain sorted model; with enough ids that chunks split
// and empty out.
import t from 'tap';
import { ShardIndex, SortedIds } from '../storage-node/store.js';

/** Every id, a page of `limit` at a time, as a lister would ask for them. */
function pages(index: Pick<ShardIndex, 'after'>, limit: number): string[] {
  const out: string[] = [];
  let after: string | undefined;
  for (;;) {
    const page = index.after(after, limit);
    out.push(...page.ids);
    if (!page.more) return out;
    t.ok(page.ids.length > 0, 'a page that says more is not empty');
    after = page.ids[page.ids.length - 1];
  }
}

t.test('random puts, deletes and re-puts between listings match a sorted model', async (t) => {
  let seed = 42;
  const random = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
  const index = new ShardIndex();
  const model = new Map<string, number>();
  for (let round = 0; round < 200; round++) {
    for (let op = 0; op < 50; op++) {
      const id = `s${random(400).toString(36)}`;
      if (random(3) === 0) {
        index.remove(id);
        model.delete(id);
      } else {
        const size = 1 + random(1000);
        index.set(id, size);
        model.set(id, size);
      }
    }
    const expected = [...model.keys()].sort();
    if (round % 7 === 0) {
      t.same(pages(index, 1 + random(60)), expected, `round ${round}: every id once, in order`);
      t.equal(index.count, model.size);
      t.equal(index.usedBytes, [...model.values()].reduce((a, b) => a + b, 0));
    }
  }
  t.same(pages(index, 1000), [...model.keys()].sort());
});

t.test('listing mid-way: a page after an id that was deleted, and the end after stale ids', async (t) => {
  const index = new ShardIndex();
  index.load([['a', 1], ['b', 2], ['c', 3], ['d', 4]]);
  t.same(index.after(undefined, 2), { ids: ['a', 'b'], more: true });
  index.remove('b');
  index.remove('c');
  index.remove('d');
  t.same(index.after('b', 2), { ids: [], more: false }, 'only deleted ids were left');
  index.set('c', 5);
  index.set('bb', 1);
  t.same(index.after('b', 1), { ids: ['bb'], more: true });
  t.same(index.after('bb', 5), { ids: ['c'], more: false });
  t.equal(index.usedBytes, 1 + 1 + 5);
  t.equal(index.size('c'), 5);
  t.equal(index.size('d'), undefined);
});

t.test('sorted ids across many chunks: random adds and deletes, splits and emptied chunks', async (t) => {
  let seed = 7;
  const random = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
  const ids = new SortedIds();
  const model = new Set<string>();
  const list = (limit: number): string[] => pages(ids, limit);
  for (let i = 0; i < 12_000; i++) {
    const id = `k${random(9000).toString().padStart(5, '0')}`;
    ids.add(id);
    model.add(id);
  }
  t.same(list(777), [...model].sort(), 'after adds in random order (chunks split)');
  // Delete a contiguous run (whole chunks empty out) and scattered ids.
  for (const id of [...model].sort().slice(1000, 4500)) {
    ids.delete(id);
    model.delete(id);
  }
  for (let i = 0; i < 2000; i++) {
    const id = `k${random(9000).toString().padStart(5, '0')}`;
    ids.delete(id);
    model.delete(id);
  }
  ids.delete('absent');
  ids.delete('zzz');
  t.same(list(1000), [...model].sort(), 'after deletes');
  t.same(ids.after('k', 3).ids, [...model].sort().slice(0, 3));
  t.same(ids.after('zzz', 3), { ids: [], more: false });
  ids.load(['a', 'b']);
  t.same(ids.after(undefined, 5), { ids: ['a', 'b'], more: false }, 'load replaces');
});
