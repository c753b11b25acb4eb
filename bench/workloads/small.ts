// Small objects: 4 KiB and 64 KiB PUTs, then GETs of what was written (verified), at 32 and 256
// concurrent clients (one keep-alive connection each), through the lean SigV4 client (bench/s3/raw.ts
// over lean-http.ts). Per phase: ops/s, p50/p99 latency, the load generator's CPU share (this
// process), the servers' CPU, and bytes that reached the disk per PUT (/proc/<pid>/io write_bytes of
// the processes that store data: Cairn's storage nodes and namespace, or s3rver).
//
// The systems take turns (common.ts inTurns): each phase runs as two halves, A B B A (A B C C B A
// with the floor), and a system's result joins its two halves. After each half the system that
// ran waits until it is idle, so that work it deferred (LevelDB compactions, say) is not billed
// to the next.
import { ProcessGroupMeter } from '../procfs.js';
import { addCounts, countsBetween, describePutWaits, putWaits, type PutWaitCounts, type PutWaits } from '../put-waits.js';
import { ratioOf, target, type Row } from '../report.js';
import { CpuMeter, KiB, runPool, summarize } from '../stats.js';
import type { System } from '../systems.js';
import { ensureBucket, inTurns, quiesce, raw, settleDisk } from './common.js';
import { BUCKET, floorNote, withFloor, type BenchContext, type WorkloadResult } from './context.js';

interface Phase {
  opsPerSec: number | null;
  ops: number;
  errors: number;
  firstError?: string;
  p50: number;
  p99: number;
  loadgenCores: number;
  loadgenShare: number;
  serverCores: number;
  diskBytesPerOp: number | null;
  wcharPerOp: number | null;
  /** Cairn's PUT phases: where its PUTs waited (bench/put-waits.ts). */
  waits?: PutWaits;
}

/** One half of a phase, as measured; a phase is the sum of its halves. */
interface Half {
  ops: number;
  errors: number;
  firstError?: string;
  latencies: number[];
  wallSeconds: number;
  loadgenCpuSeconds: number;
  loadgenShare: number;
  serverCpuSeconds: number;
  writeBytes: number;
  wchar: number;
  waits?: PutWaitCounts;
}

/**
 * Every half starts with a second (at most the half's own length) of the same requests, untimed:
 * connections open and the servers' JIT compiles the path. With one request per client as the only
 * warm-up, Cairn's first half ran on cold code in all four of its processes: 4 KiB PUTs at 32
 * clients made 1,817 ops/s in an `--only small` run, 2,167 with this warm-up, and 2,300-2,600 in
 * separate runs against a cluster warmed by 2,000 PUTs.
 */
const WARM_UP_MS = 1_000;
/** The warm-up's count limit: far above what a second allows, so the time limit is the one that applies. */
const WARM_UP_OPS = 100_000;

type Results = Map<string, Phase>; // `${system}/${op}/${size}/${clients}`

export async function smallObjects(ctx: BenchContext): Promise<WorkloadResult> {
  const { sizes, clients: clientCounts, phaseMs, maxOps } = ctx.cfg.small;
  const results: Results = new Map();
  const systems = withFloor(ctx);
  for (const system of systems) await ensureBucket(system);
  const turns = inTurns(systems);
  for (const size of sizes) {
    for (const clients of clientCounts) {
      if (ctx.signal.aborted) break;
      const written = new Map<System, number>(systems.map((s) => [s, 0]));
      const halves = new Map<string, Half[]>();
      for (const op of ['put', 'get'] as const) {
        for (const system of turns) {
          if (ctx.signal.aborted) break;
          const half = await measureHalf(ctx, system, op, size, clients, phaseMs / 2, Math.ceil(maxOps / 2), written.get(system)!);
          await quiesce(system, ctx.log, 5_000, ctx.signal);
          if (op === 'put') written.set(system, written.get(system)! + half.ops);
          const id = `${system.name}/${op}/${size}/${clients}`;
          halves.set(id, [...(halves.get(id) ?? []), half]);
        }
      }
      for (const [id, parts] of halves) results.set(id, joinHalves(parts, id.includes('/put/')));
      for (const system of systems) {
        const at = (op: string): Phase | undefined => results.get(`${system.name}/${op}/${size}/${clients}`);
        ctx.log(`  ${system.name} ${size / KiB} KiB × ${clients} clients: PUT ${fmt(at('put'))}; GET ${fmt(at('get'))}`);
        const waits = waitsLine(at('put'));
        if (waits) ctx.log(`    where ${system.name}'s PUTs waited: ${waits}`);
      }
    }
  }
  return { rows: rows(ctx, results), details: { phaseMs, interleaving: 'A B B A halves', results: Object.fromEntries(results) } };
}

/**
 * Half a phase of one system: PUTs of keys from `firstKey` on, or GETs of the `written` keys.
 * Connections are opened and the servers' code warmed up (WARM_UP_MS) before the clock starts.
 */
