// The report of a chaos run: a human-readable page and one JSON summary line (CHAOS_SUMMARY {...})
// for scripts and CI.
import type { Violation } from './checker.js';
import type { FailureSummary } from './failures.js';
import type { FaultRecord, FaultType } from './faults.js';
import { FAULT_TYPES } from './faults.js';
import type { Flip } from './flips.js';
import type { OpType } from './history.js';
import type { LossEvent } from './monitor.js';
import type { ChaosOptions } from './options.js';
import type { RepairStats } from './repair-stats.js';
import type { VerifyOutcome } from './verify.js';
import type { OpStats } from './workload.js';

const MAX_VIOLATIONS_SHOWN = 25;

export interface HealResult {
  restored: boolean;
  seconds: number;
  boundSeconds: number;
  state: string;
}

export type DegradedCheck = { skipped: string } | { nodes: string[]; outcome: VerifyOutcome };

export interface ChaosReport {
  options: ChaosOptions;
  reproduce: string;
  wallSeconds: number;
  ops: Partial<Record<OpType, OpStats>>;
  failures: FailureSummary;
  faults: FaultRecord[];
  flips: Flip[];
  violations: Violation[];
  readsChecked: number;
  final: VerifyOutcome;
  degraded: DegradedCheck;
  bytesLost: number;
  heal: HealResult;
  losses: LossEvent[];
  repair: RepairStats;
  maxLostSeen: number;
  maxLostWhere: string;
  scanErrors: number;
}

export interface ChaosSummary {
  seed: number;
  durationS: number;
  nodes: number;
  clients: number;
  ops: number;
  opsFailed: number;
  opsFailedOtherThanGatewayKills: number;
  faultsInjected: number;
  faultsSkipped: number;
  violations: number;
  bytesLost: number;
  objectsVerified: number;
  redundancyRestored: boolean;
  healS: number;
  repairMBps: number | null;
  maxShardsLostInASegment: number;
  flipsHealed: number;
  flipsRevertedByHarness: number;
  degradedCheck: string;
  wallS: number;
}

export function buildSummary(r: ChaosReport): ChaosSummary {
  const ops = Object.values(r.ops);
  const flipStates = countBy(r.flips, (f) => f.state);
  return {
    seed: r.options.seed,
    durationS: r.options.durationMs / 1000,
    nodes: r.options.nodes,
    clients: r.options.clients,
    ops: ops.reduce((n, s) => n + s.ok + s.failed, 0),
    opsFailed: ops.reduce((n, s) => n + s.failed, 0),
    opsFailedOtherThanGatewayKills: r.failures.total - r.failures.whileGatewayDown,
    faultsInjected: r.faults.filter((f) => f.outcome === 'injected').length,
    faultsSkipped: r.faults.filter((f) => f.outcome !== 'injected').length,
    violations: r.violations.length,
    bytesLost: r.bytesLost,
    objectsVerified: r.final.objects,
    redundancyRestored: r.heal.restored,
    healS: round(r.heal.seconds),
    repairMBps: r.repair.throughput() === null ? null : round(r.repair.throughput()!),
    maxShardsLostInASegment: r.maxLostSeen,
    flipsHealed: (flipStates.get('healed') ?? 0) + (flipStates.get('moved') ?? 0),
    flipsRevertedByHarness: flipStates.get('reverted') ?? 0,
    degradedCheck: 'skipped' in r.degraded ? 'skipped' : `${r.degraded.outcome.verified}/${r.options.keys} with ${r.degraded.nodes.join('+')} down`,
    wallS: round(r.wallSeconds),
  };
}

export function summaryLine(r: ChaosReport): string {
  return `CHAOS_SUMMARY ${JSON.stringify(buildSummary(r))}`;
}

export function formatReport(r: ChaosReport): string {
  const o = r.options;
  return [
    `== Cairn chaos report: ${r.violations.length === 0 ? 'PASS' : `FAIL (${r.violations.length} violations)`} ==`,
    `seed ${o.seed}; ${o.durationMs / 1000}s workload; ${o.nodes} storage nodes (k=${o.k}, m=${o.m}); 2 gateways; ${o.clients} clients; ${o.keys} keys; CAIRN_DOWN_AFTER=${o.downAfter}; scrub every ${o.scrubInterval}; GC grace ${o.gcGrace}; ${round(r.wallSeconds)}s wall`,
    `reproduce: ${r.reproduce}   (same operations and fault plan; the interleaving depends on timing)`,
    '',
    ...opsSection(r),
    '',
    ...faultsSection(r),
    '',
    ...flipsSection(r),
    '',
    ...checksSection(r),
    '',
    ...redundancySection(r),
    '',
    ...violationsSection(r),
    '',
    summaryLine(r),
  ].join('\n');
}

