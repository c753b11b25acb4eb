// The mixed S3 workload: several clients, each its own seeded sequence of operations over a small
// shared keyspace (so clients overwrite, delete and read each other's keys concurrently), spread
// over the gateways. Every operation goes into the history; every read is checked at once.
import type { S3Client } from '@aws-sdk/client-s3';
import type { Checker, Observation, RangeSpec } from './checker.js';
import type { GatewayInfo } from './control.js';
import type { ValueSource } from './data.js';
import type { History, OpType, ReadOp, WriteOp, WriteType } from './history.js';
import { Prng } from './prng.js';
import {
  deleteObject,
  failureOf,
  getObject,
  isChecksumMismatch,
  listObjects,
  MULTIPART_PART_SIZE,
  multipartUpload,
  putObject,
  refused,
  s3Client,
  type Credentials,
} from './s3ops.js';

const MiB = 1024 * 1024;
const KiB = 1024;
const OP_WEIGHTS = { put: 24, 'put-stream': 8, multipart: 3, get: 28, range: 16, delete: 9, list: 6 } as const;
type PlannedType = keyof typeof OP_WEIGHTS;
const DRAWS_PER_OP = 5;
/** Key groups, so listings with a prefix and a delimiter-free scan both have something to do. */
const GROUPS = ['a/', 'b/', 'c/'];

export interface WorkloadOptions {
  seed: number;
  clients: number;
  keyCount: number;
  bucket: string;
  gateways: GatewayInfo[];
  credentials: Credentials;
  maxSize: number;
  segmentSize: number;
  blockSize: number;
  k: number;
  opTimeoutMs: number;
}

export interface OpStats {
  ok: number;
  failed: number;
  /** Writes whose outcome is unknown (5xx, reset, timeout): counted in failed too. */
  unknown: number;
  timeouts: number;
  bytes: number;
}

/** Cold keys are written once before the faults start and only read afterwards. */
export const COLD_PREFIX = 'cold/';

/**
 * The keys of a run: hot ones that every client writes, overwrites, deletes and reads, and an
 * eighth that are cold — written once up front, then only read — so that data written before the
 * first fault must survive every fault of the run, and flipped bits in them stay until healed.
 */
export function keyspace(count: number): { hot: string[]; cold: string[] } {
  const coldCount = Math.max(1, Math.floor(count / 8));
  const name = (prefix: string, i: number): string => `${prefix}obj-${String(i).padStart(4, '0')}`;
  return {
    hot: Array.from({ length: count - coldCount }, (_, i) => name(GROUPS[i % GROUPS.length]!, i)),
    cold: Array.from({ length: coldCount }, (_, i) => name(COLD_PREFIX, i)),
  };
}

export class Workload {
  readonly keys: string[];
  private readonly hotKeys: string[];
  private readonly coldKeys: string[];
  readonly stats = new Map<OpType, OpStats>();
  private readonly clients: Map<string, S3Client>[] = [];

  constructor(
    private readonly opts: WorkloadOptions,
    private readonly history: History,
    private readonly checker: Checker,
    private readonly values: ValueSource,
    private readonly log: (line: string) => void,
  ) {
    const { hot, cold } = keyspace(opts.keyCount);
    this.hotKeys = hot;
    this.coldKeys = cold;
    this.keys = [...hot, ...cold];
    for (let c = 0; c < opts.clients; c++) this.clients.push(new Map(opts.gateways.map((g) => [g.name, s3Client(g.endpoint, opts.credentials)])));
  }

  /** Writes every cold key once, through the gateways in turn, before the faults start. */
  async preload(): Promise<void> {
    const prng = new Prng(this.opts.seed, 'cold');
    for (const [n, key] of this.coldKeys.entries()) {
      const gateway = this.opts.gateways[n % this.opts.gateways.length]!.name;
      const size = this.sizeFor(prng.next(), prng.next());
      await this.write(this.clients[0]!.get(gateway)!, { client: 0, key, gateway }, 'put', `cold.${n}`, size);
    }
  }

  /** Runs every client until `until` (run time); an operation under way then is finished. */
  async run(until: number): Promise<void> {
    await Promise.all(this.clients.map((_, c) => this.runClient(c, until)));
  }

  destroy(): void {
    for (const byGateway of this.clients) for (const s3 of byGateway.values()) s3.destroy();
  }