async function measureHalf(ctx: BenchContext, system: System, op: 'put' | 'get', size: number, clients: number, durationMs: number, maxOps: number, written: number): Promise<Half> {
  const client = raw(system, clients, 30_000);
  const prefix = `small/${size}/${clients}`;
  const key = (i: number): string => `${prefix}/${i}`;
  const body = (k: string): Buffer => ctx.pattern.slice(k, 0, size);
  const firstKey = op === 'put' ? written : 0;
  try {
    const warmUp = { concurrency: clients, maxOps: WARM_UP_OPS, durationMs: Math.min(WARM_UP_MS, durationMs), signal: ctx.signal };
    if (op === 'put') {
      const warm = (i: number): string => `${prefix}/warm/${firstKey + i}`;
      await runPool(warmUp, (i) => client.put(BUCKET, warm(i), body(warm(i)), ctx.signal));
      // Dirty pages (the warm-up's, the other system's) must not be written back on this half's clock.
      await settleDisk(ctx.log);
    } else {
      await runPool(warmUp, (i) => getOne(ctx, client, key(i % Math.max(1, written)), size));
    }
    // Read outside the CPU meters' window: rendering the metrics is not the phase's work.
    const cairn = op === 'put' && system === ctx.cairn ? ctx.cairn : undefined;
    const waitsBefore = await cairn?.putWaitCounts();
    const servers = new ProcessGroupMeter(() => system.pids());
    const writers = new ProcessGroupMeter(() => system.writerPids());
    await Promise.all([servers.start(), writers.start()]);
    const cpu = new CpuMeter();
    const r = await runPool({ concurrency: clients, maxOps, durationMs, signal: ctx.signal }, (i) =>
      op === 'put' ? client.put(BUCKET, key(firstKey + i), body(key(firstKey + i)), ctx.signal) : getOne(ctx, client, key(i % Math.max(1, written)), size),
    );
    const load = cpu.stop();
    const [srv, wr] = await Promise.all([servers.stop(), writers.stop()]);
    const waitsAfter = await cairn?.putWaitCounts();
    return {
      ops: r.ops,
      errors: r.errors,
      firstError: r.firstError,
      latencies: r.latencies,
      wallSeconds: r.wallSeconds,
      loadgenCpuSeconds: load.cpuSeconds,
      loadgenShare: load.machineShare,
      serverCpuSeconds: srv.cpuSeconds,
      writeBytes: wr.writeBytes,
      wchar: wr.wchar,
      waits: waitsBefore && waitsAfter ? countsBetween(waitsBefore, waitsAfter) : undefined,
    };
  } finally {
    await client.close();
  }
}

/** A phase from its halves: counts, CPU and time add up; latencies are pooled. */
function joinHalves(halves: Half[], puts: boolean): Phase {
  const sum = (f: (h: Half) => number): number => halves.reduce((a, h) => a + f(h), 0);
  const ops = sum((h) => h.ops);
  const wall = sum((h) => h.wallSeconds);
  const lat = summarize(halves.flatMap((h) => h.latencies));
  const perOp = (n: number): number | null => (puts && ops > 0 ? n / ops : null);
  return {
    opsPerSec: ops > 0 && wall > 0 ? ops / wall : null,
    ops,
    errors: sum((h) => h.errors),
    firstError: halves.find((h) => h.firstError !== undefined)?.firstError,
    p50: lat.p50,
    p99: lat.p99,
    loadgenCores: wall > 0 ? sum((h) => h.loadgenCpuSeconds) / wall : 0,
    // Each half's share weighted by its time: the share of the whole phase.
    loadgenShare: wall > 0 ? sum((h) => h.loadgenShare * h.wallSeconds) / wall : 0,
    serverCores: wall > 0 ? sum((h) => h.serverCpuSeconds) / wall : 0,
    diskBytesPerOp: perOp(sum((h) => h.writeBytes)),
    wcharPerOp: perOp(sum((h) => h.wchar)),
    waits: halves.length > 0 && halves.every((h) => h.waits) ? putWaits(halves.map((h) => h.waits!).reduce(addCounts)) : undefined,
  };
}

async function getOne(ctx: BenchContext, client: ReturnType<typeof raw>, key: string, size: number): Promise<void> {
  const verifier = ctx.pattern.verifier(key);
  await client.get(BUCKET, key, verifier, undefined, ctx.signal);
  verifier.check(size, `GET ${key}`);
}

function fmt(p: Phase | undefined): string {
  if (p === undefined) return 'not run';
  return `${p.opsPerSec?.toFixed(0) ?? 'n/a'} ops/s p50 ${p.p50.toFixed(1)} p99 ${p.p99.toFixed(1)} ms, loadgen ${(p.loadgenShare * 100).toFixed(0)}% of machine${p.errors ? `, ${p.errors} errors (${p.firstError})` : ''}`;
}

/** Where a PUT phase's requests waited, when the system counts it (Cairn). */
function waitsLine(phase: Phase | undefined): string | undefined {
  return phase?.waits && describePutWaits(phase.waits);
}

