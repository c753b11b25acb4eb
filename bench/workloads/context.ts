// What every workload gets and returns.
import type { BenchConfig } from '../config.js';
import type { Pattern } from '../data.js';
import type { MachineLimits } from '../machine.js';
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

/** Throws if the budget ran out before a workload could measure anything meaningful. */
export function checkBudget(signal: AbortSignal, what: string): void {
  if (signal.aborted) throw new Error(`${what}: time budget exhausted`);
}