  /** A client to a gateway for checks after the workload (the first client's). */
  client(gateway: string): S3Client {
    return this.clients[0]!.get(gateway)!;
  }

  count(type: OpType, outcome: 'ok' | 'failed' | 'unknown' | 'timeout', bytes = 0): void {
    const s = this.stats.get(type) ?? { ok: 0, failed: 0, unknown: 0, timeouts: 0, bytes: 0 };
    if (outcome === 'ok') s.ok++;
    else s.failed++;
    if (outcome === 'unknown' || outcome === 'timeout') s.unknown += type === 'get' || type === 'range' || type === 'list' ? 0 : 1;
    if (outcome === 'timeout') s.timeouts++;
    s.bytes += bytes;
    this.stats.set(type, s);
  }

  private async runClient(client: number, until: number): Promise<void> {
    const prng = new Prng(this.opts.seed, `client-${client}`);
    for (let n = 0; this.history.now() < until; n++) {
      const type = prng.weighted(OP_WEIGHTS);
      const writes = type === 'put' || type === 'put-stream' || type === 'multipart' || type === 'delete';
      const key = prng.pick(writes ? this.hotKeys : this.keys);
      const gateway = prng.pick(this.opts.gateways).name;
      const draws = Array.from({ length: DRAWS_PER_OP }, () => prng.next());
      await this.execute({ client, n, type, key, gateway, draws });
    }
  }

  private execute(op: { client: number; n: number; type: PlannedType; key: string; gateway: string; draws: number[] }): Promise<void> {
    const s3 = this.clients[op.client]!.get(op.gateway)!;
    const valueId = `c${op.client}.${op.n}`;
    switch (op.type) {
      case 'put':
      case 'put-stream':
        return this.write(s3, op, op.type, valueId, this.sizeFor(op.draws[0]!, op.draws[1]!));
      case 'multipart':
        return this.write(s3, op, 'multipart', valueId, MULTIPART_PART_SIZE + 1 + Math.floor(op.draws[0]! * (this.opts.maxSize - MULTIPART_PART_SIZE - 1)));
      case 'delete':
        return this.remove(s3, op);
      case 'get':
        return this.read(s3, op, undefined);
      case 'range':
        return this.read(s3, op, this.rangeFor(op.key, op.draws));
      case 'list':
        return this.list(s3, op, op.draws[0]! < 0.4 ? '' : GROUPS[Math.floor(op.draws[1]! * GROUPS.length)]!);
    }
  }

  private async write(s3: S3Client, op: { client: number; key: string; gateway: string }, type: WriteType, valueId: string, size: number): Promise<void> {
    const { body, ref } = this.values.value(valueId, size);
    if (type === 'multipart') ref.etag = undefined; // known only once the gateway acknowledges it
    const w = this.history.beginWrite(type, op.key, ref, op.client, op.gateway);
    try {
      const etag = type === 'multipart'
        ? await multipartUpload(s3, this.opts.bucket, op.key, body, this.opts.opTimeoutMs)
        : await putObject(s3, this.opts.bucket, op.key, body, type === 'put-stream', this.opts.opTimeoutMs);
      if (type === 'multipart') ref.etag = etag;
      else if (etag !== ref.etag) this.checker.add({ type: 'wrong-etag', key: op.key, opId: w.opId, detail: `PUT answered ETag ${etag}, the body's MD5 is ${ref.etag}` });
      this.history.endWrite(w, 'ok');
      this.count(type, 'ok', size);
    } catch (err) {
      this.failWrite(w, err, type === 'multipart');
    }
  }

  private async remove(s3: S3Client, op: { client: number; key: string; gateway: string }): Promise<void> {
    const w = this.history.beginWrite('delete', op.key, null, op.client, op.gateway);
    try {
      await deleteObject(s3, this.opts.bucket, op.key, this.opts.opTimeoutMs);
      this.history.endWrite(w, 'ok');
      this.count('delete', 'ok');
    } catch (err) {
      this.failWrite(w, err, false);
    }
  }

