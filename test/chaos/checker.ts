// The checker: a per-key linearizability-lite test of every read against the write history.
//
// A read of a key over [rStart, rEnd] may legally return the value of a write W (or "absent" for a
// delete, or for the initial state) when
//   1. W may have taken effect before the read ended: W.start < rEnd, and W was not refused; and
//   2. no acknowledged write W' is forced between W and the read: W'.start > latest(W) and
//      W'.end < rStart, where latest(W) is the last moment W could have taken effect — its end if
//      acknowledged, end + grace if its outcome is unknown, never (+inf) while it is in flight.
// Values are identified by sha256 (each write's bytes are unique to it), ranges by regenerating the
// candidate's bytes. This is weaker than full linearizability (two reads are not checked against
// each other) but catches lost acknowledged writes, deleted objects that reappear, stale reads
// after an acknowledged overwrite, torn or foreign bytes, and refused writes that became visible.
import type { ValueRef, ValueSource } from './data.js';
import type { History, ReadOp, WriteOp } from './history.js';

/** How long after its client saw it fail a write of unknown outcome may still take effect. */
export const UNKNOWN_GRACE_MS = 30_000;

export type RangeSpec = { kind: 'bounded'; first: number; last: number } | { kind: 'from'; first: number } | { kind: 'suffix'; length: number };

export type Observation =
  | { kind: 'absent' }
  | { kind: 'value'; sha256: string; size: number; etag?: string }
  | { kind: 'range'; spec: RangeSpec; start: number; end: number; total: number; bytes: Buffer }
  | { kind: 'unsatisfiable'; spec: RangeSpec };

export type ViolationType =
  | 'wrong-bytes'
  | 'stale-read'
  | 'resurrected-delete'
  | 'refused-write-visible'
  | 'lost-write'
  | 'wrong-etag'
  | 'bad-range'
  | 'list-mismatch'
  | 'unreadable'
  | 'redundancy'
  | 'crash';

export interface Violation {
  type: ViolationType;
  key: string;
  opId?: number;
  detail: string;
}

/** A value a read may return: `value` null means "no object"; `write` null is the initial state. */
export interface Candidate {
  value: ValueRef | null;
  write: WriteOp | null;
}

export interface ListEntryObservation {
  key: string;
  size: number;
  etag?: string;
}

export function rangeHeader(spec: RangeSpec): string {
  if (spec.kind === 'bounded') return `bytes=${spec.first}-${spec.last}`;
  if (spec.kind === 'from') return `bytes=${spec.first}-`;
  return `bytes=-${spec.length}`;
}

/** The bytes a 206 must carry for an object of `size`, or null when the gateway must answer 416 (or 200 for a suffix of an empty object). */
export function expectedRange(spec: RangeSpec, size: number): { start: number; end: number } | null {
  if (spec.kind === 'suffix') return spec.length === 0 || size === 0 ? null : { start: Math.max(0, size - spec.length), end: size - 1 };
  if (spec.first >= size) return null;
  return { start: spec.first, end: spec.kind === 'bounded' ? Math.min(spec.last, size - 1) : size - 1 };
}

function latestEffect(w: WriteOp, grace: number): number {
  if (w.status === 'ok') return w.end;
  if (w.status === 'pending') return Infinity;
  return w.end + grace;
}

/** The values a read of a key over [rStart, rEnd] may return (rule above). */
export function legalCandidates(writes: readonly WriteOp[], rStart: number, rEnd: number, grace = UNKNOWN_GRACE_MS): Candidate[] {
  const acked = writes.filter((w) => w.status === 'ok' && w.end < rStart);
  const forcedAfter = (latest: number): boolean => acked.some((w) => w.start > latest);
  const out: Candidate[] = [];
  if (!forcedAfter(-Infinity)) out.push({ value: null, write: null });
  for (const w of writes) {
    if (w.status === 'failed' || w.start >= rEnd) continue;
    if (!forcedAfter(latestEffect(w, grace))) out.push({ value: w.value, write: w });
  }
  return out;
}

export class Checker {
  readonly violations: Violation[] = [];
  /** Reads whose result was checked against the history, by outcome. */
  readonly counts = { checked: 0, legal: 0 };

  constructor(private readonly history: History, private readonly values: ValueSource, private readonly grace = UNKNOWN_GRACE_MS) {}

  candidates(key: string, rStart: number, rEnd: number): Candidate[] {
    return legalCandidates(this.history.writesOf(key), rStart, rEnd, this.grace);
  }

  /** Checks one completed read; returns the violation it found, if any. */
  checkRead(op: ReadOp, obs: Observation): Violation | undefined {
    this.counts.checked++;
    const legal = this.candidates(op.key, op.start, op.end);
    const problem = this.judge(op, obs, legal);
    if (!problem) {
      this.counts.legal++;
      return undefined;
    }
    const violation: Violation = { ...problem, key: op.key, opId: op.opId };
    this.violations.push(violation);
    return violation;
  }

