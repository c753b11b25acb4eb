// What every workload gets and returns.
import type { BenchConfig } from '../config.js';
import type { Pattern } from '../data.js';
import type { MachineLimits } from '../machine.js';
import type { FloorSystem } from '../floor/floor.js';
import type { PeerSystem } from '../peer/peer.js';
import type { Row } from '../report.js';
import type { CairnSystem, System } from '../systems.js';

export interface BenchContext {
  cfg: BenchConfig;
  pattern: Pattern;
  log: (line: string) => void;
  /** The main Cairn cluster (k=4, m=2, 6 nodes), when a workload that needs it is selected. */
  cairn?: CairnSystem;
  peer?: PeerSystem;
  /** Cairn first, then the peer (those that are running). */
  systems: System[];
  /** The least work of Cairn's shape (floor/floor.ts), for the large and small workloads. */
  floor?: FloorSystem;
  /** Measured at the start of the run (when "machine" is selected). */
  machine?: MachineLimits;
  /** Aborts when the workload's time budget is spent: stop starting work, report what was done. */
  signal: AbortSignal;
  /** Objects one workload leaves for another (e.g. the multipart object the ranged GETs read). */
  shared: Map<string, unknown>;
}

export interface WorkloadResult {
  rows: Row[];
  details: Record<string, unknown>;
}

export type Workload = (ctx: BenchContext) => Promise<WorkloadResult>;

export const BUCKET = 'bench';

/** The systems a workload that also measures the floor runs: Cairn, the peer, then the floor. */
export function withFloor(ctx: BenchContext): System[] {
  return ctx.floor ? [...ctx.systems, ctx.floor] : ctx.systems;
}

/** The note of a row that sets Cairn against the floor: what the floor made against s3rver. */
export function floorNote(floor: number | null, peer: number | null, unit: string, extra = ''): string {
  const ratio = floor !== null && peer !== null && peer > 0 ? `${(floor / peer).toFixed(2)}× s3rver's ${peer.toFixed(peer >= 100 ? 0 : 1)} ${unit}` : 'n/a against s3rver';
  return `the floor (the least work of Cairn's shape, bench/floor) made ${ratio}${extra}`;
}

/** Throws if the budget ran out before a workload could measure anything meaningful. */
export function checkBudget(signal: AbortSignal, what: string): void {
  if (signal.aborted) throw new Error(`${what}: time budget exhausted`);
}