  private failWrite(w: WriteOp, err: unknown, multipart: boolean): void {
    const f = failureOf(err);
    // lib-storage hides how many attempts its parts took: its failures are never certain refusals.
    const status = !multipart && refused(f) ? 'failed' : 'unknown';
    this.history.endWrite(w, status, `${f.code}${f.status ? ` ${f.status}` : ''}: ${f.message}`);
    this.count(w.type, isTimeout(f.code) ? 'timeout' : status === 'failed' ? 'failed' : 'unknown');
  }

  private async read(s3: S3Client, op: { client: number; key: string; gateway: string }, range: RangeSpec | undefined): Promise<void> {
    const type = range ? 'range' : 'get';
    const r = this.history.beginRead(type, op.key, op.client, op.gateway);
    let obs: Observation;
    try {
      obs = await getObject(s3, this.opts.bucket, op.key, range, this.opts.opTimeoutMs);
    } catch (err) {
      this.failRead(r, err);
      return;
    }
    this.history.endRead(r, true);
    this.count(type, 'ok', obs.kind === 'value' ? obs.size : obs.kind === 'range' ? obs.bytes.length : 0);
    const violation = this.checker.checkRead(r, obs);
    if (violation) this.log(`VIOLATION ${violation.type} ${violation.key} (op #${r.opId} via ${r.gateway}): ${violation.detail}`);
  }

  private failRead(r: ReadOp, err: unknown): void {
    const f = failureOf(err);
    this.history.endRead(r, false, `${f.code}${f.status ? ` ${f.status}` : ''}: ${f.message}`);
    this.count(r.type, isTimeout(f.code) ? 'timeout' : 'failed');
    if (isChecksumMismatch(f)) {
      this.checker.add({ type: 'wrong-bytes', key: r.key, opId: r.opId, detail: `the SDK's response checksum did not match: ${f.message}` });
      this.log(`VIOLATION wrong-bytes ${r.key} (op #${r.opId}): ${f.message}`);
    }
  }

  private async list(s3: S3Client, op: { client: number; key: string; gateway: string }, prefix: string): Promise<void> {
    const r = this.history.beginRead('list', prefix, op.client, op.gateway);
    try {
      const entries = await listObjects(s3, this.opts.bucket, prefix, this.opts.opTimeoutMs);
      this.history.endRead(r, true);
      this.count('list', 'ok');
      const found = this.checker.checkList(r, prefix, this.keys, entries);
      if (found > 0) this.log(`VIOLATION list-mismatch: ${found} keys under "${prefix}" (op #${r.opId} via ${r.gateway})`);
    } catch (err) {
      this.failRead(r, err);
    }
  }

  /**
   * Sizes that hit the layout's edges (empty, one byte, around a block, a stripe and a segment) now
   * and then; otherwise mostly small, some medium, a few large.
   */
  sizeFor(d0: number, d1: number): number {
    const { blockSize, k, segmentSize, maxSize } = this.opts;
    const stripe = blockSize * k;
    const edges = [0, 1, 7, 8, blockSize - 1, blockSize, blockSize + 1, stripe - 1, stripe, stripe + 1, segmentSize - 1, segmentSize, segmentSize + 1];
    if (d0 < 0.1) return Math.min(maxSize, edges[Math.floor(d1 * edges.length)]!);
    if (d0 < 0.55) return Math.floor(d1 * d1 * 64 * KiB);
    if (d0 < 0.85) return 64 * KiB + Math.floor(d1 * 2 * MiB);
    if (d0 < 0.97) return Math.min(maxSize, 2 * MiB + Math.floor(d1 * 6 * MiB));
    return Math.min(maxSize, 8 * MiB + Math.floor(d1 * Math.max(0, maxSize - 8 * MiB)));
  }

  /** A range sized from the last acknowledged value (the draws, not the result, are the schedule). */
  private rangeFor(key: string, draws: number[]): RangeSpec {
    const guess = this.history.lastAcked(key)?.size ?? MiB;
    const first = Math.floor(draws[2]! * guess * 1.05);
    const length = 1 + Math.floor(draws[3]! * Math.min(Math.max(guess, 1), 2 * MiB));
    if (draws[4]! < 0.6) return { kind: 'bounded', first, last: first + length - 1 };
    if (draws[4]! < 0.8) return { kind: 'from', first: Math.max(first, guess - 2 * MiB) };
    return { kind: 'suffix', length };
  }
}

function isTimeout(code: string): boolean {
  return code === 'TimeoutError' || code === 'AbortError';
}
