// Fault injection on a seeded schedule. The schedule (when, which fault, and the random draws that
// choose its target and timing) comes from the seed alone; whether a planned fault can run depends
// on the cluster, through one gate:
//
//   a storage node may be lost (killed, stopped, restarted) only if fewer than m nodes are impaired
//   (down, or under a quota and so due for another restart) and no segment would then be missing
//   more than m shards — counting shards never written (null placements), shards on nodes that are
//   not up or that the harness took out, and flipped bits nobody healed yet. A bit may be flipped
//   only in a segment that is missing nothing.
//
// So "the data survives any m failures" is exercised exactly up to its promise and never beyond:
// a node restarted before repair filled in what it missed still holds its slot, through the null
// placements the gate counts. Gate checks and the act they allow happen under one lock.
import type { ClusterControl } from './control.js';
import { sleep } from './control.js';
import type { Flip, FlipTracker } from './flips.js';
import type { History } from './history.js';
import type { LossEvent, Monitor } from './monitor.js';
import { Prng } from './prng.js';
import { atRiskWithout, segmentsOn, type RedundancySnapshot } from './redundancy.js';
import { COLD_PREFIX } from './workload.js';

export type FaultType =
  | 'node-kill' | 'node-loss' | 'node-restart' | 'node-pause' | 'gateway-kill' | 'repair-kill' | 'bit-flip' | 'shard-loss' | 'disk-full';
export const FAULT_TYPES: FaultType[] = [
  'node-kill', 'node-loss', 'node-restart', 'node-pause', 'gateway-kill', 'repair-kill', 'bit-flip', 'shard-loss', 'disk-full',
];

const WEIGHTS: Record<FaultType, number> = {
  'node-kill': 3, 'node-loss': 2, 'node-restart': 1, 'node-pause': 1, 'gateway-kill': 2, 'repair-kill': 1.5, 'bit-flip': 3, 'shard-loss': 1, 'disk-full': 1,
};
const DRAWS_PER_FAULT = 6;
const GATE_RETRY_MS = 10_000;
const GATE_POLL_MS = 1_000;
const PRECONDITION_WAIT_MS = 10_000;
const MiB = 1024 * 1024;

export interface PlannedFault {
  at: number;
  type: FaultType;
  draws: number[];
}

export interface FaultRecord {
  type: FaultType;
  plannedAt: number;
  at?: number;
  end?: number;
  target?: string;
  outcome: 'injected' | 'skipped' | 'error';
  note: string;
}

export interface FaultOptions {
  m: number;
  downAfterMs: number;
  /** How long a lost node stays down waiting for repair to move its shards elsewhere. */
  lossBoundMs: number;
  /** A flipped bit nobody healed in this long is put back by the harness. */
  flipLifetimeMs: number;
  /** Why the disk-full fault cannot run, if it cannot. */
  diskFullUnsupported?: string;
}

/** The seeded schedule: one fault every meanInterval × U(0.5, 1.5), after a warm-up, none in the last tenth. */
export function planFaults(opts: { seed: number; durationMs: number; meanIntervalMs: number }): PlannedFault[] {
  const prng = new Prng(opts.seed, 'faults');
  const plan: PlannedFault[] = [];
  const last = opts.durationMs * 0.9;
  for (let at = Math.min(5_000, opts.durationMs * 0.1); ; ) {
    at += opts.meanIntervalMs * (0.5 + prng.next());
    const type = prng.weighted(WEIGHTS);
    const draws = Array.from({ length: DRAWS_PER_FAULT }, () => prng.next());
    if (at > last) return plan;
    plan.push({ at, type, draws });
  }
}

export class FaultInjector {
  readonly records: FaultRecord[] = [];
  private readonly active = new Set<Promise<void>>();
  private lock: Promise<void> = Promise.resolve();
  private ending = false;

  constructor(
    private readonly control: ClusterControl,
    private readonly monitor: Monitor,
    private readonly flips: FlipTracker,
    private readonly history: History,
    private readonly opts: FaultOptions,
    private readonly log: (line: string) => void,
  ) {}

  /** Runs the plan until `stopAt` (run time), then lets running faults finish and undoes them. */
  async run(plan: PlannedFault[], stopAt: number): Promise<void> {
    for (const fault of plan) {
      if (!(await this.waitUntil(fault.at, stopAt))) break;
      this.track(this.execute(fault));
    }
    await this.waitUntil(stopAt, stopAt);
    this.ending = true;
    while (this.active.size > 0) await Promise.all([...this.active]);
  }

  private track(task: Promise<void>): void {
    const wrapped = task.finally(() => this.active.delete(wrapped));
    this.active.add(wrapped);
  }

