// One chaos run, start to finish: a real cluster in a temp dir (8 storage nodes, two gateways,
// repair), the seeded workload and faults side by side, then healing, the final checks, and the
// report. Everything is bounded: the workload by its duration and per-operation timeouts, faults
// by their holds, healing by --heal-timeout.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { parseDuration } from '../../common/duration.js';
import { startCluster, type Cluster } from '../../deploy/cluster.js';
import { Checker } from './checker.js';
import { ClusterControl, sleep, type GatewayInfo } from './control.js';
import { ValueSource } from './data.js';
import { summarizeFailures } from './failures.js';
import { FaultInjector, planFaults } from './faults.js';
import { FlipTracker } from './flips.js';
import { History } from './history.js';
import { Monitor } from './monitor.js';
import { reproduceCommand, type ChaosOptions } from './options.js';
import { Prng } from './prng.js';
import { describeSnapshot, isFullyRedundant } from './redundancy.js';
import { formatReport, type ChaosReport, type DegradedCheck, type HealResult } from './report.js';
import { s3Client } from './s3ops.js';
import { verifyAllKeys, verifyListings, type GatewayClient, type VerifyContext } from './verify.js';
import { Workload } from './workload.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BUCKET = 'chaos';
const CREDENTIALS = { accessKeyId: 'chaos-key', secretAccessKey: 'chaos-secret-0123456789' };
const SECOND_GATEWAY = 'gateway-2';
const MONITOR_INTERVAL_MS = 2_000;

export interface ChaosResult {
  report: ChaosReport;
  text: string;
  exitCode: number;
}

interface Run {
  opts: ChaosOptions;
  log: (line: string) => void;
  history: History;
  checker: Checker;
  values: ValueSource;
  control: ClusterControl;
  flips: FlipTracker;
  monitor: Monitor;
  workload: Workload;
  faults: FaultInjector;
}

export async function runChaos(opts: ChaosOptions, print: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): Promise<ChaosResult> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-chaos-'));
  const wallStart = Date.now();
  let cluster: Cluster | undefined;
  let run: Run | undefined;
  try {
    cluster = await startCluster({
      dataDir, port: 0, ...CREDENTIALS, nodes: opts.nodes, k: opts.k, m: opts.m, blockSize: opts.blockSize,
      segmentSize: opts.segmentSize, downAfter: opts.downAfter, echoLogs: opts.echoLogs,
      // Shard files the harness deletes must be found by the audit within the run, like flipped bits by the scrubber.
      repair: { scrubInterval: opts.scrubInterval, auditInterval: opts.scrubInterval, gcGrace: opts.gcGrace },
    });
    run = await prepare(opts, cluster, dataDir, print);
    const report = await execute(run, dataDir, wallStart);
    const text = formatReport(report);
    return { report, text, exitCode: report.violations.length > 0 ? 1 : 0 };
  } finally {
    await teardown(cluster, run, dataDir, opts.keep, print);
  }
}

async function prepare(opts: ChaosOptions, cluster: Cluster, dataDir: string, print: (line: string) => void): Promise<Run> {
  const second = await cluster.startGateway(SECOND_GATEWAY, 0);
  const gateways: GatewayInfo[] = [cluster.services.get('gateway')!.ready, second.ready].map((r, i) => ({
    name: i === 0 ? 'gateway' : SECOND_GATEWAY,
    endpoint: r.url,
    port: Number(new URL(r.url).port),
  }));
  const admin = s3Client(gateways[0]!.endpoint, CREDENTIALS);
  await admin.send(new CreateBucketCommand({ Bucket: BUCKET }));
  admin.destroy();
  const history = new History();
  const log = (line: string): void => print(`[+${(history.now() / 1000).toFixed(1).padStart(6)}s] ${line}`);
  const values = new ValueSource(opts.seed);
  const checker = new Checker(history, values);
  const control = new ClusterControl(cluster, dataDir, gateways, () => history.now(), log);
  const flips = new FlipTracker((id) => control.nodeDir(id), () => history.now());
  const monitor = new Monitor(control, flips, { bucket: BUCKET, width: opts.k + opts.m, intervalMs: MONITOR_INTERVAL_MS }, () => history.now());
  const workload = new Workload(
    { seed: opts.seed, clients: opts.clients, keyCount: opts.keys, bucket: BUCKET, gateways, credentials: CREDENTIALS, maxSize: opts.maxSize,
      segmentSize: opts.segmentSize, blockSize: opts.blockSize, k: opts.k, opTimeoutMs: opts.opTimeoutMs },
    history, checker, values, log,
  );
  const faults = new FaultInjector(control, monitor, flips, history, {
    m: opts.m, downAfterMs: parseDuration(opts.downAfter), lossBoundMs: opts.lossBoundMs, flipLifetimeMs: opts.flipLifetimeMs,
    diskFullUnsupported: await diskFullUnsupported(),
  }, log);
  return { opts, log, history, checker, values, control, flips, monitor, workload, faults };
}

