// Degraded reads: GET the same objects healthy, then with 2 of the 6 storage nodes SIGKILLed (the
// two holding the most data shards of these objects, so reads must decode from parity), every
// byte verified. The gateway's /-/metrics counter of read windows rebuilt from parity
// (cairn_degraded_read_windows_total) must not move during the healthy GETs and must during the
// degraded ones. The nodes are restarted afterwards (down-after is long, so nothing is repaired).
import { RepairClient } from '../../repair/client.js';
import { ratioOf, target, type Row } from '../report.js';
import { MiB, runPool, sleep, waitFor } from '../stats.js';
import { ensureBucket, getPattern, mbps, putPattern, sdk } from './common.js';
import { BUCKET, type BenchContext, type WorkloadResult } from './context.js';
import type { CairnSystem } from '../systems.js';

/** Longest wait for the repair service's inventory audit of restarted nodes before timing reads. */
const AUDIT_WAIT_MS = 90_000;

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
    const bootsBefore = new Map((await cairn.namespace.listNodes()).map((n) => [n.id, n.bootId]));
    // The other nodes of the victims' storage processes: they go down and come back with them.
    const victimHosts = new Set(victims.map((id) => cairn.cluster.storageServiceOf(id)));
    const restarted = [...bootsBefore.keys()].filter((id) => !victims.includes(id) && victimHosts.has(cairn.cluster.storageServiceOf(id)));
    for (const id of victims) {
      await cairn.killNode(id);
      killed.push(id);
    }
    ctx.log(`  SIGKILLed ${victims.join(', ')} (${victims.map((v) => dataShards.get(v)).join(' + ')} data shards of the test objects)`);
    await sleep(500);
    // The victims' storage process comes back with the other disks under new boot ids, and the
    // repair service then audits those nodes' inventories (every shard id against the namespace):
    // seconds of CPU for both, which a disk dying under a running process would not cost. Reads are
    // timed once that is over, so that they measure decoding around the dead nodes.
    const audit = await awaitAudits(cairn, restarted, bootsBefore, ctx.signal);
    if (restarted.length) ctx.log(`  waited ${audit.seconds.toFixed(1)} s for the repair service's audit of the restarted ${restarted.join(', ')}${audit.done ? '' : ' (not done: timed anyway)'}`);
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
    return { rows, details: { objectSize, objects, victims, audit, healthy, degraded, healthyDecodes, degradedDecodes, shardFailures } };
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

/** Waits until the repair service has audited each of `nodes` since they came back with new boot ids. */
async function awaitAudits(cairn: CairnSystem, nodes: string[], bootsBefore: Map<string, string | undefined>, signal: AbortSignal): Promise<{ seconds: number; done: boolean }> {
  const started = performance.now();
  if (nodes.length === 0 || !cairn.repairUrl) return { seconds: 0, done: nodes.length === 0 };
  const repair = new RepairClient(cairn.repairUrl, cairn.cluster.clusterSecret);
  const done = await waitFor(
    async () => {
      const boots = new Map((await cairn.namespace.listNodes()).map((n) => [n.id, n.bootId]));
      const audit = (await repair.status()).workers.find((w) => w.name === 'audit');
      const audited = (audit?.progress.nodes ?? {}) as Record<string, { bootId?: string; auditing?: unknown } | undefined>;
      // Audited in its current boot (a node restarted twice, once per victim, is audited twice).
      const finished = (id: string): boolean => boots.get(id) !== bootsBefore.get(id) && !audited[id]?.auditing && audited[id]?.bootId === boots.get(id);
      return nodes.every(finished) ? true : undefined;
    },
    AUDIT_WAIT_MS,
    250,
    signal,
  );
  return { seconds: (performance.now() - started) / 1000, done: done === true };
}
