// The gateway's small lookup cache alone, with a fake clock and loaders the test resolves by hand:
// TTL, one fetch for concurrent misses, failures not kept, forget() beating a fetch in flight, the bound.
import t from 'tap';
import { TtlCache } from '../common/ttl-cache.js';

function deferred<V>() {
  let resolve!: (v: V) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<V>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

t.test('fresh answers are served from the cache; due ones are fetched again', async (t) => {
  let now = 0;
  let calls = 0;
  const cache = new TtlCache(async (key) => `${key}#${++calls}`, { ttlMs: 100, now: () => now });
  t.equal(await cache.get('a'), 'a#1');
  now = 99;
  t.equal(await cache.get('a'), 'a#1', 'still fresh just before the TTL');
  now = 100;
  t.equal(await cache.get('a'), 'a#2', 'fetched again once due');
  t.equal(calls, 2);
});

t.test('concurrent misses share one fetch; a failed fetch is not kept', async (t) => {
  const pending: ReturnType<typeof deferred<string>>[] = [];
  const cache = new TtlCache((): Promise<string> => {
    const d = deferred<string>();
    pending.push(d);
    return d.promise;
  });
  const first = cache.get('k');
  const second = cache.get('k');
  t.equal(pending.length, 1, 'one fetch for two callers');
  pending[0]!.reject(new Error('unreachable'));
  await t.rejects(first, /unreachable/);
  await t.rejects(second, /unreachable/);
  t.equal(cache.size, 0, 'the failure is not cached');
  const third = cache.get('k');
  t.equal(pending.length, 2, 'the next caller asks again');
  pending[1]!.resolve('v');
  t.equal(await third, 'v');
  t.equal(await cache.get('k'), 'v');
  t.equal(pending.length, 2, 'and its answer is kept');
});

t.test('forget() during a fetch: the stale answer reaches its callers but is not stored', async (t) => {
  const pending: ReturnType<typeof deferred<string>>[] = [];
  const cache = new TtlCache((): Promise<string> => {
    const d = deferred<string>();
    pending.push(d);
    return d.promise;
  });
  const before = cache.get('k');
  cache.forget('k');
  const after = cache.get('k');
  t.equal(pending.length, 2, 'a caller after forget() does not join the old fetch');
  pending[1]!.resolve('new');
  pending[0]!.resolve('old');
  t.equal(await before, 'old');
  t.equal(await after, 'new');
  t.equal(await cache.get('k'), 'new', 'the old fetch, finishing last, did not overwrite the new answer');
  t.equal(pending.length, 2);
  cache.remember('k', 'set here');
  t.equal(await cache.get('k'), 'set here');
});

t.test('at most maxEntries are kept, the least recently fetched dropped first', async (t) => {
  let calls = 0;
  const cache = new TtlCache(async (key) => (calls++, key), { maxEntries: 2 });
  await cache.get('a');
  await cache.get('b');
  await cache.get('c');
  t.equal(cache.size, 2);
  await cache.get('b');
  await cache.get('c');
  t.equal(calls, 3, 'b and c are still cached');
  await cache.get('a');
  t.equal(calls, 4, 'a was dropped');
});