async function execute(run: Run, dataDir: string, wallStart: number): Promise<ChaosReport> {
  const { opts, log, history, monitor } = run;
  log(`chaos: seed ${opts.seed}, ${opts.durationMs / 1000}s workload, ${opts.nodes} nodes (k=${opts.k} m=${opts.m}), ${opts.clients} clients, data in ${dataDir}`);
  await run.workload.preload();
  monitor.start();
  // The plan counts from the start of the workload (after the cold keys were written).
  const start = history.now();
  const plan = planFaults({ seed: opts.seed, durationMs: opts.durationMs, meanIntervalMs: opts.faultIntervalMs }).map((f) => ({ ...f, at: start + f.at }));
  const until = start + opts.durationMs;
  await Promise.all([run.workload.run(until), run.faults.run(plan, until)]);
  log(`workload and faults stopped: ${history.writes.length} writes, ${history.reads.length} reads; healing`);
  await restoreAll(run);
  const ctx: VerifyContext = { history, checker: run.checker, bucket: BUCKET, keys: run.workload.keys, opTimeoutMs: opts.opTimeoutMs, log };
  const clients: GatewayClient[] = run.control.gateways.map((g) => ({ name: g.name, s3: run.workload.client(g.name) }));
  const final = await verifyAllKeys(ctx, clients, 'final-get');
  final.listings = await verifyListings(ctx, clients);
  log(`final check: ${final.verified}/${run.workload.keys.length} keys legal, ${final.objects} objects (${final.bytes} B)`);
  const heal = await waitForRedundancy(run);
  // The monitor's figures are about the run; the degraded check's own losses would only blur them.
  await monitor.stop();
  const degraded = await degradedCheck(run, ctx, clients, heal);
  return assemble(run, final, heal, degraded, wallStart);
}

/** Undoes whatever faults left behind: every node, gateway and the repair service running, no quota. */
async function restoreAll(run: Run): Promise<void> {
  const { control } = run;
  for (const id of control.nodeIds) {
    // A stopped process cannot act on SIGTERM: continue it first.
    if (control.isRunning(id)) control.cluster.services.get(id)?.child.kill('SIGCONT');
    // A node still under a quota, or one whose last restart never re-registered, starts afresh.
    if ((control.fullNodes.has(id) || control.downNodes.has(id)) && control.isRunning(id)) await control.killNode(id, 'SIGTERM');
    control.fullNodes.delete(id);
    if (!control.isRunning(id)) await control.startNode(id);
  }
  for (const g of control.gateways) if (!control.isRunning(g.name)) await control.startGateway(g.name);
  if (!control.isRunning('repair')) await control.startRepair();
}

/** Polls until every segment has all k+m shards, intact, on nodes that are up — or the bound. */
async function waitForRedundancy(run: Run): Promise<HealResult> {
  const { history, monitor, flips, opts, log } = run;
  const start = history.now();
  let last = '';
  while (history.now() - start < opts.healTimeoutMs) {
    try {
      const snapshot = await monitor.scan();
      await flips.refresh(snapshot);
      last = `${describeSnapshot(snapshot, 5)}; ${flips.outstanding().length} flipped shards not healed`;
      if (isFullyRedundant(snapshot) && flips.outstanding().length === 0) {
        const seconds = (history.now() - start) / 1000;
        log(`full redundancy after ${seconds.toFixed(1)}s of healing: ${describeSnapshot(snapshot)}`);
        return { restored: true, seconds, boundSeconds: opts.healTimeoutMs / 1000, state: describeSnapshot(snapshot) };
      }
    } catch (err) {
      last = `scan failed: ${err instanceof Error ? err.message : String(err)}`;
    }
    await sleep(MONITOR_INTERVAL_MS);
  }
  log(`redundancy NOT restored within ${opts.healTimeoutMs / 1000}s: ${last}`);
  run.checker.add({ type: 'redundancy', key: '(cluster)', detail: `not fully redundant ${opts.healTimeoutMs / 1000}s after the faults stopped: ${last}` });
  return { restored: false, seconds: (history.now() - start) / 1000, boundSeconds: opts.healTimeoutMs / 1000, state: last };
}

