// The gateway's small lookup cache alone, with a fake clock and loaders the test resolves by hand:
// TTL (aged from the ask), one fetch for concurrent misses, failures not kept, forget() beating a fetch in flight, the bound.
import t from 'tap';
import { TtlCache } from '../common/ttl-cache.js';

function deferred<V>() {
  let resolve!: (v: V) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<V>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

/** A loader whose fetches the test settles by hand, in `pending` (oldest first). */
function manualLoader() {
  const pending: ReturnType<typeof deferred<string>>[] = [];
  const load = (): Promise<string> => {
    const d = deferred<string>();
    pending.push(d);
    return d.promise;
  };
  return { load, pending };
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
  t.same(cache.stats, { hits: 2, fetches: 2 }, 'counted: the first get fetched, the one at 99 was served and refreshed ahead, the one at 100 got that refresh');
});

t.test('an answer ages from when it was asked for: a slow fetch never stretches the bound on staleness', async (t) => {
  let now = 0;
  const { load, pending } = manualLoader();
  const cache = new TtlCache(load, { ttlMs: 100, now: () => now });
  const first = cache.get('k');
  now = 60; // the namespace took 60 ms to answer: what it said may be 60 ms old already
  pending[0]!.resolve('old');
  t.equal(await first, 'old');
  now = 99;
  t.equal(await cache.get('k'), 'old', 'served until 100 ms after the ask');
  t.equal(pending.length, 2, 'and refreshed ahead (past half the TTL)');
  now = 100;
  const due = cache.get('k');
  t.equal(pending.length, 2, 'at 100 ms after the ask it is due: the caller joins the refresh under way');
  pending[1]!.resolve('new');
  t.equal(await due, 'new', 'not the answer asked for 100 ms ago');
});

t.test('concurrent misses share one fetch; a failed fetch is not kept', async (t) => {
  const { load, pending } = manualLoader();
  const cache = new TtlCache(load);
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
  const { load, pending } = manualLoader();
  const cache = new TtlCache(load);
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

t.test('an entry in use is refreshed ahead, from half its TTL, and never served past it', async (t) => {
  let now = 0;
  const { load, pending } = manualLoader();
  const cache = new TtlCache(load, { ttlMs: 100, now: () => now });
  const first = cache.get('k');
  pending[0]!.resolve('v1');
  t.equal(await first, 'v1');
  now = 49;
  t.equal(await cache.get('k'), 'v1');
  t.equal(pending.length, 1, 'no refresh before half the TTL');
  now = 50;
  t.equal(await cache.get('k'), 'v1', 'from half the TTL the entry is still served at once');
  t.equal(await cache.get('k'), 'v1');
  t.equal(pending.length, 2, 'and one refresh started beside, for all its callers');
  now = 60;
  pending[1]!.resolve('v2');
  await pending[1]!.promise;
  t.equal(await cache.get('k'), 'v2', 'the refreshed answer replaces it');
  now = 110;
  t.equal(await cache.get('k'), 'v2', 'fresh again for a full TTL from its ask (at 50)');
  t.equal(pending.length, 3, '(and refreshed ahead again)');
  pending[2]!.reject(new Error('namespace unreachable'));
  await t.rejects(pending[2]!.promise);
  now = 149;
  t.equal(await cache.get('k'), 'v2', 'a failed refresh leaves the entry until its TTL');
  t.equal(pending.length, 4, 'the next caller past half the TTL tries again');
  pending[3]!.reject(new Error('namespace unreachable'));
  await t.rejects(pending[3]!.promise);
  now = 150;
  const late = cache.get('k');
  t.equal(pending.length, 5, 'past the TTL the caller waits for a fetch');
  pending[4]!.reject(new Error('namespace unreachable'));
  await t.rejects(late, /unreachable/, 'and hears its failure: a stale entry is never served');
});
