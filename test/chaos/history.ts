// The record of every operation of a chaos run: what was asked, when (monotonic ms), of which
// gateway, and how it ended. Writes are registered before they are sent, so a read checked the
// moment it ends already sees every write that could have overlapped it.
import { performance } from 'node:perf_hooks';
import type { ValueRef } from './data.js';

export type WriteType = 'put' | 'put-stream' | 'multipart' | 'delete';
export type ReadType = 'get' | 'range' | 'list' | 'final-get' | 'final-list' | 'degraded-get';
export type OpType = WriteType | ReadType;

/**
 * ok: acknowledged, so it took effect between start and end. failed: the gateway refused it on the
 * first attempt with a 4xx, so it must not have taken effect. unknown: anything else (5xx, reset,
 * timeout, a retried attempt): it may or may not have taken effect. pending: still in flight.
 */
export type WriteStatus = 'pending' | 'ok' | 'failed' | 'unknown';

export interface WriteOp {
  opId: number;
  type: WriteType;
  key: string;
  /** null for a delete. */
  value: ValueRef | null;
  client: number;
  gateway: string;
  start: number;
  end: number;
  status: WriteStatus;
  error?: string;
}

export interface ReadOp {
  opId: number;
  type: ReadType;
  key: string;
  client: number;
  gateway: string;
  start: number;
  end: number;
  ok: boolean;
  error?: string;
}

export class History {
  private nextOpId = 0;
  /** Times are ms since the run began (monotonic). */
  private readonly t0 = performance.now();
  private readonly writesByKey = new Map<string, WriteOp[]>();
  private readonly pending = new Set<WriteOp>();
  readonly writes: WriteOp[] = [];
  readonly reads: ReadOp[] = [];

  now(): number {
    return performance.now() - this.t0;
  }

  beginWrite(type: WriteType, key: string, value: ValueRef | null, client: number, gateway: string): WriteOp {
    const op: WriteOp = { opId: this.nextOpId++, type, key, value, client, gateway, start: this.now(), end: Infinity, status: 'pending' };
    this.writes.push(op);
    this.pending.add(op);
    const list = this.writesByKey.get(key) ?? [];
    list.push(op);
    this.writesByKey.set(key, list);
    return op;
  }

  endWrite(op: WriteOp, status: Exclude<WriteStatus, 'pending'>, error?: string): void {
    op.end = this.now();
    op.status = status;
    this.pending.delete(op);
    if (error !== undefined) op.error = error;
  }

  beginRead(type: ReadType, key: string, client: number, gateway: string): ReadOp {
    const op: ReadOp = { opId: this.nextOpId++, type, key, client, gateway, start: this.now(), end: Infinity, ok: false };
    this.reads.push(op);
    return op;
  }

  endRead(op: ReadOp, ok: boolean, error?: string): void {
    op.end = this.now();
    op.ok = ok;
    if (error !== undefined) op.error = error;
  }

  writesOf(key: string): readonly WriteOp[] {
    return this.writesByKey.get(key) ?? [];
  }

  /** The acknowledged value of the latest-ending acknowledged write of a key (a guess for sizing ranges). */
  lastAcked(key: string): ValueRef | null | undefined {
    let best: WriteOp | undefined;
    for (const w of this.writesOf(key)) if (w.status === 'ok' && (!best || w.end > best.end)) best = w;
    return best ? best.value : undefined;
  }

  inFlight(): WriteOp[] {
    return [...this.pending];
  }
}
