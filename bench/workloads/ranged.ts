// Ranged GET: 1 MiB at random offsets of the 1 GiB multipart object, one request at a time, each
// range verified byte for byte. Latency p50/p99 (ms); both systems read the same offsets.
import { ratioOf, type Row } from '../report.js';
import { MiB, runPool, summarize, type LatencySummary } from '../stats.js';
import { raw, sdk, settleDisk } from './common.js';
import { BUCKET, type BenchContext, type WorkloadResult } from './context.js';
import { fmtSize, multipartUpload, sharedObjectKey, type MultipartObject } from './multipart.js';

export async function rangedGets(ctx: BenchContext): Promise<WorkloadResult> {
  const { rangeSize, count, budgetMs } = ctx.cfg.ranged;
  const mp = ctx.cfg.multipart;
  const summaries = new Map<string, LatencySummary & { errors: number; firstError?: string }>();
  let objectSize = mp.objectSize;
  for (const system of ctx.systems) {
    await settleDisk(ctx.log);
    let object = ctx.shared.get(sharedObjectKey(system)) as MultipartObject | undefined;
    if (!object) {
      // Run alone (--only ranged): upload the object first, untimed.
      const s3 = sdk(system, mp.parallel * 2);
      const key = `multipart/${mp.objectSize}`;
      try {
        const raw0 = raw(system, 1);
        await raw0.createBucket(BUCKET).finally(() => raw0.close());
        await multipartUpload(s3, ctx.pattern, key, mp.objectSize, mp.partSize, mp.parallel, mp.budgetMs, ctx.signal);
      } finally {
        s3.destroy();
      }
      object = { key, size: mp.objectSize };
      ctx.shared.set(sharedObjectKey(system), object);
    }
    objectSize = object.size;
    const offsets = randomOffsets(count, object.size - rangeSize);
    const client = raw(system, 1);
    try {
      const r = await runPool({ concurrency: 1, maxOps: count, durationMs: budgetMs / ctx.systems.length, signal: ctx.signal }, async (i) => {
        const start = offsets[i]!;
        const verifier = ctx.pattern.verifier(object.key, start);
        await client.get(BUCKET, object.key, verifier, [start, start + rangeSize - 1], ctx.signal);
        verifier.check(rangeSize, `range ${start}+${rangeSize} of ${object.key}`);
      });
      const s = { ...summarize(r.latencies), errors: r.errors, firstError: r.firstError };
      summaries.set(system.name, s);
      ctx.log(`  ${system.name}: ${s.count} ranges, p50 ${s.p50.toFixed(2)} ms, p99 ${s.p99.toFixed(2)} ms${r.errors ? `, ${r.errors} errors (${r.firstError})` : ''}`);
    } finally {
      await client.close();
    }
  }
  const c = summaries.get('cairn');
  const p = summaries.get('s3rver');
  const rows: Row[] = (['p50', 'p99'] as const).map((q) => {
    const cv = c && c.count ? c[q] : null;
    const pv = p && p.count ? p[q] : null;
    return {
      id: `ranged.${q}`,
      workload: `ranged GET ${rangeSize / MiB} MiB of ${fmtSize(objectSize)}, ${q}`,
      unit: 'ms',
      cairn: cv,
      peer: pv,
      ratio: ratioOf(cv, pv),
      note: q === 'p99' && (c?.errors || p?.errors) ? `errors: cairn ${c?.errors ?? 0} (${c?.firstError ?? ''}), s3rver ${p?.errors ?? 0} (${p?.firstError ?? ''})` : undefined,
    };
  });
  return { rows, details: { rangeSize, objectSize, latencyMs: Object.fromEntries(summaries) } };
}

/** The same pseudo-random offsets on every run and for both systems. */
function randomOffsets(count: number, max: number): number[] {
  let x = 0x2545f491;
  return Array.from({ length: count }, () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % (max + 1);
  });
}
