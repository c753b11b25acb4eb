// Large objects: PUT then GET of 64 MiB objects, with 1 stream and with 8 concurrent streams,
// through the AWS SDK, every byte read verified. MB/s over each phase's wall time, and the CPU the
// server processes spent per MiB moved: on a shared 2-core box throughput swings ±30% from run to
// run, while CPU per MiB is what tuning changes.
import type { Row } from '../report.js';
import { ratioOf, target } from '../report.js';
import { ProcessGroupMeter } from '../procfs.js';
import { MiB, runPool } from '../stats.js';
import { ensureBucket, getPattern, mbps, PeakRss, putPattern, sdk, settleDisk } from './common.js';
import type { BenchContext, WorkloadResult } from './context.js';

interface PhaseResult {
  mbps: number | null;
  objects: number;
  errors: number;
  firstError?: string;
  seconds: number;
  /** CPU milliseconds of every server process per MiB of object moved. */
  cpuMsPerMiB: number | null;
}

export async function largeObjects(ctx: BenchContext): Promise<WorkloadResult> {
  const { objectSize, objects1, objects8, budgetMs } = ctx.cfg.large;
  const phaseMs = budgetMs / (4 * ctx.systems.length);
  const results = new Map<string, Record<string, PhaseResult>>();
  const rss = new Map<string, number>();
  for (const system of ctx.systems) {
    await settleDisk(ctx.log);
    await ensureBucket(system);
    const s3 = sdk(system, 16);
    const peak = await PeakRss.start(system.frontPid());
    const phases: Record<string, PhaseResult> = {};
    const run = async (name: string, streams: number, count: number, op: (key: string) => Promise<void>, keys: string[]): Promise<void> => {
      const servers = new ProcessGroupMeter(() => system.pids());
      await servers.start();
      const r = await runPool({ concurrency: streams, maxOps: count, durationMs: phaseMs, signal: ctx.signal }, (i) => op(keys[i]!));
      const { cpuSeconds } = await servers.stop();
      const mib = (r.ops * objectSize) / MiB;
      const cpuMsPerMiB = mib > 0 ? (cpuSeconds * 1000) / mib : null;
      phases[name] = { mbps: mbps(r.ops * objectSize, r.wallSeconds), objects: r.ops, errors: r.errors, firstError: r.firstError, seconds: r.wallSeconds, cpuMsPerMiB };
      if (r.errors > 0) ctx.log(`  ${system.name} ${name}: ${r.errors} failed (${r.firstError})`);
    };
    try {
      for (const streams of [1, 8]) {
        const count = streams === 1 ? objects1 : objects8;
        const keys = Array.from({ length: count }, (_, i) => `large/${streams}/${i}`);
        await run(`put${streams}`, streams, count, (key) => putPattern(s3, ctx.pattern, key, objectSize, ctx.signal), keys);
        const written = keys.slice(0, phases[`put${streams}`]!.objects);
        await run(`get${streams}`, streams, written.length, async (key) => void (await getPattern(s3, ctx.pattern, key, objectSize, ctx.signal)), written);
        ctx.log(`  ${system.name} ${streams} stream(s): PUT ${fmt(phases[`put${streams}`]!)}, GET ${fmt(phases[`get${streams}`]!)}`);
      }
      rss.set(system.name, (await peak.read()).bytes);
    } finally {
      s3.destroy();
    }
    results.set(system.name, phases);
  }
  const cairn = results.get('cairn');
  const peer = results.get('s3rver');
  const rows: Row[] = [];
  for (const streams of [1, 8]) {
    for (const op of ['put', 'get'] as const) {
      const c = cairn?.[`${op}${streams}`]?.mbps ?? null;
      const p = peer?.[`${op}${streams}`]?.mbps ?? null;
      const ratio = ratioOf(c, p);
      rows.push({
        id: `large.${op}.${streams}`,
        workload: `large ${op.toUpperCase()} ${objectSize / MiB} MiB, ${streams} stream${streams > 1 ? 's' : ''}`,
        unit: 'MB/s',
        cairn: c,
        peer: p,
        ratio,
        target: op === 'get' ? target.ratioAtLeast(ratio, 2.0) : target.ratioAtLeast(ratio, 1.5),
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
    }
  }
  return { rows, details: { objectSize, phases: Object.fromEntries(results), frontPeakRssBytes: Object.fromEntries(rss) } };
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