  /** Sleeps until `at`, meanwhile reverting flips nobody healed; false if `stopAt` comes first. */
  private async waitUntil(at: number, stopAt: number): Promise<boolean> {
    while (this.history.now() < Math.min(at, stopAt)) {
      await this.revertStaleFlips();
      await sleep(Math.min(500, Math.max(0, Math.min(at, stopAt) - this.history.now())));
    }
    return this.history.now() < stopAt;
  }

  private async revertStaleFlips(): Promise<void> {
    const stale = (): Flip[] => this.flips.outstanding().filter((f) => this.history.now() - f.at >= this.opts.flipLifetimeMs);
    if (stale().length === 0) return;
    // A fresh look first, so a flip the cluster healed since the last poll is credited to it.
    await this.flips.refresh(await this.monitor.scan()).catch(() => undefined);
    for (const flip of stale()) {
      await this.flips.revert(flip);
      this.log(`bit-flip in ${flip.shardId} on ${flip.nodeId} not healed in ${this.opts.flipLifetimeMs / 1000}s: put back by the harness`);
    }
  }

  private async execute(fault: PlannedFault): Promise<void> {
    const record: FaultRecord = { type: fault.type, plannedAt: fault.at, outcome: 'skipped', note: '' };
    this.records.push(record);
    try {
      await this.dispatch(fault, record);
    } catch (err) {
      record.outcome = 'error';
      record.note = err instanceof Error ? err.message : String(err);
      this.log(`fault ${fault.type} failed: ${record.note}`);
    }
    record.end = this.history.now();
  }

  private dispatch(fault: PlannedFault, record: FaultRecord): Promise<void> {
    switch (fault.type) {
      case 'node-kill':
        return this.nodeDown(fault, record, 'SIGKILL', 'short');
      case 'node-restart':
        return this.nodeDown(fault, record, 'SIGTERM', 'none');
      case 'node-loss':
        return this.nodeDown(fault, record, 'SIGKILL', 'until-rebuilt');
      case 'disk-full':
        return this.diskFull(fault, record);
      case 'gateway-kill':
        return this.gatewayKill(fault, record);
      case 'repair-kill':
        return this.repairKill(fault, record);
      case 'node-pause':
        return this.nodePause(fault, record);
      case 'bit-flip':
        return this.damageShard(fault, record, 'bit');
      case 'shard-loss':
        return this.damageShard(fault, record, 'missing');
    }
  }

  // ---- the gate ----

  private async withLock<T>(fn: () => Promise<T>): Promise<T> {
    const previous = this.lock;
    let release!: () => void;
    this.lock = new Promise<void>((resolve) => (release = resolve));
    await previous;
    try {
      return await fn();
    } finally {
      release();
    }
  }

  /**
   * Takes a storage node out (via `act`, under the lock) once the gate allows one; retries for a
   * while, then gives up and says why in the record.
   */
  private async takeNode(draw: number, record: FaultRecord, act: (nodeId: string) => Promise<void>): Promise<string | undefined> {
    const deadline = this.history.now() + GATE_RETRY_MS;
    let reason = '';
    while (!this.ending) {
      const chosen = await this.withLock(async () => {
        const pick = this.eligibleNode(await this.monitor.scan(), draw);
        if (typeof pick === 'string' && pick.startsWith('!')) {
          reason = pick.slice(1);
          return undefined;
        }
        await act(pick);
        return pick;
      });
      if (chosen) return chosen;
      if (this.history.now() > deadline) break;
      await sleep(GATE_POLL_MS);
    }
    record.note = `gate: ${reason || 'run ending'}`;
    return undefined;
  }

  /** A node the gate lets go, or "!reason". */
  private eligibleNode(snapshot: RedundancySnapshot, draw: number): string {
    const impaired = this.control.impaired();
    if (impaired.size >= this.opts.m) return `!${impaired.size} nodes already impaired (${[...impaired.keys()].sort().join(', ')})`;
    const running = this.control.nodeIds.filter((id) => !impaired.has(id) && this.control.isRunning(id));
    const safe = running.filter((id) => atRiskWithout(snapshot, id, this.opts.m).length === 0);
    if (safe.length === 0) return `!every node holds a shard of a segment already missing ${this.opts.m}`;
    return safe[Math.floor(draw * safe.length)]!;
  }

  // ---- storage nodes ----

