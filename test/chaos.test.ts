// The chaos harness: its checker's rules on hand-made histories, its determinism, and one short
// real run (about a minute of workload and faults against 7 storage nodes, two gateways and repair)
// that must end with no violation, no byte lost and full redundancy restored.
// The long run is `npm run chaos -- --duration 10m`.
import t from 'tap';
import { Checker, expectedRange, legalCandidates, UNKNOWN_GRACE_MS } from './chaos/checker.js';
import { ValueSource, type ValueRef } from './chaos/data.js';
import { planFaults } from './chaos/faults.js';
import { History, type WriteOp, type WriteStatus } from './chaos/history.js';
import { defaultOptions, reproduceCommand } from './chaos/options.js';
import { Prng } from './chaos/prng.js';
import { runChaos } from './chaos/run.js';

const MiB = 1024 * 1024;

let nextId = 0;
function write(start: number, end: number, status: WriteStatus, value: ValueRef | null = valueRef()): WriteOp {
  return { opId: nextId++, type: value ? 'put' : 'delete', key: 'k', value, client: 0, gateway: 'g', start, end, status };
}
function valueRef(): ValueRef {
  const id = `v${nextId}`;
  return { id, size: 10, sha256: id };
}
const names = (cs: ReturnType<typeof legalCandidates>): string[] => cs.map((c) => (c.write ? `#${c.write.opId}` : 'initial')).sort();

t.test('checker: the values a read may legally return', async (t) => {
  t.same(names(legalCandidates([], 0, 1)), ['initial'], 'a key never written reads as absent');
  const w1 = write(0, 10, 'ok');
  t.same(names(legalCandidates([w1], 20, 30)), [`#${w1.opId}`], 'an acknowledged write hides the initial state');
  t.same(names(legalCandidates([w1], 5, 8)), ['initial', `#${w1.opId}`].sort(), 'a read overlapping a write may see either');
  const w2 = write(12, 15, 'ok');
  t.same(names(legalCandidates([w1, w2], 20, 30)), [`#${w2.opId}`], 'a later acknowledged overwrite hides the earlier value');
  const c = write(5, 15, 'ok');
  t.same(names(legalCandidates([w1, c], 20, 30)), [`#${w1.opId}`, `#${c.opId}`].sort(), 'concurrent writes: either may win');
  const del = write(12, 15, 'ok', null);
  const afterDelete = legalCandidates([w1, del], 20, 30);
  t.same(names(afterDelete), [`#${del.opId}`], 'after an acknowledged delete only absence is legal');
  t.equal(afterDelete[0]!.value, null);
  const unknown = write(12, 15, 'unknown');
  t.same(names(legalCandidates([w1, unknown], 20, 30)), [`#${w1.opId}`, `#${unknown.opId}`].sort(), 'a write of unknown outcome may or may not have happened');
  const later = write(50, 60, 'ok');
  t.same(names(legalCandidates([unknown, later], 70, 80, 0)), [`#${later.opId}`], 'an acknowledged write after the unknown one (past its grace) hides it');
  t.ok(names(legalCandidates([unknown, later], 70, 80)).includes(`#${unknown.opId}`), `within ${UNKNOWN_GRACE_MS} ms of grace it may still land`);
  t.same(names(legalCandidates([write(0, 10, 'failed')], 20, 30)), ['initial'], 'a refused write is never visible');
  const pending = write(25, Infinity, 'pending');
  t.same(names(legalCandidates([w1, pending], 20, 30)), [`#${w1.opId}`, `#${pending.opId}`].sort(), 'a write in flight may already be visible');
  t.same(names(legalCandidates([write(35, 40, 'ok')], 20, 30)), ['initial'], 'a write that started after the read ended is not');
});

