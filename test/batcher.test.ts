// The request batcher (common/batcher.ts), driven by a fake send whose answers the test releases:
// a quiet caller's item goes out alone at once (or at the end of its event loop turn, with the items
// of that turn, under gatherTurn); items beyond maxInFlight wait and go together,
// in order, at most maxBatch per request; every item gets its own outcome; a failed request fails
// only the items it carried.
import t from 'tap';
import { Batcher, sumBatcherStats, type Outcome } from '../common/batcher.js';

/** A send that records its batches and answers each only when the test says so. */
function controlledSend(): { send: (items: number[]) => Promise<Outcome<string>[]>; sent: number[][]; answer: (i: number, how?: 'ok' | 'fail' | 'short') => void } {
  const sent: number[][] = [];
  const pending: { resolve: (o: Outcome<string>[]) => void; reject: (e: Error) => void }[] = [];
  return {
    sent,
    send: (items) => {
      sent.push(items);
      return new Promise((resolve, reject) => pending.push({ resolve, reject }));
    },
    answer: (i, how = 'ok') => {
      const items = sent[i]!;
      if (how === 'fail') pending[i]!.reject(new Error(`request ${i} failed`));
      else if (how === 'short') pending[i]!.resolve([]);
      else pending[i]!.resolve(items.map((n) => (n % 10 === 7 ? { ok: false, error: new Error(`item ${n} refused`) } : { ok: true, value: `done ${n}` })));
    },
  };
}

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

t.test('a quiet caller: each item goes out alone, at once', async (t) => {
  const c = controlledSend();
  const batcher = new Batcher(c.send, { maxInFlight: 2, maxBatch: 8 });
  const first = batcher.submit(1);
  t.same(c.sent, [[1]], 'sent without waiting');
  c.answer(0);
  t.equal(await first, 'done 1');
  const second = batcher.submit(2);
  t.same(c.sent, [[1], [2]]);
  c.answer(1);
  t.equal(await second, 'done 2');
  t.match(batcher.stats, { requests: 2, items: 2 });
});

t.test('a busy caller: items wait for a request to come back, then go together, in order, at most maxBatch', async (t) => {
  const c = controlledSend();
  const batcher = new Batcher(c.send, { maxInFlight: 2, maxBatch: 4 });
  const results = Array.from({ length: 12 }, (_, n) => batcher.submit(n).then((v) => v, (e: Error) => `error: ${e.message}`));
  t.same(c.sent, [[0], [1]], 'two out, the rest wait');
  c.answer(0);
  await settle();
  t.same(c.sent.at(-1), [2, 3, 4, 5], 'the waiting items leave together, up to maxBatch');
  c.answer(1);
  await settle();
  t.same(c.sent.at(-1), [6, 7, 8, 9]);
  c.answer(2, 'fail');
  await settle();
  t.same(c.sent.at(-1), [10, 11], 'what is left');
  c.answer(3);
  c.answer(4, 'short');
  await settle();
  const out = await Promise.all(results);
  t.same(out.slice(0, 2), ['done 0', 'done 1']);
  t.same(out.slice(2, 6), ['error: request 2 failed', 'error: request 2 failed', 'error: request 2 failed', 'error: request 2 failed'], 'a failed request fails only its own items');
  t.same(out.slice(6, 10), ['done 6', 'error: item 7 refused', 'done 8', 'done 9'], 'each item has its own outcome');
  t.match(out.slice(10), [/error: a batch of 2 got 0 outcomes back/, /error: a batch of 2 got 0 outcomes back/], 'a wrong number of outcomes fails the batch');
  t.match(batcher.stats, { requests: 5, items: 12 });
});

t.test('stats time what items waited for a request and what requests took, failed ones too', async (t) => {
  const c = controlledSend();
  const batcher = new Batcher(c.send, { maxInFlight: 1, maxBatch: 8 });
  const first = batcher.submit(1);
  const second = batcher.submit(2).catch((e: Error) => e.message);
  t.ok(batcher.stats.queuedSeconds < 0.005, 'an item sent at once waited for next to nothing');
  await sleep(30);
  c.answer(0);
  await first;
  await settle();
  t.ok(batcher.stats.queuedSeconds >= 0.025, `the second item waited for the first request (${batcher.stats.queuedSeconds.toFixed(3)} s)`);
  t.ok(batcher.stats.requestSeconds >= 0.025, `the first request's time (${batcher.stats.requestSeconds.toFixed(3)} s)`);
  const before = batcher.stats.requestSeconds;
  await sleep(20);
  c.answer(1, 'fail');
  t.equal(await second, 'request 1 failed');
  t.ok(batcher.stats.requestSeconds - before >= 0.015, 'a failed request counts its time too');
  t.match(batcher.stats, { requests: 2, items: 2 });
});