function opsSection(r: ChaosReport): string[] {
  const rows = Object.entries(r.ops).map(([type, s]) =>
    `  ${type.padEnd(11)} ${String(s.ok).padStart(6)} ${String(s.failed).padStart(7)} ${String(s.unknown).padStart(8)} ${String(s.timeouts).padStart(8)} ${mb(s.bytes).padStart(10)}`);
  const f = r.failures;
  const causes = f.otherCauses.map(([cause, n]) => `${n}× ${cause}`).join(', ');
  return [
    'operations   (failed includes unknown-outcome writes and timeouts)',
    `  ${'type'.padEnd(11)} ${'ok'.padStart(6)} ${'failed'.padStart(7)} ${'unknown'.padStart(8)} ${'timeouts'.padStart(8)} ${'MB'.padStart(10)}`,
    ...rows,
    `  ${f.total} failed operations: ${f.whileGatewayDown} while their gateway was being killed; ${f.total - f.whileGatewayDown} otherwise${causes ? ` (${causes})` : ''}`,
    ...f.examples.map((e) => `    e.g. ${e}`),
  ];
}

function faultsSection(r: ChaosReport): string[] {
  const lines = ['faults       injected  skipped'];
  for (const type of FAULT_TYPES) {
    const of = r.faults.filter((f) => f.type === type);
    if (of.length === 0) continue;
    const injected = of.filter((f) => f.outcome === 'injected').length;
    const reasons = [...countBy(of.filter((f) => f.outcome !== 'injected'), (f) => `${f.outcome}: ${f.note}`)].map(([why, n]) => `${n}× ${why}`);
    lines.push(`  ${type.padEnd(12)} ${String(injected).padStart(6)} ${String(of.length - injected).padStart(8)}${reasons.length ? `   (${reasons.join('; ')})` : ''}`);
  }
  lines.push('  timeline:');
  const injected = r.faults.filter((x) => x.outcome === 'injected').sort((a, b) => a.at! - b.at!);
  for (const f of injected) lines.push(`    +${secs(f.at!)} ${faultLabel(f.type)} ${f.target}: ${f.note}`);
  return lines;
}

function flipsSection(r: ChaosReport): string[] {
  const lines: string[] = [];
  for (const [kind, label] of [['bit', 'bit flips'], ['missing', 'lost files']] as const) {
    const of = r.flips.filter((f) => f.kind === kind);
    const states = countBy(of, (f) => f.state);
    const parts = [...states].map(([s, n]) => `${n} ${s}`);
    lines.push(`${label.padEnd(12)} ${of.length} injected${parts.length ? `: ${parts.join(', ')}` : ''}`);
    if (states.get('reverted')) lines.push(`  WARNING: ${states.get('reverted')} were not healed by the cluster within ${r.options.flipLifetimeMs / 1000}s (the harness undid them)`);
    if (states.get('corrupt')) lines.push(`  WARNING: ${states.get('corrupt')} are still not healed at the end`);
  }
  lines.push('  (healed: rewritten in place; moved: repair put the shard elsewhere; superseded: the object was overwritten or deleted first)');
  return lines;
}

function checksSection(r: ChaosReport): string[] {
  const d = r.degraded;
  return [
    `checker      ${r.readsChecked} reads checked against the history; ${r.violations.length} violations`,
    `objects      ${r.final.objects} objects (${mb(r.final.bytes)} MB) and ${r.final.verified - r.final.objects} legally absent keys verified after healing; ${r.final.listings} final listings`,
    `bytes lost   ${r.bytesLost}`,
    'skipped' in d
      ? `degraded     check skipped: ${d.skipped}`
      : `degraded     with ${d.nodes.join(', ')} killed after healing: ${d.outcome.verified}/${r.options.keys} keys read back legal (${d.outcome.objects} objects)`,
  ];
}