  /** Checks a listing of `prefix` against the keys the workload uses. */
  checkList(op: ReadOp, prefix: string, keyspace: readonly string[], entries: readonly ListEntryObservation[]): number {
    let found = 0;
    const listed = new Map(entries.map((e) => [e.key, e]));
    for (const key of keyspace.filter((k) => k.startsWith(prefix))) {
      const legal = this.candidates(key, op.start, op.end);
      const entry = listed.get(key);
      listed.delete(key);
      const ok = entry
        ? legal.some((c) => c.value !== null && c.value.size === entry.size && etagAgrees(c.value, entry.etag))
        : legal.some((c) => c.value === null);
      if (!ok) {
        found++;
        const got = entry ? `listed with size ${entry.size} etag ${entry.etag}` : 'not listed';
        this.violations.push({ type: 'list-mismatch', key, opId: op.opId, detail: `${got}; legal: ${describe(legal)}` });
      }
    }
    for (const key of listed.keys()) {
      found++;
      this.violations.push({ type: 'list-mismatch', key, opId: op.opId, detail: 'listed, but no write ever used this key' });
    }
    return found;
  }

  add(violation: Violation): void {
    this.violations.push(violation);
  }

  private judge(op: ReadOp, obs: Observation, legal: Candidate[]): Omit<Violation, 'key' | 'opId'> | undefined {
    switch (obs.kind) {
      case 'absent':
        return legal.some((c) => c.value === null) ? undefined : { type: 'lost-write', detail: `read found no object; legal: ${describe(legal)}` };
      case 'value':
        return this.judgeValue(op, obs, legal);
      case 'range':
        return this.judgeRange(op, obs, legal);
      case 'unsatisfiable':
        return legal.some((c) => c.value !== null && expectedRange(obs.spec, c.value.size) === null)
          ? undefined
          : { type: 'bad-range', detail: `416 for ${rangeHeader(obs.spec)}; legal: ${describe(legal)}` };
    }
  }

  private judgeValue(op: ReadOp, obs: { sha256: string; size: number; etag?: string }, legal: Candidate[]): Omit<Violation, 'key' | 'opId'> | undefined {
    const matches = legal.filter((c) => c.value !== null && c.value.sha256 === obs.sha256);
    if (matches.length > 0) {
      if (matches.some((c) => etagAgrees(c.value!, obs.etag))) return undefined;
      return { type: 'wrong-etag', detail: `bytes of ${matches[0]!.value!.id} with ETag ${obs.etag}, acknowledged ${matches[0]!.value!.etag}` };
    }
    return this.misread(op, (v) => v.sha256 === obs.sha256, `${obs.size} B sha256 ${obs.sha256.slice(0, 16)}`, legal);
  }

  private judgeRange(op: ReadOp, obs: Extract<Observation, { kind: 'range' }>, legal: Candidate[]): Omit<Violation, 'key' | 'opId'> | undefined {
    const fits = (v: ValueRef): boolean => {
      const want = expectedRange(obs.spec, v.size);
      return v.size === obs.total && want !== null && want.start === obs.start && want.end === obs.end
        && this.values.bytes(v.id, obs.start, obs.end - obs.start + 1).equals(obs.bytes);
    };
    if (legal.some((c) => c.value !== null && fits(c.value))) return undefined;
    return this.misread(op, fits, `${rangeHeader(obs.spec)} → bytes ${obs.start}-${obs.end}/${obs.total}`, legal);
  }

  /** Names what an illegal read returned: a superseded value, a refused write, or bytes no write had. */
  private misread(op: ReadOp, matches: (v: ValueRef) => boolean, what: string, legal: Candidate[]): Omit<Violation, 'key' | 'opId'> {
    const source = this.history.writesOf(op.key).find((w) => w.value !== null && matches(w.value));
    const legalText = `legal: ${describe(legal)}`;
    if (!source) return { type: 'wrong-bytes', detail: `${what} match no write of this key; ${legalText}` };
    if (source.status === 'failed') return { type: 'refused-write-visible', detail: `${what} are from refused write #${source.opId}; ${legalText}` };
    const deletedLater = this.history.writesOf(op.key).some((w) => w.type === 'delete' && w.status === 'ok' && w.start > source.end && w.end < op.start);
    return { type: deletedLater ? 'resurrected-delete' : 'stale-read', detail: `${what} are from write #${source.opId} (${source.status}), superseded; ${legalText}` };
  }
}

function etagAgrees(v: ValueRef, etag: string | undefined): boolean {
  return v.etag === undefined || etag === undefined || v.etag === etag;
}

function describe(legal: Candidate[]): string {
  if (legal.length === 0) return 'nothing';
  return legal.map((c) => (c.value === null ? (c.write ? `absent(#${c.write.opId})` : 'absent(initial)') : `#${c.write?.opId}:${c.value.size}B`)).join(', ');
}