t.test('sumBatcherStats adds stats up', async (t) => {
  t.same(sumBatcherStats([]), { requests: 0, items: 0, queuedSeconds: 0, requestSeconds: 0 });
  t.same(sumBatcherStats([{ requests: 1, items: 3, queuedSeconds: 0.5, requestSeconds: 1 }, { requests: 2, items: 2, queuedSeconds: 0.25, requestSeconds: 2 }]), { requests: 3, items: 5, queuedSeconds: 0.75, requestSeconds: 3 });
});

t.test('gatherTurn: the items of one event loop turn leave together, even with room to send each alone', async (t) => {
  const c = controlledSend();
  const batcher = new Batcher(c.send, { maxInFlight: 4, maxBatch: 8, gatherTurn: true });
  const sameTurn = [1, 2, 3].map((n) => batcher.submit(n));
  t.same(c.sent, [], 'nothing leaves before the turn ends');
  await settle();
  t.same(c.sent, [[1, 2, 3]], 'one request for the turn');
  const later = batcher.submit(4);
  await settle();
  t.same(c.sent, [[1, 2, 3], [4]], 'a lone item of a later turn goes alone, without waiting for the first');
  c.answer(0);
  c.answer(1);
  t.same(await Promise.all([...sameTurn, later]), ['done 1', 'done 2', 'done 3', 'done 4']);
  const full = new Batcher(c.send, { maxInFlight: 1, maxBatch: 8, gatherTurn: true });
  const first = full.submit(5);
  await settle();
  const waiting = [6, 8].map((n) => full.submit(n));
  await settle();
  t.same(c.sent.slice(2), [[5]], 'with no room, items wait for an answer as without gatherTurn');
  c.answer(2);
  await settle();
  t.same(c.sent.slice(2), [[5], [6, 8]]);
  c.answer(3);
  t.same(await Promise.all([first, ...waiting]), ['done 5', 'done 6', 'done 8']);
});

t.test('limits must be at least 1', async (t) => {
  const c = controlledSend();
  t.throws(() => new Batcher(c.send, { maxInFlight: 0, maxBatch: 4 }), RangeError);
  t.throws(() => new Batcher(c.send, { maxInFlight: 1, maxBatch: 0 }), RangeError);
});

t.test('a weight limit: a batch carries items while their weights fit; a heavy item goes alone', async (t) => {
  const c = controlledSend();
  // Item n weighs n: with a limit of 10, [1, 2, 3, 4] fits (10), 5 starts the next batch, 20 goes alone.
  const batcher = new Batcher(c.send, { maxInFlight: 1, maxBatch: 8, maxBatchWeight: 10, weigh: (n: number) => n });
  const all = [9, 1, 2, 3, 4, 5, 20, 6].map((n) => batcher.submit(n));
  t.same(c.sent, [[9]], 'the first goes at once');
  for (let i = 0; i < 3; i++) {
    c.answer(i);
    await settle();
  }
  t.same(c.sent, [[9], [1, 2, 3, 4], [5], [20]], 'split by weight, in order');
  c.answer(3);
  await settle();
  t.same(c.sent[4], [6]);
  c.answer(4);
  t.same(await Promise.all(all), [9, 1, 2, 3, 4, 5, 20, 6].map((n) => `done ${n}`));
});

t.test('an item given up by its signal rejects at once: never sent if it waited; its batch unharmed if sent', async (t) => {
  const c = controlledSend();
  const batcher = new Batcher(c.send, { maxInFlight: 1, maxBatch: 8 });
  const sentAlone = new AbortController();
  const first = batcher.submit(1, sentAlone.signal);
  const withdrawn = new AbortController();
  const second = batcher.submit(2, withdrawn.signal);
  const third = batcher.submit(3);
  t.equal(batcher.queued, 2);
  withdrawn.abort(new Error('gave up'));
  await t.rejects(second, { message: 'gave up' });
  t.equal(batcher.queued, 1);
  sentAlone.abort(new Error('too slow'));
  await t.rejects(first, { message: 'too slow' }, 'already sent: the caller stops waiting');
  c.answer(0);
  await settle();
  t.same(c.sent, [[1], [3]], 'item 2 never went out');
  c.answer(1);
  t.equal(await third, 'done 3');
  const late = new AbortController();
  late.abort();
  await t.rejects(batcher.submit(4, late.signal));
  t.same(c.sent.length, 2);
});
