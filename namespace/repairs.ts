// The repair queue: the durable record of which segments need a look from the repair service.
// One entry per segment (keys.ts repairKey), so any number of reports about a segment — from
// gateways, the scrubber, degraded commits — make one task. Entries are read-merged-written under
// per-task locks, always taken last (after any object lock), so they never deadlock with commits.
//
// A task id is its key plus a revision that changes with every merge. An ack removes a task only
// if it still has the listed revision: damage reported while repair was working on a task (a
// partial repair re-queueing itself, a fresh corrupt block) survives the ack of the older view.
import { randomBytes } from 'node:crypto';
import { scanRange, type KvEngine, type KvOp } from './engine.js';
import { repairKey } from './keys.js';
import { KeyedLock } from './lock.js';
import { decode, encode } from './records.js';
import type { DamageReport, MultipartUploadRecord, PartRecord, RepairTask, RepairTaskPage, Segment } from './types.js';
import * as v from './validate.js';

/** What is stored under a repair key: the task without its id, plus the revision the id carries. */
type StoredTask = Omit<RepairTask, 'id'> & { rev: string };

const ID_PATTERN = /^([A-Za-z0-9_-]{1,8192})\.([0-9a-f]{12})$/;

const lockName = (key: Buffer): string => key.toString('base64url');
const taskId = (key: Buffer, rev: string): string => `${key.toString('base64url')}.${rev}`;
const newRev = (): string => randomBytes(6).toString('hex');
const reportKey = (r: DamageReport): Buffer => repairKey(r.bucket, r.key, r.versionId, r.segment, r.part);
/** `{ part }` when there is one: object tasks keep their exact stored and listed shape. */
const partOf = (part: number | undefined): { part?: number } => (part === undefined ? {} : { part });

function parseTaskId(id: unknown): { key: Buffer; rev: string } {
  const match = ID_PATTERN.exec(v.text(id, 'repair task id', 12_000));
  const key = match ? Buffer.from(match[1], 'base64url') : undefined;
  // Only canonical base64url round-trips; anything else was not made by this queue.
  if (!match || !key || key.toString('base64url') !== match[1]) v.fail('malformed repair task id');
  return { key, rev: match[2] };
}

const decodeTask = (raw: Buffer | undefined): StoredTask | undefined => (raw === undefined ? undefined : decode<StoredTask>(raw));

function toTask(key: Buffer, s: StoredTask): RepairTask {
  const { bucket, key: name, versionId, segment, reasons, shardIndices, queuedAt } = s;
  return { id: taskId(key, s.rev), bucket, key: name, versionId, segment, ...partOf(s.part), reasons, shardIndices, queuedAt };
}

/**
 * Folds one report into a task. An empty shardIndices means "check the whole segment"; once a
 * report asked for that, narrower reports cannot shrink the check again.
 */
function mergeReport(task: StoredTask | undefined, r: DamageReport, queuedAt: string): StoredTask {
  const wanted = r.shardIndex === undefined ? [] : [r.shardIndex];
  if (!task) {
    const { bucket, key, versionId, segment } = r;
    return { bucket, key, versionId, segment, ...partOf(r.part), reasons: [r.reason], shardIndices: wanted, queuedAt, rev: '' };
  }
  const reasons = task.reasons.includes(r.reason) ? task.reasons : [...task.reasons, r.reason];
  const whole = task.shardIndices.length === 0 || wanted.length === 0;
  const shardIndices = whole ? [] : [...new Set([...task.shardIndices, ...wanted])].sort((a, b) => a - b);
  return { ...task, reasons, shardIndices };
}

/** What owns segments a task can name: an object version (an ObjectRecord is one), or a part of an upload in progress. */
export interface SegmentOwner {
  bucket: string;
  key: string;
  /** The object's version, or the upload id for a part. */
  versionId: string;
  part?: number;
  segments: Segment[];
}

export const partOwner = (upload: MultipartUploadRecord, part: PartRecord): SegmentOwner => ({
  bucket: upload.bucket,
  key: upload.key,
  versionId: upload.uploadId,
  part: part.partNumber,
  segments: part.segments,
});

/** The 'degraded-write' reports a committed record implies: one per placement that has no node. */
export function degradedReports(owner: SegmentOwner, segments?: number[]): DamageReport[] {
  const { bucket, key, versionId } = owner;
  const which = segments ?? owner.segments.map((_, i) => i);
  return which.flatMap((segment) =>
    owner.segments[segment].placements.flatMap((p, shardIndex): DamageReport[] =>
      p.nodeId === null ? [{ bucket, key, versionId, segment, ...partOf(owner.part), shardIndex, reason: 'degraded-write' }] : [],
    ),
  );
}

export class RepairQueue {
  private readonly locks = new KeyedLock();

  constructor(private readonly engine: KvEngine, private readonly now: () => number) {}

  /**
   * Runs `commit` with the ops that fold `reports` into their tasks, while those tasks are locked,
   * so the caller can write them in the same atomic batch as the change that caused them.
   */
  withReports<R>(reports: DamageReport[], commit: (ops: KvOp[]) => Promise<R>): Promise<R> {
    if (reports.length === 0) return commit([]);
    const keys = new Map(reports.map((r) => [lockName(reportKey(r)), reportKey(r)]));
    return this.locks.exclusiveAll([...keys.keys()], async () => {
      const entries = [...keys.entries()];
      const stored = await this.engine.getMany('repairs', entries.map(([, key]) => key));
      const tasks = new Map(entries.map(([name], i) => [name, decodeTask(stored[i])]));
      const queuedAt = new Date(this.now()).toISOString();
      for (const r of reports) {
        const name = lockName(reportKey(r));
        tasks.set(name, mergeReport(tasks.get(name), r, queuedAt));
      }
      const ops = entries.map(([name, key]): KvOp => ({ type: 'put', space: 'repairs', key, value: encode({ ...tasks.get(name), rev: newRev() }) }));
      return commit(ops);
    });
  }

  /** Tasks in key order (bucket, key, version, segment, part) after the task id `after`. */
  async list(after: string | undefined, limit: number): Promise<RepairTaskPage> {
    const max = v.integer(limit, 'limit', 1, v.MAX_BATCH);
    const range = after === undefined ? {} : { gt: parseTaskId(after).key };
    const rows = await scanRange(this.engine, 'repairs', { ...range, limit: max + 1 });
    const tasks = rows.slice(0, max).map(([key, value]) => toTask(key, decode<StoredTask>(value)));
    return rows.length > max ? { tasks, next: tasks[tasks.length - 1].id } : { tasks };
  }

  /** Removes the tasks whose revision still matches. Not fsynced: a lost ack only repeats a repair check. */
  ack(ids: unknown[]): Promise<number> {
    const wanted = new Map(v.idList(ids, 'ids', parseTaskId).map((p) => [lockName(p.key), p]));
    return this.locks.exclusiveAll([...wanted.keys()], async () => {
      const list = [...wanted.values()];
      const stored = await this.engine.getMany('repairs', list.map((p) => p.key));
      const done = list.filter((p, i) => decodeTask(stored[i])?.rev === p.rev);
      await this.engine.batch(done.map((p): KvOp => ({ type: 'del', space: 'repairs', key: p.key })), { sync: false });
      return done.length;
    });
  }
}