  private async nodeDown(fault: PlannedFault, record: FaultRecord, signal: NodeJS.Signals, hold: 'none' | 'short' | 'until-rebuilt'): Promise<void> {
    let loss: LossEvent | undefined;
    const kind = fault.type === 'node-loss' || fault.type === 'node-restart' ? fault.type : 'node-kill';
    const nodeId = await this.takeNode(fault.draws[0]!, record, async (id) => {
      await this.control.killNode(id, signal);
      loss = this.monitor.recordLoss(id, kind);
    });
    if (!nodeId || !loss) return;
    this.inject(record, nodeId, `${signal}, ${loss.segmentsOnNode} segments on it`);
    if (hold === 'short') await this.hold(1_000 + fault.draws[1]! * Math.max(0, this.opts.downAfterMs * 0.8 - 1_000));
    if (hold === 'until-rebuilt') await this.holdUntilRebuilt(loss);
    const wipe = hold === 'until-rebuilt' && fault.draws[2]! < 0.5 && (await this.safeToWipe(nodeId));
    if (wipe) await this.control.wipeShards(nodeId);
    await this.control.startNode(nodeId);
    loss.restartedAt = this.history.now();
    loss.wiped = wipe;
    record.note += `; back after ${seconds(loss.restartedAt - loss.killedAt)}${wipe ? ' with an empty disk (replaced)' : ''}`;
    if (hold === 'until-rebuilt') record.note += `; ${rebuildNote(loss)}`;
  }

  /** SIGSTOP for 2–8 s (sometimes past CAIRN_DOWN_AFTER), then SIGCONT: a hung node, not a dead one. */
  private async nodePause(fault: PlannedFault, record: FaultRecord): Promise<void> {
    let loss: LossEvent | undefined;
    const nodeId = await this.takeNode(fault.draws[0]!, record, async (id) => {
      this.control.pauseNode(id);
      loss = this.monitor.recordLoss(id, 'node-pause');
    });
    if (!nodeId || !loss) return;
    this.inject(record, nodeId, `SIGSTOP, ${loss.segmentsOnNode} segments on it`);
    await this.hold(2_000 + fault.draws[1]! * 6_000);
    await this.control.resumeNode(nodeId);
    loss.restartedAt = this.history.now();
    record.note += `; SIGCONT after ${seconds(loss.restartedAt - loss.killedAt)}`;
  }

  /** Keeps a lost node down until no object references it any more (repair moved it all), or the bound. */
  private async holdUntilRebuilt(loss: LossEvent): Promise<void> {
    const deadline = loss.killedAt + this.opts.downAfterMs + this.opts.lossBoundMs;
    while (!this.ending && loss.rebuiltAt === undefined && this.history.now() < deadline) await sleep(500);
    loss.cutShort = this.ending && loss.rebuiltAt === undefined;
    if (loss.rebuiltAt === undefined && !loss.cutShort) loss.leftOn = await this.stillOn(loss.nodeId);
  }

  /** What still references a lost node that repair did not finish: a lead for whoever debugs repair. */
  private async stillOn(nodeId: string): Promise<string> {
    const snapshot = await this.monitor.scan().catch(() => undefined);
    const left = snapshot?.segments.filter((s) => s.placements.some((p) => p.nodeId === nodeId)) ?? [];
    const shown = left.slice(0, 3).map((s) => `${s.key}${s.upload ? ` (upload part ${s.upload.partNumber})` : ''} seg ${s.segment} v ${s.versionId} on [${s.placements.map((p) => p.nodeId ?? 'null').join(',')}] lost ${s.why.join(' ')}`);
    this.log(`node-loss ${nodeId}: ${left.length} segments still on it after the bound: ${shown.join('; ')}`);
    return `${left.length} segments left, e.g. ${shown.join('; ')}`;
  }

  /** A lost node's disk may be replaced only when no segment (object or upload part) references it. */
  private async safeToWipe(nodeId: string): Promise<boolean> {
    return this.withLock(async () => segmentsOn(await this.monitor.scan(), nodeId) === 0);
  }

  private async diskFull(fault: PlannedFault, record: FaultRecord): Promise<void> {
    if (this.opts.diskFullUnsupported) {
      record.note = this.opts.diskFullUnsupported;
      return;
    }
    const nodeId = await this.takeNode(fault.draws[0]!, record, async (id) => {
      await this.control.killNode(id, 'SIGTERM');
      this.control.fullNodes.add(id);
    });
    if (!nodeId) return;
    try {
      const used = (await this.control.namespace.getNode(nodeId)).usedBytes;
      const quota = used + 2 * MiB;
      await this.control.startNode(nodeId, ['--max-bytes', String(quota)]);
      this.inject(record, nodeId, `restarted with --max-bytes ${quota} (${used} B used)`);
      await this.hold(5_000 + fault.draws[1]! * 10_000);
      await this.control.killNode(nodeId, 'SIGTERM');
      await this.control.startNode(nodeId);
    } finally {
      this.control.fullNodes.delete(nodeId);
    }
  }

  // ---- gateways and repair ----

