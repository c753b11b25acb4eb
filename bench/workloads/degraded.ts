// Degraded reads: GET the same objects healthy, then with 2 of the 6 storage nodes SIGKILLed (the
// two holding the most data shards of these objects, so reads must decode from parity), every
// byte verified. The gateway's /-/metrics counter of read windows rebuilt from parity
// (cairn_degraded_read_windows_total) must not move during the healthy GETs and must during the
// degraded ones. The nodes are restarted afterwards (down-after is long, so nothing is repaired).
import { ratioOf, target, type Row } from '../report.js';
import { MiB, runPool, sleep, waitFor } from '../stats.js';
import { ensureBucket, getPattern, mbps, putPattern, sdk } from './common.js';
import { BUCKET, type BenchContext, type WorkloadResult } from './context.js';

const DECODE_COUNTER = 'cairn_degraded_read_windows_total';
const FAILURE_COUNTER = 'cairn_shard_read_failures_total';

export async function degradedReads(ctx: BenchContext): Promise<WorkloadResult> {
  const cairn = ctx.cairn;
  if (!cairn) throw new Error('degraded GET needs the Cairn cluster');
  const { objectSize, objects, budgetMs } = ctx.cfg.degraded;
  await ensureBucket(cairn);
  const s3 = sdk(cairn, 4);
  const keys = Array.from({ length: objects }, (_, i) => `degraded/${i}`);
  const killed: string[] = [];
  try {
    for (const key of keys) await putPattern(s3, ctx.pattern, key, objectSize, ctx.signal);
    const readAll = async (): Promise<{ mbps: number | null; errors: number; firstError?: string }> => {
      const r = await runPool({ concurrency: 1, maxOps: keys.length, durationMs: budgetMs / 3, signal: ctx.signal }, async (i) => void (await getPattern(s3, ctx.pattern, keys[i]!, objectSize, ctx.signal)));
      return { mbps: mbps(r.ops * objectSize, r.wallSeconds), errors: r.errors, firstError: r.firstError };
    };
    await getPattern(s3, ctx.pattern, keys[0]!, objectSize, ctx.signal); // warm-up, untimed
    const m0 = await cairn.gatewayMetrics();
    if (!m0.has(DECODE_COUNTER)) throw new Error(`the gateway's /-/metrics has no ${DECODE_COUNTER}`);
    const healthy = await readAll();
    const m1 = await cairn.gatewayMetrics();
    const healthyDecodes = (m1.get(DECODE_COUNTER) ?? NaN) - (m0.get(DECODE_COUNTER) ?? NaN);

    // The two nodes holding the most data shards of these objects.
    const dataShards = new Map<string, number>();
    for (const key of keys) {
      const record = await cairn.namespace.getObject(BUCKET, key);
      for (const segment of record.segments) {
        segment.placements.slice(0, record.layout.k).forEach((p) => p.nodeId && dataShards.set(p.nodeId, (dataShards.get(p.nodeId) ?? 0) + 1));
      }
    }
    const victims = [...dataShards.entries()].sort((a, b) => b[1] - a[1]).slice(0, 2).map(([id]) => id);
    for (const id of victims) {
      await cairn.killNode(id);
      killed.push(id);
    }
    ctx.log(`  SIGKILLed ${victims.join(', ')} (${victims.map((v) => dataShards.get(v)).join(' + ')} data shards of the test objects)`);
    await sleep(500);
    // Untimed, as before the healthy reads: a storage process that came back without the victims'
    // disks starts with a cold JIT, which a disk dying under a running process would not.
    await getPattern(s3, ctx.pattern, keys[0]!, objectSize, ctx.signal);
    const m1b = await cairn.gatewayMetrics();
    const degraded = await readAll();
    const m2 = await cairn.gatewayMetrics();
    const degradedDecodes = (m2.get(DECODE_COUNTER) ?? NaN) - (m1b.get(DECODE_COUNTER) ?? NaN);
    const shardFailures = (m2.get(FAILURE_COUNTER) ?? NaN) - (m1.get(FAILURE_COUNTER) ?? NaN);
    ctx.log(`  healthy GET ${healthy.mbps?.toFixed(0)} MB/s (${healthyDecodes} parity decodes); degraded ${degraded.mbps?.toFixed(0)} MB/s (${degradedDecodes} windows decoded, ${shardFailures} shard reads failed)`);

    const ratio = ratioOf(degraded.mbps, healthy.mbps);
    const errs = [healthy.errors && `healthy: ${healthy.errors} errors (${healthy.firstError})`, degraded.errors && `degraded: ${degraded.errors} errors (${degraded.firstError})`].filter(Boolean).join('; ');
    const rows: Row[] = [
      {
        id: 'degraded.get',
        workload: `degraded GET ${objectSize / MiB} MiB, 2 of ${ctx.cfg.cluster.nodes} nodes down`,
        unit: 'MB/s',
        cairn: degraded.mbps,
        peer: healthy.mbps,
        baseline: 'healthy',
        ratio,
        target: target.ratioAtLeast(ratio, 0.7, 'healthy'),
        note: `${objects} objects, 1 stream; ${degradedDecodes} read windows decoded from parity${errs ? `; ${errs}` : ''}`,
      },
      {
        id: 'degraded.healthy-decodes',
        workload: 'healthy GET: windows decoded from parity',
        unit: '',
        cairn: healthyDecodes,
        peer: null,
        ratio: null,
        target: target.equals(healthyDecodes, 0),
        note: `gateway /-/metrics ${DECODE_COUNTER} delta over the healthy GETs`,
      },
    ];
    if (!(degradedDecodes > 0)) rows[0]!.note += ' — WARNING: no decode counted while 2 nodes were down';
    return { rows, details: { objectSize, objects, victims, healthy, degraded, healthyDecodes, degradedDecodes, shardFailures } };
  } finally {
    s3.destroy();
    for (const id of killed) await cairn.startNode(id);
    if (killed.length) {
      const back = await waitFor(async () => {
        const nodes = await cairn.namespace.listNodes();
        return killed.every((id) => nodes.find((n) => n.id === id)?.state === 'up') ? true : undefined;
      }, 15_000);
      ctx.log(`  restarted ${killed.join(', ')}${back ? '' : ' (not yet reported up)'}`);
    }
  }
}