function waitsNote(phase: Phase | undefined): string {
  const line = waitsLine(phase);
  return line ? `; Cairn's PUTs: ${line}` : '';
}

function rows(ctx: BenchContext, results: Results): Row[] {
  const out: Row[] = [];
  const get = (sys: string, op: string, size: number, clients: number): Phase | undefined => results.get(`${sys}/${op}/${size}/${clients}`);
  for (const size of ctx.cfg.small.sizes) {
    const judged = size === 4 * KiB; // the issue's targets are for 4 KiB
    for (const clients of ctx.cfg.small.clients) {
      for (const op of ['put', 'get'] as const) {
        const c = get('cairn', op, size, clients);
        const p = get('s3rver', op, size, clients);
        const label = `small ${size / KiB} KiB ${op.toUpperCase()} × ${clients}`;
        const id = `small.${size / KiB}k.${op}.${clients}`;
        const f = get('floor', op, size, clients);
        const opsRatio = ratioOf(c?.opsPerSec ?? null, p?.opsPerSec ?? null);
        const loadgen = [c && `Cairn ${(c.loadgenShare * 100).toFixed(0)}%`, p && `s3rver ${(p.loadgenShare * 100).toFixed(0)}%`].filter(Boolean).join(', ');
        const msPerOp = (x: Phase): string | undefined => (x.opsPerSec ? `${((x.serverCores * 1000) / x.opsPerSec).toFixed(2)} ms/op` : undefined);
        const perOp = (x: Phase): string => (msPerOp(x) ? ` = ${msPerOp(x)}` : '');
        const servers = [c && `Cairn ${c.serverCores.toFixed(2)}${perOp(c)}`, p && `s3rver ${p.serverCores.toFixed(2)}${perOp(p)}`].filter(Boolean).join(', ');
        const errs = [c?.errors && `Cairn ${c.errors} errors (${c.firstError})`, p?.errors && `s3rver ${p.errors} errors (${p.firstError})`].filter(Boolean).join('; ');
        out.push({
          id: `${id}.ops`,
          workload: `${label}: ops/s`,
          unit: 'ops/s',
          cairn: c?.opsPerSec ?? null,
          peer: p?.opsPerSec ?? null,
          ratio: opsRatio,
          target: judged ? target.ratioAtLeast(opsRatio, 3) : undefined,
          floorTarget: judged && f ? target.ratioAtLeast(ratioOf(f.opsPerSec, p?.opsPerSec ?? null), 3) : undefined,
          note: `load generator CPU (share of machine): ${loadgen}; server CPU (cores): ${servers}${errs ? `; ${errs}` : ''}${waitsNote(c)}`,
        });
        if (f) {
          out.push({
            id: `${id}.floor`,
            workload: `${label}: Cairn vs floor`,
            unit: 'ops/s',
            cairn: c?.opsPerSec ?? null,
            peer: f.opsPerSec,
            baseline: 'floor',
            ratio: ratioOf(c?.opsPerSec ?? null, f.opsPerSec),
            note: floorNote(f.opsPerSec, p?.opsPerSec ?? null, 'ops/s', `; its p99 ${f.p99.toFixed(1)} ms, server CPU ${msPerOp(f) ?? 'n/a'}${f.errors ? `; ${f.errors} errors (${f.firstError})` : ''}`),
          });
        }
        for (const q of ['p50', 'p99'] as const) {
          const cv = c && c.ops ? c[q] : null;
          const pv = p && p.ops ? p[q] : null;
          const ratio = ratioOf(cv, pv);
          out.push({
            id: `${id}.${q}`,
            workload: `${label}: ${q}`,
            unit: 'ms',
            cairn: cv,
            peer: pv,
            ratio,
            target: judged && q === 'p99' ? target.ratioAtMost(ratio, 1 / 3, '≤ 1/3 s3rver') : undefined,
            floorTarget: judged && q === 'p99' && f?.ops ? target.ratioAtMost(ratioOf(f[q], pv), 1 / 3, '≤ 1/3 s3rver') : undefined,
          });
        }
      }
      const c = get('cairn', 'put', size, clients);
      const p = get('s3rver', 'put', size, clients);
      out.push({
        id: `small.${size / KiB}k.diskbytes.${clients}`,
        workload: `small ${size / KiB} KiB PUT × ${clients}: disk bytes/PUT`,
        unit: 'B',
        cairn: c?.diskBytesPerOp ?? null,
        peer: p?.diskBytesPerOp ?? null,
        ratio: ratioOf(c?.diskBytesPerOp ?? null, p?.diskBytesPerOp ?? null),
        note: `/proc/<pid>/io write_bytes of the storage nodes + namespace (Cairn) / s3rver, per PUT; write(2) bytes per PUT: Cairn ${c?.wcharPerOp?.toFixed(0) ?? 'n/a'}, s3rver ${p?.wcharPerOp?.toFixed(0) ?? 'n/a'}`,
      });
    }
  }
  return out;
}
