// Large objects: PUT then GET of 64 MiB objects, with 1 stream and with 8 concurrent streams,
// through the AWS SDK, every byte read verified. MB/s over each phase's wall time, and the CPU the
// server processes spent per MiB moved: on a shared 2-core box throughput swings ±30% from run to
// run, while CPU per MiB is what tuning changes. The systems take turns as in small.ts: each phase
// runs as two halves (half the objects each) in the order A B B A (A B C C B A with the floor),
// joined per system.
import { ratioOf, target, type Row, type Target } from '../report.js';
import { ProcessGroupMeter } from '../procfs.js';
import { MiB, runPool } from '../stats.js';
import type { System } from '../systems.js';
import { ensureBucket, getPattern, inTurns, mbps, PeakRss, putPattern, quiesce, sdk, settleDisk } from './common.js';
import { floorNote, withFloor, type BenchContext, type WorkloadResult } from './context.js';

interface PhaseResult {
  mbps: number | null;
  objects: number;
  errors: number;
  firstError?: string;
  seconds: number;
  /** CPU milliseconds of every server process per MiB of object moved. */
  cpuMsPerMiB: number | null;
}

/** What one half of a phase measured; a phase adds its halves up. */
interface Half {
  objects: number;
  errors: number;
  firstError?: string;
  seconds: number;
  cpuSeconds: number;
}

export async function largeObjects(ctx: BenchContext): Promise<WorkloadResult> {
  const { objectSize, objects1, objects8, budgetMs } = ctx.cfg.large;
  const systems = withFloor(ctx);
  const halfMs = budgetMs / (4 * 2 * systems.length);
  const turns = inTurns(systems);
  const halves = new Map<string, Half[]>(); // `${system}/${op}${streams}`
  const rss = new Map<string, number>();
  const clients = new Map(systems.map((system) => [system, sdk(system, 16)]));
  try {
    const peaks = new Map<System, PeakRss>();
    for (const system of systems) {
      await ensureBucket(system);
      peaks.set(system, await PeakRss.start(system.frontPid()));
    }
    for (const streams of [1, 8]) {
      const perHalf = Math.ceil((streams === 1 ? objects1 : objects8) / 2);
      // Keys each system wrote in each of its halves, for the GETs of the same half.
      const written = new Map<string, string[]>();
      for (const op of ['put', 'get'] as const) {
        const seen = new Map<System, number>();
        for (const system of turns) {
          if (ctx.signal.aborted) break;
          const half = seen.get(system) ?? 0;
          seen.set(system, half + 1);
          const s3 = clients.get(system)!;
          const id = `${system.name}/${op}${streams}`;
          let result: Half;
          if (op === 'put') {
            await settleDisk(ctx.log);
            const keys = Array.from({ length: perHalf }, (_, i) => `large/${streams}/${half * perHalf + i}`);
            result = await measureHalf(ctx, system, streams, keys, halfMs, (key) => putPattern(s3, ctx.pattern, key, objectSize, ctx.signal));
            written.set(`${system.name}/${half}`, keys.slice(0, result.objects));
          } else {
            const keys = written.get(`${system.name}/${half}`) ?? [];
            result = await measureHalf(ctx, system, streams, keys, halfMs, async (key) => void (await getPattern(s3, ctx.pattern, key, objectSize, ctx.signal)));
          }
          halves.set(id, [...(halves.get(id) ?? []), result]);
          if (result.errors > 0) ctx.log(`  ${system.name} ${op}${streams}: ${result.errors} failed (${result.firstError})`);
          await quiesce(system, ctx.log, 5_000, ctx.signal);
        }
      }
      for (const system of systems) {
        const phase = (op: string): PhaseResult => joinHalves(halves.get(`${system.name}/${op}${streams}`) ?? [], objectSize);
        ctx.log(`  ${system.name} ${streams} stream(s): PUT ${fmt(phase('put'))}, GET ${fmt(phase('get'))}`);
      }
    }
    for (const system of systems) rss.set(system.name, (await peaks.get(system)!.read()).bytes);
  } finally {
    for (const s3 of clients.values()) s3.destroy();
  }
  const results = new Map<string, Record<string, PhaseResult>>();
  for (const [id, parts] of halves) {
    const [name, phase] = id.split('/') as [string, string];
    results.set(name, { ...results.get(name), [phase]: joinHalves(parts, objectSize) });
  }
  const cairn = results.get('cairn');
  const peer = results.get('s3rver');
  const floor = results.get('floor');
  const rows: Row[] = [];
  for (const streams of [1, 8]) {
    for (const op of ['put', 'get'] as const) {
      const c = cairn?.[`${op}${streams}`]?.mbps ?? null;
      const p = peer?.[`${op}${streams}`]?.mbps ?? null;
      const ratio = ratioOf(c, p);
      const targetFor = (r: number | null): Target => (op === 'get' ? target.ratioAtLeast(r, 2.0) : target.ratioAtLeast(r, 1.5));
      rows.push({
        id: `large.${op}.${streams}`,
        workload: `large ${op.toUpperCase()} ${objectSize / MiB} MiB, ${streams} stream${streams > 1 ? 's' : ''}`,
        unit: 'MB/s',
        cairn: c,
        peer: p,
        ratio,
        target: targetFor(ratio),
        floorTarget: floor ? targetFor(ratioOf(floor[`${op}${streams}`]?.mbps ?? null, p)) : undefined,
        note: failures(cairn?.[`${op}${streams}`], peer?.[`${op}${streams}`]),
      });
      const cc = cairn?.[`${op}${streams}`]?.cpuMsPerMiB ?? null;
      const pc = peer?.[`${op}${streams}`]?.cpuMsPerMiB ?? null;
      rows.push({
        id: `large.${op}.${streams}.cpu`,
        workload: `large ${op.toUpperCase()}, ${streams} stream${streams > 1 ? 's' : ''}: server CPU per MiB`,
        unit: 'ms',
        cairn: cc,
        peer: pc,
        ratio: ratioOf(cc, pc),
        note: 'every server process (Cairn: gateway, namespace, nodes, repair); lower is better',
      });
      if (floor) {
        const f = floor[`${op}${streams}`];
        rows.push({
          id: `large.${op}.${streams}.floor`,
          workload: `large ${op.toUpperCase()}, ${streams} stream${streams > 1 ? 's' : ''}: Cairn vs floor`,
          unit: 'MB/s',
          cairn: c,
          peer: f?.mbps ?? null,
          baseline: 'floor',
          ratio: ratioOf(c, f?.mbps ?? null),
          note: floorNote(f?.mbps ?? null, p, 'MB/s', `, at ${f?.cpuMsPerMiB?.toFixed(2) ?? 'n/a'} ms of server CPU per MiB${failures(f) ? `; ${failures(f)}` : ''}`),
        });
      }
    }
  }
  return { rows, details: { objectSize, phases: Object.fromEntries(results), frontPeakRssBytes: Object.fromEntries(rss) } };
}

