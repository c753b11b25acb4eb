// Repair throughput and time to full redundancy, on a cluster of its own (the main cluster keeps
// the default down-after, so the degraded-read test there does not set repair off).
//
// k=4, m=2 on 6 storage nodes (every segment has a shard on every node), filled through S3 until
// node-1 holds ~2 GiB of shards; then a spare node-7 joins (with k+m = 6 = nodes, a rebuilt shard
// needs a node that holds no shard of its segment) and node-1 is SIGKILLed. With
// CAIRN_DOWN_AFTER 3s, no rate limit and a 1 s scan interval, the bench polls the namespace until
// every segment again has k+m placements on nodes that are up, none on node-1.
//   repair MB/s   = node-1's shard bytes / (full redundancy − node-1 declared down)
//   time to full  = full redundancy − SIGKILL
// One rebuilt object is then read back and verified with node-1 still down.
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { RepairClient } from '../../repair/client.js';
import { machineCpuSeconds, ProcessGroupMeter } from '../procfs.js';
import { ratioOf, target, type Row } from '../report.js';
import { fmtBytes, MB, MiB, runPool, sleep, waitFor } from '../stats.js';
import { CairnSystem } from '../systems.js';
import { ensureBucket, getPattern, putPattern, sdk } from './common.js';
import { BUCKET, type BenchContext, type WorkloadResult } from './context.js';

const VICTIM = 'node-1';
const SPARE = 'node-7';
/** A node that shares the victim's storage process when nodes share processes. */
const NEIGHBOUR = 'node-2';

async function dirBytes(dir: string): Promise<{ bytes: number; files: number }> {
  let bytes = 0;
  let files = 0;
  const walk = async (d: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) {
        bytes += (await stat(p)).size;
        files++;
      }
    }
  };
  await walk(dir);
  return { bytes, files };
}

/** The parts of the cluster whose CPU the rebuild is split into. */
const CPU_GROUPS: [label: string, member: (service: string, cairn: CairnSystem) => boolean][] = [
  ['repair process', (name) => name === 'repair'],
  ['storage nodes', (name, cairn) => cairn.cluster.isStorageService(name)],
  ['namespace', (name) => name === 'namespace'],
  ['gateway', (name) => name === 'gateway'],
];

interface RebuildCpu {
  seconds: number;
  /** Cores each group kept busy on average. */
  cores: Map<string, number>;
  /** Share of the whole machine (all cores) that was busy. */
  machineBusy: number;
  cpuSeconds: number;
}

/** CPU per part of the cluster over the rebuild: where a faster repair has to come from. */
async function meterRebuild(cairn: CairnSystem): Promise<() => Promise<RebuildCpu>> {
  const meters = CPU_GROUPS.map(([label, member]) => {
    const pids = (): number[] => [...cairn.cluster.services.entries()].filter(([name]) => member(name, cairn)).map(([, s]) => s.ready.pid);
    return [label, new ProcessGroupMeter(pids)] as const;
  });
  await Promise.all(meters.map(([, m]) => m.start()));
  const machine = await machineCpuSeconds();
  const t0 = performance.now();
  return async () => {
    const seconds = (performance.now() - t0) / 1000;
    const used = await Promise.all(meters.map(async ([label, m]) => [label, (await m.stop()).cpuSeconds] as const));
    const after = await machineCpuSeconds();
    return {
      seconds,
      cores: new Map(used.map(([label, cpu]) => [label, seconds > 0 ? cpu / seconds : 0])),
      machineBusy: (after.busy - machine.busy) / Math.max(after.total - machine.total, 1e-9),
      cpuSeconds: used.reduce((sum, [, cpu]) => sum + cpu, 0),
    };
  };
}

