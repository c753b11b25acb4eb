// The checks after the faults stop: every key read back through the gateways and judged against
// its whole history, listings compared with the keyspace, and — once redundancy is back — every
// object read again with m storage nodes down, which only works if repair rebuilt correct shards.
import type { S3Client } from '@aws-sdk/client-s3';
import type { Checker, Observation } from './checker.js';
import { sleep } from './control.js';
import type { History, ReadOp, ReadType } from './history.js';
import { failureOf, getObject, listObjects } from './s3ops.js';

const READ_ATTEMPTS = 4;
const RETRY_PAUSE_MS = 1_000;

export interface VerifyOutcome {
  /** Keys read back and judged legal (a value, or legally absent). */
  verified: number;
  /** Of those, keys that held an object. */
  objects: number;
  bytes: number;
  /** Keys that must hold an object but could not be read correctly, with the bytes at stake. */
  lost: Map<string, number>;
  listings: number;
}

export interface GatewayClient {
  name: string;
  s3: S3Client;
}

export interface VerifyContext {
  history: History;
  checker: Checker;
  bucket: string;
  keys: readonly string[];
  opTimeoutMs: number;
  log: (line: string) => void;
}

/** Reads every key through the given clients in turn (key i through client i mod n). */
export async function verifyAllKeys(ctx: VerifyContext, clients: GatewayClient[], type: ReadType): Promise<VerifyOutcome> {
  const out: VerifyOutcome = { verified: 0, objects: 0, bytes: 0, lost: new Map(), listings: 0 };
  for (const [i, key] of ctx.keys.entries()) {
    const { name, s3 } = clients[i % clients.length]!;
    const { op, obs, error } = await readWithRetries(ctx, s3, name, key, type);
    const atStake = largestLegal(ctx, key, op);
    if (!obs) {
      // After the faults stopped every read must succeed, even of a key that may legally be absent.
      out.lost.set(key, atStake);
      ctx.checker.add({ type: 'unreadable', key, opId: op.opId, detail: `${type} via ${name} failed ${READ_ATTEMPTS} times: ${error}` });
      ctx.log(`VIOLATION unreadable ${key} (${type} via ${name}): ${error}`);
      continue;
    }
    const violation = ctx.checker.checkRead(op, obs);
    if (violation) {
      ctx.log(`VIOLATION ${violation.type} ${key} (${type} via ${name}): ${violation.detail}`);
      if (violation.type !== 'wrong-etag') out.lost.set(key, atStake);
      continue;
    }
    out.verified++;
    if (obs.kind === 'value') {
      out.objects++;
      out.bytes += obs.size;
    }
  }
  return out;
}

/** One listing per gateway, each judged key by key. */
export async function verifyListings(ctx: VerifyContext, clients: GatewayClient[]): Promise<number> {
  let listings = 0;
  for (const { name, s3 } of clients) {
    const op = ctx.history.beginRead('final-list', '', -1, name);
    try {
      const entries = await listObjects(s3, ctx.bucket, '', ctx.opTimeoutMs);
      ctx.history.endRead(op, true);
      const found = ctx.checker.checkList(op, '', ctx.keys, entries);
      if (found > 0) ctx.log(`VIOLATION list-mismatch: ${found} keys in the final listing via ${name}`);
      listings++;
    } catch (err) {
      const f = failureOf(err);
      ctx.history.endRead(op, false, f.message);
      ctx.checker.add({ type: 'unreadable', key: '(listing)', opId: op.opId, detail: `final listing via ${name} failed: ${f.message}` });
    }
  }
  return listings;
}

async function readWithRetries(ctx: VerifyContext, s3: S3Client, gateway: string, key: string, type: ReadType): Promise<{ op: ReadOp; obs?: Observation; error?: string }> {
  let error = '';
  let op = ctx.history.beginRead(type, key, -1, gateway);
  for (let attempt = 1; ; attempt++) {
    try {
      const obs = await getObject(s3, ctx.bucket, key, undefined, ctx.opTimeoutMs);
      ctx.history.endRead(op, true);
      return { op, obs };
    } catch (err) {
      error = failureOf(err).message;
      ctx.history.endRead(op, false, error);
    }
    if (attempt >= READ_ATTEMPTS) return { op, error };
    await sleep(RETRY_PAUSE_MS);
    op = ctx.history.beginRead(type, key, -1, gateway);
  }
}

/** The bytes a key must hold now (the largest legal value), 0 if it may legally be absent. */
function largestLegal(ctx: VerifyContext, key: string, op: ReadOp): number {
  const legal = ctx.checker.candidates(key, op.start, op.end);
  if (legal.some((c) => c.value === null)) return 0;
  return legal.reduce((max, c) => Math.max(max, c.value?.size ?? 0), 0);
}