/** With redundancy back, m nodes are killed and everything must still read back (then they return). */
async function degradedCheck(run: Run, ctx: VerifyContext, clients: GatewayClient[], heal: HealResult): Promise<DegradedCheck> {
  if (!run.opts.degradedCheck) return { skipped: 'disabled (--no-degraded-check)' };
  if (!heal.restored) return { skipped: 'redundancy was not restored, so losing m more nodes would be beyond the promise' };
  const prng = new Prng(run.opts.seed, 'degraded-check');
  const pool = [...run.control.nodeIds];
  const nodes = Array.from({ length: run.opts.m }, () => pool.splice(Math.floor(prng.next() * pool.length), 1)[0]!);
  for (const id of nodes) await run.control.killNode(id, 'SIGKILL');
  run.log(`degraded check: ${nodes.join(', ')} killed; reading everything back`);
  try {
    const outcome = await verifyAllKeys(ctx, clients, 'degraded-get');
    run.log(`degraded check: ${outcome.verified}/${ctx.keys.length} keys legal with ${nodes.join(', ')} down`);
    return { nodes, outcome };
  } finally {
    for (const id of nodes) await run.control.startNode(id);
  }
}

function assemble(run: Run, final: ChaosReport['final'], heal: HealResult, degraded: DegradedCheck, wallStart: number): ChaosReport {
  for (const c of run.control.crashes) {
    run.checker.add({ type: 'crash', key: c.name, detail: `exited on its own at +${(c.at / 1000).toFixed(1)}s (code ${c.code}, signal ${c.signal}); see its log` });
  }
  const lost = new Map(final.lost);
  if ('outcome' in degraded) for (const [k, v] of degraded.outcome.lost) lost.set(k, Math.max(v, lost.get(k) ?? 0));
  return {
    options: run.opts,
    reproduce: reproduceCommand(run.opts),
    wallSeconds: (Date.now() - wallStart) / 1000,
    ops: Object.fromEntries(run.workload.stats),
    failures: summarizeFailures(run.history, run.faults.records),
    faults: run.faults.records,
    flips: run.flips.flips,
    violations: run.checker.violations,
    readsChecked: run.checker.counts.checked,
    final,
    degraded,
    bytesLost: [...lost.values()].reduce((a, b) => a + b, 0),
    heal,
    losses: run.monitor.losses,
    repair: run.monitor.repair,
    maxLostSeen: run.monitor.maxLostSeen,
    maxLostWhere: run.monitor.maxLostWhere,
    scanErrors: run.monitor.scanErrors,
  };
}

async function teardown(cluster: Cluster | undefined, run: Run | undefined, dataDir: string, keep: boolean, print: (line: string) => void): Promise<void> {
  if (run) run.control.closing = true;
  await run?.monitor.stop().catch(() => undefined);
  run?.workload.destroy();
  await run?.control.close().catch(() => undefined);
  if (cluster) {
    await cluster.stop().catch(() => undefined);
    for (const child of cluster.children) child.kill('SIGKILL');
  }
  if (keep) print(`chaos: kept the data dir and logs in ${dataDir}`);
  else await rm(dataDir, { recursive: true, force: true });
}

/** The full-disk fault needs a storage-node quota flag; without it the fault is skipped, and the report says why. */
async function diskFullUnsupported(): Promise<string | undefined> {
  const source = await readFile(path.join(ROOT, 'storage-node', 'main.ts'), 'utf8').catch(() => '');
  return source.includes("'max-bytes'") ? undefined : 'skipped: storage-node/main.ts has no --max-bytes quota flag yet';
}