  private async gatewayKill(fault: PlannedFault, record: FaultRecord): Promise<void> {
    const running = this.control.gateways.filter((g) => this.control.isRunning(g.name));
    // Never both at once: one gateway down is the fault; none up only makes every client fail.
    if (running.length < this.control.gateways.length) {
      record.note = 'another gateway is down';
      return;
    }
    const gateway = running[Math.floor(fault.draws[0]! * running.length)]!.name;
    const upload = await this.waitFor(() => this.history.inFlight().find((w) => w.gateway === gateway && (w.value?.size ?? 0) >= MiB));
    await this.control.killGateway(gateway);
    this.inject(record, gateway, upload ? `mid-upload of ${upload.key} (${upload.value?.size} B, op #${upload.opId})` : 'no large upload was in flight');
    await this.hold(500 + fault.draws[1]! * 2_500);
    await this.control.startGateway(gateway);
  }

  private async repairKill(fault: PlannedFault, record: FaultRecord): Promise<void> {
    if (!this.control.isRunning('repair')) {
      record.note = 'repair is already down';
      return;
    }
    const busy = await this.waitFor(() => (this.monitor.repair.rebuilding() || this.nodeDownPastGrace() ? true : undefined));
    await this.control.killRepair();
    const queued = this.monitor.repair.queuedNow;
    const why = this.nodeDownPastGrace() ? 'a lost node not yet rebuilt' : 'work queued';
    this.inject(record, 'repair', busy ? `mid-rebuild (${queued} queued by its rebuild workers; ${why})` : 'repair was idle');
    await this.hold(500 + fault.draws[1]! * 2_500);
    await this.control.startRepair();
  }

  /** A node down past CAIRN_DOWN_AFTER whose shards are not all rebuilt yet: repair must be at work on it. */
  private nodeDownPastGrace(): boolean {
    const now = this.history.now();
    return this.monitor.losses.some((l) => l.restartedAt === undefined && l.rebuiltAt === undefined && now - l.killedAt > this.opts.downAfterMs);
  }

  // ---- bit rot ----

  /** A flipped bit in, or the loss of, one shard of a segment that is missing nothing. */
  private async damageShard(fault: PlannedFault, record: FaultRecord, kind: Flip['kind']): Promise<void> {
    const flip = await this.withLock(async () => {
      const snapshot = await this.monitor.scan();
      const flipped = new Set(this.flips.outstanding().map((f) => `${f.versionId}#${f.segment}`));
      const all = snapshot.segments.filter((s) => !s.upload && s.lost.length === 0 && !flipped.has(`${s.versionId}#${s.segment}`));
      // Cold objects are never overwritten, so a flip in one stays until the cluster heals it.
      const cold = all.filter((s) => s.key.startsWith(COLD_PREFIX));
      const intact = cold.length > 0 && fault.draws[5]! < 0.75 ? cold : all;
      if (intact.length === 0) return undefined;
      const segment = intact[Math.floor(fault.draws[0]! * intact.length)]!;
      const index = Math.floor(fault.draws[1]! * segment.placements.length);
      return kind === 'bit' ? this.flips.inject(segment, index, fault.draws.slice(2)) : this.flips.hide(segment, index, this.control.hiddenDir);
    });
    if (!flip) {
      record.note = 'no fully redundant segment with its shard file on disk';
      return;
    }
    const where = kind === 'bit' ? ` block ${flip.block}` : ' file removed';
    this.inject(record, flip.nodeId, `${flip.key} segment ${flip.segment} shard ${flip.index}${where} (${flip.shardId})`);
  }

  // ---- helpers ----

  private inject(record: FaultRecord, target: string, note: string): void {
    record.outcome = 'injected';
    record.at = this.history.now();
    record.target = target;
    record.note = note;
    this.log(`fault ${record.type} → ${target}: ${note}`);
  }

  /** Waits (bounded) for a precondition; returns its value, or undefined if it never held. */
  private async waitFor<T>(probe: () => T | undefined): Promise<T | undefined> {
    const deadline = this.history.now() + PRECONDITION_WAIT_MS;
    for (;;) {
      const value = probe();
      if (value !== undefined || this.ending || this.history.now() > deadline) return value;
      await sleep(100);
    }
  }

  /** Sleeps, but no longer once the run is ending. */
  private async hold(ms: number): Promise<void> {
    const until = this.history.now() + ms;
    while (!this.ending && this.history.now() < until) await sleep(Math.min(250, until - this.history.now()));
  }
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

function rebuildNote(loss: LossEvent): string {
  if (loss.rebuiltAt !== undefined) return `rebuilt elsewhere after ${seconds(loss.rebuiltAt - loss.killedAt)}`;
  return loss.cutShort ? 'back early: the run ended' : `NOT rebuilt while down (${loss.leftOn})`;
}