t.test('checker: reads are classified', async (t) => {
  const history = new History();
  const values = new ValueSource(1);
  const checker = new Checker(history, values);
  const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 2));
  const v1 = values.value('a', 1000).ref;
  const w = history.beginWrite('put', 'k', v1, 0, 'g');
  await tick();
  history.endWrite(w, 'ok');
  await tick();
  const read = async (obs: Parameters<Checker['checkRead']>[1]) => {
    const r = history.beginRead('get', 'k', 0, 'g');
    await tick();
    history.endRead(r, true);
    return checker.checkRead(r, obs)?.type;
  };
  t.equal(await read({ kind: 'value', sha256: v1.sha256, size: 1000, etag: v1.etag }), undefined, 'the acknowledged value is legal');
  t.equal(await read({ kind: 'value', sha256: v1.sha256, size: 1000, etag: '"00"' }), 'wrong-etag');
  t.equal(await read({ kind: 'value', sha256: 'f'.repeat(64), size: 1000 }), 'wrong-bytes', 'bytes no write had');
  t.equal(await read({ kind: 'absent' }), 'lost-write', 'an acknowledged write must not vanish');
  const spec = { kind: 'bounded', first: 100, last: 199 } as const;
  t.equal(await read({ kind: 'range', spec, start: 100, end: 199, total: 1000, bytes: values.bytes('a', 100, 100) }), undefined, 'a range is checked byte for byte');
  t.equal(await read({ kind: 'range', spec, start: 100, end: 199, total: 1000, bytes: values.bytes('a', 101, 100) }), 'wrong-bytes');
  t.equal(await read({ kind: 'unsatisfiable', spec: { kind: 'from', first: 5000 } }), undefined, '416 past the end');
  const d = history.beginWrite('delete', 'k', null, 0, 'g');
  await tick();
  history.endWrite(d, 'ok');
  await tick();
  t.equal(await read({ kind: 'value', sha256: v1.sha256, size: 1000 }), 'resurrected-delete', 'a deleted object must not reappear');
  t.equal(await read({ kind: 'absent' }), undefined);
  t.equal(expectedRange({ kind: 'suffix', length: 10 }, 4)?.start, 0);
  t.equal(expectedRange({ kind: 'bounded', first: 4, last: 9 }, 4), null);
});

t.test('a seed reproduces values, operations and the fault schedule', async (t) => {
  const a = new Prng(7, 'client-0');
  const b = new Prng(7, 'client-0');
  t.same(Array.from({ length: 5 }, () => a.nextU32()), Array.from({ length: 5 }, () => b.nextU32()));
  t.not(new Prng(7, 'client-1').nextU32(), new Prng(7, 'client-0').nextU32(), 'streams are independent');
  t.same(planFaults({ seed: 3, durationMs: 600_000, meanIntervalMs: 6_000 }), planFaults({ seed: 3, durationMs: 600_000, meanIntervalMs: 6_000 }));
  const values = new ValueSource(9);
  const whole = values.bytes('x', 0, 3 * MiB);
  t.ok(values.bytes('x', 1_234_567, 100_003).equals(whole.subarray(1_234_567, 1_234_567 + 100_003)), 'any range of a value regenerates exactly');
  t.match(reproduceCommand({ ...defaultOptions(), seed: 42 }), /--seed 42 /);
});

t.test('a short chaos run: no violation, no byte lost, full redundancy restored', async (t) => {
  const seed = Number(process.env.CAIRN_CHAOS_SEED ?? 20261101);
  const result = await runChaos(
    {
      ...defaultOptions(),
      seed,
      durationMs: 45_000,
      nodes: 7,
      clients: 4,
      keys: 40,
      maxSize: 12 * MiB,
      segmentSize: 4 * MiB,
      faultIntervalMs: 4_000,
      lossBoundMs: 20_000,
      flipLifetimeMs: 30_000,
      healTimeoutMs: 40_000,
      opTimeoutMs: 60_000,
      scrubInterval: '10s',
    },
    (line) => t.comment(line),
  );
  t.comment(result.text);
  const r = result.report;
  t.same(r.violations, [], 'no violations');
  t.equal(r.bytesLost, 0, 'no byte lost');
  t.ok(r.heal.restored, `full redundancy restored (${r.heal.state})`);
  t.ok(r.faults.some((f) => f.outcome === 'injected'), 'faults were injected');
  t.ok(r.final.objects > 0, 'objects were verified');
  t.equal(result.exitCode, 0);
});
