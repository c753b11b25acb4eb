// The benchmark suite: `npm run bench -- [--quick] [--only a,b] [--out DIR] [--keep]`.
//
// Measures the machine's raw limits, starts a Cairn cluster (k=4, m=2, 6 storage nodes) and the
// baseline peer (s3rver) side by side on this machine, runs each workload against both (each
// bounded in time and count, every byte it reads verified), the large and small ones against the
// floor too (the least work of Cairn's shape, floor/floor.ts), then a repair test on a cluster of
// its own. Prints a table (workload, Cairn, peer, ratio, target, pass/fail), appends one JSON line
// to <out>/results.jsonl and writes an SVG chart next to it. Missed targets never fail the run;
// the exit code is 1 only when the bench itself broke (a workload crashed, bytes read back wrong).
// Every process and temp dir is removed at the end, on failure and on Ctrl-C.
import { cleanupAll, installSignalHandlers, interrupted, setKeepDirs } from './cleanup.js';
import { parseConfig, type WorkloadName } from './config.js';
import { Pattern, verificationFailures } from './data.js';
import { FloorSystem } from './floor/floor.js';
import { measureMachine } from './machine.js';
import { PeerSystem, S3RVER_VERSION } from './peer/peer.js';
import { failedRow, renderTable, type Row } from './report.js';
import { hostInfo, runRecord, saveRun } from './results.js';
import { errorText } from './stats.js';
import { BENCH_USER, CairnSystem, type System } from './systems.js';
import type { BenchContext, WorkloadResult } from './workloads/context.js';
import { degradedReads } from './workloads/degraded.js';
import { settleDisk } from './workloads/common.js';
import { largeObjects } from './workloads/large.js';
import { listFixture, listing, type PopulateStats } from './workloads/list.js';
import { multipart } from './workloads/multipart.js';
import { rangedGets } from './workloads/ranged.js';
import { repairThroughput } from './workloads/repair.js';
import { gatewayMemory } from './workloads/rss.js';
import { smallObjects } from './workloads/small.js';

installSignalHandlers();
const cfg = parseConfig();
setKeepDirs(cfg.keep);
const startedAt = new Date();
const t0 = performance.now();
const log = (line: string): void => {
  const s = ((performance.now() - t0) / 1000).toFixed(1).padStart(6);
  process.stdout.write(`[${s}s] ${line}\n`);
};

const rows: Row[] = [];
const failures: string[] = [];
const details: Record<string, unknown> = {};
const has = (w: WorkloadName): boolean => cfg.only.has(w);
const host = hostInfo();
log(`Cairn bench (${cfg.mode}): ${[...cfg.only].join(', ')} — ${host.cpus} × ${host.cpuModel}, Node ${host.node}`);

const ctx: BenchContext = {
  cfg,
  pattern: new Pattern(),
  log,
  systems: [],
  signal: new AbortController().signal,
  shared: new Map(),
};