export async function repairThroughput(ctx: BenchContext): Promise<WorkloadResult> {
  const { victimBytes, objectSize, concurrency, downAfter, workers, budgetMs } = ctx.cfg.repair;
  const { k, m, nodes, nodesPerProcess } = ctx.cfg.cluster;
  const t0 = performance.now();
  const cairn = await CairnSystem.start({
    nodes,
    nodesPerProcess,
    k,
    m,
    downAfter,
    repair: { rate: 'unlimited', workers, interval: '1s' },
    log: (line) => ctx.log(`  ${line}`),
  });
  try {
    await ensureBucket(cairn);
    // Every node holds one shard (1/k of the data) of every segment.
    const objects = Math.max(1, Math.ceil((victimBytes * k) / objectSize));
    const s3 = sdk(cairn, concurrency * 2);
    const keys = Array.from({ length: objects }, (_, i) => `repair/${i}`);
    // At most 40% of the budget for filling; the rest is for the rebuild.
    const fill = await runPool({ concurrency, maxOps: objects, durationMs: budgetMs * 0.4, signal: ctx.signal }, (i) => putPattern(s3, ctx.pattern, keys[i]!, objectSize, ctx.signal));
    const written = keys.slice(0, fill.ops);
    if (written.length === 0) throw new Error(`filling the repair cluster failed: ${fill.firstError ?? 'time budget'}`);
    const victimShards = await dirBytes(path.join(cairn.nodeDataDir(VICTIM), 'shards'));
    ctx.log(`  wrote ${written.length} × ${objectSize / MiB} MiB in ${fill.wallSeconds.toFixed(1)} s; ${VICTIM} holds ${(victimShards.bytes / MiB).toFixed(0)} MiB in ${victimShards.files} shard files${fill.errors ? ` (${fill.errors} PUTs failed: ${fill.firstError})` : ''}`);

    // The spare is a new disk of the same machine when the nodes share a storage process (as on one
    // machine), else a machine of its own.
    if (nodesPerProcess > 1) await cairn.addNodeBeside(SPARE, NEIGHBOUR);
    else await cairn.startNode(SPARE);
    const spareUp = await waitFor(async () => ((await cairn.namespace.listNodes()).find((n) => n.id === SPARE)?.state === 'up' ? true : undefined), 15_000);
    if (!spareUp) throw new Error(`${SPARE} did not come up`);
    const repair = new RepairClient(cairn.repairUrl!, cairn.cluster.clusterSecret);
    const before = await repair.status();

    const killedAt = performance.now();
    await cairn.killNode(VICTIM);
    ctx.log(`  SIGKILLed ${VICTIM}; waiting for it to be declared down (${downAfter}) and repaired onto the other nodes ...`);
    let downAt: number | undefined;
    let fullAt: number | undefined;
    let stopMeter: (() => Promise<RebuildCpu>) | undefined;
    let lastDegraded = -1;
    const deadline = t0 + budgetMs;
    while (performance.now() < deadline && !ctx.signal.aborted) {
      const nodeStates = new Map((await cairn.namespace.listNodes()).map((n) => [n.id, n.state]));
      if (downAt === undefined && nodeStates.get(VICTIM) === 'down') {
        downAt = performance.now();
        stopMeter = await meterRebuild(cairn);
      }
      if (downAt !== undefined) {
        let degraded = 0;
        for (const key of written) {
          const record = await cairn.namespace.getObject(BUCKET, key);
          for (const segment of record.segments) {
            const healthy = segment.placements.filter((p) => p.nodeId !== null && p.nodeId !== VICTIM && nodeStates.get(p.nodeId) === 'up').length;
            if (healthy < record.layout.k + record.layout.m) degraded++;
          }
        }
        lastDegraded = degraded;
        if (degraded === 0) {
          fullAt = performance.now();
          break;
        }
      }
      await sleep(500, ctx.signal);
    }
    const cpu = await stopMeter?.();
    const after = await repair.status().catch(() => undefined);
    const repairBytes = Number(after?.repair.bytesWritten ?? NaN) - Number(before.repair.bytesWritten ?? NaN);
    const busyRate = Number(after?.repair.bytesPerSecondWhileBusy ?? NaN) / MB;
    const windowSeconds = fullAt !== undefined && downAt !== undefined ? (fullAt - downAt) / 1000 : null;
    const repairMbps = windowSeconds ? victimShards.bytes / MB / windowSeconds : null;
    const timeToFull = fullAt !== undefined ? (fullAt - killedAt) / 1000 : null;
    const cpuMsPerMB = cpu && fullAt !== undefined && victimShards.bytes > 0 ? (cpu.cpuSeconds * 1000) / (victimShards.bytes / MB) : null;
    if (cpu) ctx.log(`  CPU over the rebuild: ${cpuSplit(cpu)}`);
    ctx.log(
      fullAt !== undefined
        ? `  full redundancy ${timeToFull!.toFixed(1)} s after the kill (declared down after ${((downAt! - killedAt) / 1000).toFixed(1)} s): ${repairMbps!.toFixed(0)} MB/s of shards rebuilt; repair service says ${(repairBytes / MiB).toFixed(0)} MiB written, ${busyRate.toFixed(0)} MB/s while busy`
        : `  NOT back to full redundancy within the budget (${lastDegraded} segments still degraded)`,
    );

    // The rebuilt data must read back right (node-1 is still down).
    let verified = false;
    let verifyError: string | undefined;
    if (fullAt !== undefined) {
      try {
        await getPattern(s3, ctx.pattern, written[0]!, objectSize, ctx.signal);
        verified = true;
      } catch (err) {
        verifyError = err instanceof Error ? err.message : String(err);
      }
    }
    s3.destroy();

    const disk = ctx.machine?.diskWriteFsync ?? null;
    const ratio = ratioOf(repairMbps, disk);
    const rows: Row[] = [
      {
        id: 'repair.mbps',
        workload: `repair after SIGKILL of a node with ${fmtBytes(victimShards.bytes)} of shards`,
        unit: 'MB/s',
        cairn: repairMbps,
        peer: disk,
        baseline: 'disk write',
        ratio,
        target: target.ratioAtLeast(ratio, 0.5, 'disk write'),
        note: `${nodes} nodes + spare ${SPARE}, down-after ${downAfter}, ${workers} repair workers, rate unlimited; repair service: ${(repairBytes / MiB).toFixed(0)} MiB written, ${Number.isFinite(busyRate) ? busyRate.toFixed(0) : 'n/a'} MB/s while busy${verified ? '; a rebuilt object read back verified' : verifyError ? `; READ-BACK FAILED: ${verifyError}` : ''}${disk === null ? '; disk bandwidth not measured (run "machine" too)' : ''}`,
      },
      {
        id: 'repair.time-to-full',
        workload: 'repair: time to full redundancy after SIGKILL',
        unit: 's',
        cairn: timeToFull,
        peer: null,
        ratio: null,
        note: fullAt === undefined ? `not reached within the budget; ${lastDegraded} segments still degraded` : `includes down-after ${downAfter}`,
      },
      {
        id: 'repair.cpu',
        workload: 'repair: server CPU per MB rebuilt',
        unit: 'ms',
        cairn: cpuMsPerMB,
        peer: null,
        ratio: null,
        note: cpu ? cpuSplit(cpu) : undefined,
      },
    ];
    if (verifyError) process.exitCode = 1;
    return {
      rows,
      details: { cpuCores: cpu ? Object.fromEntries(cpu.cores) : null, machineBusy: cpu?.machineBusy ?? null, objects: written.length, objectSize, victimShardBytes: victimShards.bytes, victimShardFiles: victimShards.files, downAfterSeconds: downAt !== undefined ? (downAt - killedAt) / 1000 : null, windowSeconds, timeToFull, repairMbps, repairServiceBytes: repairBytes, repairServiceBusyMBps: busyRate, verified },
    };
  } finally {
    await cairn.stop();
  }
}

/** "repair process 0.85 cores, storage nodes 0.62, ...; machine 81% busy": one core per process is a ceiling. */
function cpuSplit(cpu: RebuildCpu): string {
  const parts = [...cpu.cores].map(([label, cores]) => `${label} ${cores.toFixed(2)}`);
  return `cores in use: ${parts.join(', ')}; machine ${(cpu.machineBusy * 100).toFixed(0)}% busy over ${cpu.seconds.toFixed(1)} s`;
}
