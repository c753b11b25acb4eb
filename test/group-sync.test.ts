// Group sync: callers during a flush share the next one; a failed flush fails only its own group.
import t from 'tap';
import { GroupSync } from '../common/group-sync.js';

t.test('callers share flushes, and each is covered by a flush that started after it asked', async (t) => {
  let flushes = 0;
  let release: (() => void) | undefined;
  const log: string[] = [];
  const sync = new GroupSync(async () => {
    const n = ++flushes;
    log.push(`start ${n}`);
    await new Promise<void>((resolve) => (release = resolve));
    log.push(`end ${n}`);
  });
  const first = sync.sync().then(() => log.push('first done'));
  await Promise.resolve();
  // Asked while flush 1 runs: flush 1 may have started before their writes, so they wait for flush 2.
  const late = [sync.sync(), sync.sync(), sync.sync()].map((p, i) => p.then(() => log.push(`late ${i} done`)));
  release!();
  await first;
  await new Promise((resolve) => setImmediate(resolve));
  release!();
  await Promise.all(late);
  t.equal(flushes, 2, 'four callers, two flushes');
  const at = (entry: string): number => log.indexOf(entry);
  t.ok(at('end 1') < at('first done'), 'the first caller is answered by flush 1');
  for (const i of [0, 1, 2]) t.ok(at('end 2') < at(`late ${i} done`), `late caller ${i} is answered only by flush 2`);
  t.ok(at('end 1') < at('start 2'), 'flushes do not overlap');
});

t.test('a failed flush rejects its own group; the next group gets a fresh flush', async (t) => {
  let calls = 0;
  const sync = new GroupSync(async () => {
    calls++;
    await new Promise((resolve) => setImmediate(resolve));
    if (calls === 1) throw new Error('disk on fire');
  });
  const failed = sync.sync();
  const next = sync.sync();
  await t.rejects(failed, /disk on fire/);
  await t.resolves(next);
  t.equal(calls, 2);
});