/** Runs one workload under its time budget; a crash becomes a FAILED row and the run goes on. */
async function run(name: WorkloadName, budgetMs: number, fn: (ctx: BenchContext) => Promise<WorkloadResult>): Promise<void> {
  if (interrupted()) return;
  log(`== ${name} (budget ${(budgetMs / 1000).toFixed(0)} s)`);
  // The budget stops new work at budgetMs (each workload paces itself); this hard stop aborts in-flight requests.
  const hard = new AbortController();
  const timer = setTimeout(() => hard.abort(new Error(`${name}: hard time limit`)), budgetMs * 1.5 + 10_000);
  const started = performance.now();
  try {
    if (name !== 'machine') await settleDisk(log);
    const result = await fn({ ...ctx, signal: hard.signal });
    rows.push(...result.rows);
    details[name] = result.details;
  } catch (err) {
    if (interrupted()) return;
    const why = errorText(err);
    log(`  ${name} FAILED: ${why}`);
    failures.push(`${name}: ${why}`);
    rows.push(failedRow(name, name, why));
    process.exitCode = 1;
  } finally {
    clearTimeout(timer);
    log(`   ${name} took ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
}

const MAIN_CLUSTER: WorkloadName[] = ['large', 'multipart', 'ranged', 'small', 'list', 'rss', 'degraded'];
const WITH_PEER: WorkloadName[] = ['large', 'multipart', 'ranged', 'small', 'list', 'rss'];
const WITH_FLOOR: WorkloadName[] = ['large', 'small'];

try {
  if (has('machine')) {
    await run('machine', cfg.machine.budgetMs * 5, async (c) => {
      const r = await measureMachine(c);
      ctx.machine = r.limits;
      return r;
    });
  }

  let listStats: (() => PopulateStats | undefined) | undefined;
  let cairn: CairnSystem | undefined;
  let peer: PeerSystem | undefined;
  if (MAIN_CLUSTER.some(has) && !interrupted()) {
    const fixture = has('list') && cfg.list.populateVia === 'store' ? listFixture(log, cfg.list.keys, cfg.list.dirs, BENCH_USER) : undefined;
    listStats = fixture?.stats;
    log(`== starting Cairn (k=${cfg.cluster.k}, m=${cfg.cluster.m}, ${cfg.cluster.nodes} storage nodes)`);
    cairn = await CairnSystem.start({ ...cfg.cluster, prepare: fixture?.prepare, log });
    ctx.cairn = cairn;
  }
  if (WITH_PEER.some(has) && !interrupted()) {
    try {
      peer = await PeerSystem.start(log);
      ctx.peer = peer;
    } catch (err) {
      const why = `s3rver ${S3RVER_VERSION} did not start: ${errorText(err)}`;
      log(`  ${why} — peer columns will be n/a`);
      failures.push(why);
    }
  }
  if (WITH_FLOOR.some(has) && !interrupted()) {
    try {
      ctx.floor = await FloorSystem.start(log);
    } catch (err) {
      const why = `the floor did not start: ${errorText(err)}`;
      log(`  ${why} — no Cairn vs floor rows`);
      failures.push(why);
    }
  }
  ctx.systems = [cairn, peer].filter((s): s is CairnSystem | PeerSystem => s !== undefined) as System[];

  if (has('large')) await run('large', cfg.large.budgetMs, largeObjects);
  if (has('multipart')) await run('multipart', cfg.multipart.budgetMs, multipart);
  if (has('ranged')) await run('ranged', cfg.ranged.budgetMs + cfg.multipart.budgetMs, rangedGets);
  if (has('small')) await run('small', cfg.small.budgetMs, smallObjects);
  if (has('list')) await run('list', cfg.list.budgetMs + (cfg.list.populateVia === 'client' ? 600_000 : 0), (c) => listing(c, listStats));
  if (has('rss')) await run('rss', cfg.rss.budgetMs, gatewayMemory);
  if (has('degraded')) await run('degraded', cfg.degraded.budgetMs, degradedReads);

  // The repair test runs on a cluster of its own; free the machine first.
  await ctx.floor?.stop();
  ctx.floor = undefined;
  await peer?.stop();
  await cairn?.stop();
  ctx.cairn = undefined;
  ctx.peer = undefined;
  ctx.systems = [];
  if (has('repair')) await run('repair', cfg.repair.budgetMs, repairThroughput);
} catch (err) {
  const why = errorText(err);
  log(`bench FAILED: ${why}`);
  failures.push(why);
  process.exitCode = 1;
} finally {
  await cleanupAll();
}

if (verificationFailures.count > 0) {
  failures.push(`${verificationFailures.count} reads returned wrong bytes (first: ${verificationFailures.first})`);
  process.exitCode = 1;
}

const record = runRecord(cfg, startedAt, rows, failures, details);
console.log('');
console.log(renderTable(rows));
if (failures.length) console.log(`\nproblems:\n${failures.map((f) => `  - ${f}`).join('\n')}`);
const saved = await saveRun(cfg.outDir, record);
console.log(`\nrun took ${record.durationSeconds.toFixed(0)} s; appended to ${saved.jsonl}; chart ${saved.svg}`);