/** `op` on each of `keys` from `streams` workers, at most `durationMs`, with the servers' CPU. */
async function measureHalf(ctx: BenchContext, system: System, streams: number, keys: string[], durationMs: number, op: (key: string) => Promise<void>): Promise<Half> {
  const servers = new ProcessGroupMeter(() => system.pids());
  await servers.start();
  const r = await runPool({ concurrency: streams, maxOps: keys.length, durationMs, signal: ctx.signal }, (i) => op(keys[i]!));
  const { cpuSeconds } = await servers.stop();
  return { objects: r.ops, errors: r.errors, firstError: r.firstError, seconds: r.wallSeconds, cpuSeconds };
}

function joinHalves(halves: Half[], objectSize: number): PhaseResult {
  const objects = halves.reduce((a, h) => a + h.objects, 0);
  const seconds = halves.reduce((a, h) => a + h.seconds, 0);
  const mib = (objects * objectSize) / MiB;
  return {
    mbps: mbps(objects * objectSize, seconds),
    objects,
    errors: halves.reduce((a, h) => a + h.errors, 0),
    firstError: halves.find((h) => h.firstError !== undefined)?.firstError,
    seconds,
    cpuMsPerMiB: mib > 0 ? (halves.reduce((a, h) => a + h.cpuSeconds, 0) * 1000) / mib : null,
  };
}

function fmt(p: PhaseResult): string {
  const cpu = p.cpuMsPerMiB === null ? '' : `, ${p.cpuMsPerMiB.toFixed(1)} ms server CPU/MiB`;
  return `${p.mbps?.toFixed(0) ?? 'n/a'} MB/s (${p.objects} objects in ${p.seconds.toFixed(1)} s${cpu}${p.errors ? `, ${p.errors} errors` : ''})`;
}

export function failures(...phases: ({ errors: number; firstError?: string } | undefined)[]): string | undefined {
  const failed = phases.filter((p) => p && p.errors > 0);
  if (failed.length === 0) return undefined;
  return `errors: ${failed.map((p) => `${p!.errors} (${p!.firstError})`).join('; ')}`;
}