function redundancySection(r: ChaosReport): string[] {
  const h = r.heal;
  const tput = r.repair.throughput();
  const lines = [
    h.restored
      ? `redundancy   fully restored ${h.seconds.toFixed(1)}s after the faults stopped (bound ${h.boundSeconds}s)`
      : `redundancy   NOT restored within ${h.boundSeconds}s after the faults stopped: ${h.state}`,
    `  most shards missing from one segment at once: ${r.maxLostSeen} (m=${r.options.m})${r.maxLostWhere ? ` — ${r.maxLostWhere}` : ''}`,
  ];
  if (r.maxLostSeen > r.options.m) lines.push(`  WARNING: a segment was missing more than m shards (unreadable until a node came back): the gate should prevent that`);
  const unrebuilt = r.losses.filter((l) => l.kind === 'node-loss' && l.rebuiltAt === undefined && !l.cutShort).length;
  const parts = r.losses.filter((l) => (l.partsLeft ?? 0) > 0);
  if (parts.length > 0) {
    const where = parts.map((l) => `${l.nodeId} +${secs(l.killedAt)}: ${l.partsLeft}`).join(', ');
    lines.push(`  WARNING: parts of uploads in progress kept shards on lost nodes after their objects were rebuilt (${where} segments): repair does not rebuild uncompleted multipart parts`);
  }
  if (unrebuilt > 0) lines.push(`  WARNING: ${unrebuilt} lost nodes were not rebuilt elsewhere within CAIRN_DOWN_AFTER + ${r.options.lossBoundMs / 1000}s (they came back instead)`);
  lines.push('  node losses (time from the kill):');
  for (const l of r.losses) {
    const back = l.restartedAt !== undefined ? `back at +${secs(l.restartedAt - l.killedAt)}${l.wiped ? ' (empty disk)' : ''}` : 'never back';
    const rebuilt = l.rebuiltAt !== undefined ? `rebuilt elsewhere +${secs(l.rebuiltAt - l.killedAt)}`
      : l.kind !== 'node-loss' ? '' : l.cutShort ? 'brought back early (the run ended)' : 'not rebuilt while down';
    const full = l.fullAt !== undefined ? `full redundancy +${secs(l.fullAt - l.killedAt)}` : 'full redundancy not seen during the run';
    lines.push(`    ${l.nodeId} ${l.kind} at +${secs(l.killedAt)} (${l.segmentsOnNode} segments): ${[back, rebuilt, full].filter(Boolean).join(', ')}`);
  }
  if (!r.repair.available) lines.push(`repair       no rebuild figures: the repair service has no GET /workers${r.repair.lastError ? ` (${r.repair.lastError})` : ''}`);
  else lines.push(`repair       ${mb(r.repair.bytesRebuilt)} MB rebuilt; throughput ${tput === null ? 'n/a (nothing rebuilt)' : `${tput.toFixed(1)} MB/s while rebuilding`}`);
  if (r.scanErrors > 0) lines.push(`  (${r.scanErrors} redundancy scans failed: namespace unreachable or slow)`);
  return lines;
}

function violationsSection(r: ChaosReport): string[] {
  if (r.violations.length === 0) return ['violations   none'];
  const byType = [...countBy(r.violations, (v) => v.type)].map(([t, n]) => `${n} ${t}`).join(', ');
  const lines = [`violations   ${byType}`];
  for (const v of r.violations.slice(0, MAX_VIOLATIONS_SHOWN)) lines.push(`  ${v.type} ${v.key}${v.opId !== undefined ? ` op #${v.opId}` : ''}: ${v.detail}`);
  if (r.violations.length > MAX_VIOLATIONS_SHOWN) lines.push(`  ... and ${r.violations.length - MAX_VIOLATIONS_SHOWN} more`);
  return lines;
}

function faultLabel(t: FaultType): string {
  return t.padEnd(12);
}

function countBy<T>(items: readonly T[], key: (item: T) => string): Map<string, number> {
  const out = new Map<string, number>();
  for (const item of items) out.set(key(item), (out.get(key(item)) ?? 0) + 1);
  return out;
}

function secs(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

function mb(bytes: number): string {
  return (bytes / 1e6).toFixed(1);
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
