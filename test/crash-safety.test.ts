// Crash safety (issue 6). SIGKILL of a storage node, the gateway or the namespace at any point of a
// PUT, overwrite, delete or multipart upload never leaves a visible object whose bytes differ from
// what a client sent, and never loses an acknowledged write:
//  1. A real cluster (k=4, m=2, 6 nodes) goes through seeded rounds, each one operation with one
//     process SIGKILLed at a random moment and restarted (gateway and namespace on their old ports).
//     After every round the key is read through a fresh client and must hold a value the model
//     allows; at the end listing, every object and the nodes' shard sets must agree with the model.
//     Kills land at times drawn over the operation's expected duration, or just after its last
//     request was sent whole (around the commit). A commit that applied but whose answer never
//     reached the gateway (the namespace killed after its batch and back at once) is staged with a
//     proxy, since a SIGKILL hits that window only by chance.
//  2. The namespace process alone, hammered with multi-key batches (commits, overwrites, deletes,
//     multipart completions) by concurrent clients and SIGKILLed at random moments: after every
//     restart the database is whole (acknowledged commits present, object records, reverse index,
//     repair queue and GC queue in step: no half-applied batch).
// CAIRN_CRASH_SEED=<n> replays the schedule of a run (process timing still varies a little);
// CAIRN_CRASH_ROUNDS sets the number of rounds of part 1.
import t, { type Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { createCipheriv, createHash, randomInt } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  UploadPartCommand,
  type CompletedPart,
  type S3Client,
} from '@aws-sdk/client-s3';
import { WATCH_PARENT_ENV } from '../common/process.js';
import { NamespaceClient, NamespaceError } from '../namespace/client.js';
import { LevelEngine, scanRange } from '../namespace/engine.js';
import { decode } from '../namespace/records.js';
import type { GarbageEntry, ObjectRecord, PartRecord, Segment, ShardRef } from '../namespace/types.js';
import { StorageNodePool } from '../storage-node/client.js';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, s3ClientFor, startTestCluster, type TestCluster } from './helpers/cluster.js';
import { SECRET_ENV, TEST_SECRET, TEST_SECRET_TEXT } from './helpers/internal.js';
import { sleep, waitFor } from './helpers/wait.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const MiB = 1024 * 1024;
const SEED = process.env.CAIRN_CRASH_SEED ? Number(process.env.CAIRN_CRASH_SEED) : randomInt(1, 2 ** 31 - 1);
const ROUNDS = Number(process.env.CAIRN_CRASH_ROUNDS ?? 28);
const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');
const md5hex = (data: Buffer): string => createHash('md5').update(data).digest('hex');

t.comment(`crash-safety seed ${SEED} (replay with CAIRN_CRASH_SEED=${SEED})`);

// ---- seeded randomness --------------------------------------------------------------------------

class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** mulberry32: uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let x = this.state;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
  weighted<T extends string>(weights: Record<T, number>): T {
    const entries = Object.entries(weights) as [T, number][];
    let roll = this.next() * entries.reduce((sum, [, w]) => sum + w, 0);
    for (const [name, w] of entries) if ((roll -= w) < 0) return name;
    return entries[entries.length - 1]![0];
  }
}

/** Deterministic bytes for a seed and a tag (AES-CTR keystream): a replayed run sends the same data. */
function bytesFor(tag: string, size: number): Buffer {
  const cipher = createCipheriv('aes-256-ctr', createHash('sha256').update(`${SEED}:${tag}`).digest(), Buffer.alloc(16));
  return Buffer.concat([cipher.update(Buffer.alloc(size)), cipher.final()]);
}


const errorName = (err: unknown): string => (err instanceof Error ? err.name : String(err));
const errorText = (err: unknown): string => (err instanceof Error ? `${err.name}: ${err.message}` : String(err));

// =================================================================================================
// Part 1: the cluster
// =================================================================================================

const BUCKET = 'crash';
const KEYS = ['a', 'b', 'dir/c', 'dir/d', 'e f', 'g'];
type Op = 'put' | 'overwrite' | 'delete' | 'multipart';
type Victim = 'node' | 'gateway' | 'namespace';

/** What a key may hold: a value (its bytes' digest, size, ETag) or nothing. */
interface Value {
  sha: string;
  size: number;
  etag: string;
  label: string;
}
type Candidate = Value | null;

const sameValue = (a: Candidate, b: Candidate): boolean => (a === null || b === null ? a === b : a.sha === b.sha && a.size === b.size && a.etag === b.etag);
const describe = (c: Candidate): string => (c === null ? 'absent' : `${c.label} (${c.size} B, ${c.etag})`);

interface RoundRecord {
  round: number;
  op: Op;
  victim: string;
  point: string;
  acked: boolean;
  outcome: 'new value' | 'old value' | 'absent' | 'violation';
  error?: string;
}

interface RunningOp {
  promise: Promise<void>;
  /** Where the operation is now, for the report (e.g. "part 2", "complete"). */
  step: () => string;
  settled: () => boolean;
  /** Whether the operation got far enough that it may have changed the key even if the client saw an error. */
  mayHaveApplied: () => boolean;
  newValue: Candidate;
  /** Resolves once the operation's last request has been handed its whole body (a streamed body is exhausted). */
  lastSent: Promise<void>;
  uploadId?: () => string | undefined;
}

t.test('SIGKILL of a storage node, the gateway or the namespace during writes never exposes wrong bytes', async (t) => {
  const rng = new Rng(SEED);
  const env: TestCluster = await startTestCluster({
    nodes: 6,
    k: 4,
    m: 2,
    segmentSize: MiB,
    shardTimeout: '5s',
    clusterSecret: TEST_SECRET_TEXT,
    repair: { workers: 2, rate: 'unlimited', gcGrace: '1s', orphanGrace: '5s', interval: '300ms', auditInterval: '1h', scrubInterval: '1h' },
  });
  t.teardown(() => env.destroy());
  const { cluster } = env;
  const gatewayPort = Number(new URL(cluster.endpoint).port);
  let ns = new NamespaceClient(cluster.namespaceUrl, { secret: cluster.clusterSecret, timeoutMs: 10_000 });
  t.teardown(() => ns.close());
  const pool = new StorageNodePool({ secret: cluster.clusterSecret, timeoutMs: 5000 });
  const model = new Map<string, Candidate[]>(KEYS.map((k) => [k, [null]]));
  const rounds: RoundRecord[] = [];
  const violations: string[] = [];

  await env.s3.send(new CreateBucketCommand({ Bucket: BUCKET }));

  /** All nodes up in the namespace at the URL of their current process, and the gateway answering. */
  async function waitHealthy(): Promise<void> {
    await waitFor('every node up at its current URL', async () => {
      const nodes = await ns.listNodes();
      return cluster.nodeIds.every((id) => {
        const n = nodes.find((x) => x.id === id);
        return n !== undefined && n.state === 'up' && n.url === cluster.services.get(id)?.ready.url;
      });
    });
  }

  async function crash(victim: Victim, nodeId: string): Promise<void> {
    if (victim === 'node') {
      await cluster.kill(nodeId, 'SIGKILL');
      await cluster.startNode(nodeId);
    } else if (victim === 'gateway') {
      await cluster.kill('gateway', 'SIGKILL');
      await cluster.startGateway('gateway', gatewayPort);
    } else {
      await cluster.kill('namespace', 'SIGKILL');
      await cluster.startNamespace();
    }
  }

  /** Reads a key through a fresh client: HEAD and GET must agree; the only acceptable error is "no such key". */
  async function observe(key: string): Promise<{ value: Candidate; bytes?: Buffer } | { problem: string }> {
    const s3 = s3ClientFor(cluster.endpoint);
    try {
      let head: { size: number; etag: string } | null;
      try {
        const h = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
        head = { size: h.ContentLength ?? -1, etag: h.ETag ?? '' };
      } catch (err) {
        if (errorName(err) !== 'NotFound') return { problem: `HEAD ${key} failed: ${errorText(err)}` };
        head = null;
      }
      let bytes: Buffer | null;
      let etag = '';
      try {
        const g = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
        bytes = Buffer.from(await g.Body!.transformToByteArray());
        etag = g.ETag ?? '';
        if (g.ContentLength !== bytes.length) return { problem: `GET ${key}: Content-Length ${g.ContentLength} but ${bytes.length} bytes` };
      } catch (err) {
        if (errorName(err) !== 'NoSuchKey') return { problem: `GET ${key} failed: ${errorText(err)}` };
        bytes = null;
      }
      if ((head === null) !== (bytes === null)) return { problem: `HEAD ${key} says ${head ? 'present' : 'absent'}, GET says ${bytes ? 'present' : 'absent'}` };
      if (head === null || bytes === null) return { value: null };
      if (head.size !== bytes.length || head.etag !== etag) return { problem: `HEAD ${key} (${head.size} B, ${head.etag}) disagrees with GET (${bytes.length} B, ${etag})` };
      return { value: { sha: sha256(bytes), size: bytes.length, etag, label: 'observed' }, bytes };
    } finally {
      s3.destroy();
    }
  }

  /** Checks a key against the model; the model then holds only what was seen (reads are strongly consistent). */
  async function check(key: string, context: string): Promise<Candidate | 'violation'> {
    const allowed = model.get(key)!;
    const seen = await observe(key);
    if ('problem' in seen) {
      violations.push(`${context}: ${seen.problem}`);
      return 'violation';
    }
    const match = allowed.find((c) => sameValue(c, seen.value));
    if (match === undefined) {
      violations.push(`${context}: ${key} holds ${describe(seen.value)}; allowed: ${allowed.map(describe).join(' | ')}`);
      return 'violation';
    }
    model.set(key, [match]);
    return match;
  }

  // ---- operations ----

  /** The body as is, or as a stream of 64 KiB chunks (the SDK sends it aws-chunked) that calls `onEnd` once exhausted. */
  function body(data: Buffer, streamed: boolean, onEnd: () => void = () => undefined): Buffer | Readable {
    if (!streamed) {
      onEnd();
      return data;
    }
    return Readable.from((function* () {
      for (let at = 0; at < data.length; at += 64 * 1024) yield data.subarray(at, at + 64 * 1024);
      onEnd();
    })());
  }

  function startPut(s3: S3Client, key: string, data: Buffer, streamed: boolean, label: string): RunningOp {
    let done = false;
    let sent!: () => void;
    const lastSent = new Promise<void>((resolve) => (sent = resolve));
    const promise = s3
      .send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body(data, streamed, sent), ContentLength: data.length }))
      .then((res) => {
        if (res.ETag !== `"${md5hex(data)}"`) throw new Error(`PUT answered ETag ${res.ETag}, not the MD5 of the bytes`);
      })
      .finally(() => (done = true));
    return {
      promise,
      step: () => 'in flight',
      settled: () => done,
      mayHaveApplied: () => true,
      newValue: { sha: sha256(data), size: data.length, etag: `"${md5hex(data)}"`, label },
      lastSent,
    };
  }

  function startDelete(s3: S3Client, key: string): RunningOp {
    let done = false;
    const promise = s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: key })).then(() => undefined).finally(() => (done = true));
    return { promise, step: () => 'in flight', settled: () => done, mayHaveApplied: () => true, newValue: null, lastSent: Promise.resolve() };
  }

  function startMultipart(s3: S3Client, key: string, parts: Buffer[], streamed: boolean, label: string): RunningOp {
    let step = 'create';
    let done = false;
    let completeSent = false;
    let uploadId: string | undefined;
    let sent!: () => void;
    const lastSent = new Promise<void>((resolve) => (sent = resolve));
    const etag = `"${md5hex(Buffer.concat(parts.map((p) => Buffer.from(md5hex(p), 'hex'))))}-${parts.length}"`;
    const promise = (async () => {
      const created = await s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key }));
      uploadId = created.UploadId!;
      const completed: CompletedPart[] = [];
      for (const [i, data] of parts.entries()) {
        step = `part ${i + 1}`;
        const res = await s3.send(new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId: uploadId, PartNumber: i + 1, Body: body(data, streamed), ContentLength: data.length }));
        completed.push({ PartNumber: i + 1, ETag: res.ETag });
      }
      step = 'complete';
      completeSent = true;
      sent();
      const res = await s3.send(new CompleteMultipartUploadCommand({ Bucket: BUCKET, Key: key, UploadId: uploadId, MultipartUpload: { Parts: completed } }));
      if (res.ETag !== etag) throw new Error(`CompleteMultipartUpload answered ETag ${res.ETag}, expected ${etag}`);
    })().finally(() => (done = true));
    return {
      promise,
      step: () => step,
      settled: () => done,
      mayHaveApplied: () => completeSent,
      newValue: { sha: sha256(Buffer.concat(parts)), size: parts.reduce((s, p) => s + p.length, 0), etag, label },
      lastSent,
      uploadId: () => uploadId,
    };
  }

  // ---- timing: the kill delay is drawn over the operation's expected duration ----

  const speed = { msPerMiB: 150, overheadMs: 40 };
  const expectedMs = (bytes: number, requests: number): number => speed.overheadMs * requests + (speed.msPerMiB * bytes) / MiB;
  function learn(bytes: number, requests: number, ms: number): void {
    if (bytes < MiB) return;
    const perMiB = Math.max(20, (ms - speed.overheadMs * requests) / (bytes / MiB));
    speed.msPerMiB = 0.7 * speed.msPerMiB + 0.3 * perMiB;
  }

  // ---- warm-up: a few keys written without faults (and the speed of this machine measured) ----

  for (const [i, key] of ['a', 'dir/c', 'g'].entries()) {
    const data = bytesFor(`warm-${i}`, 2 * MiB + 1000 * i);
    const started = Date.now();
    const op = startPut(env.s3, key, data, i === 1, `warm-${i}`);
    await op.promise;
    learn(data.length, 1, Date.now() - started);
    model.set(key, [op.newValue]);
  }
  t.comment(`write speed here: about ${Math.round(speed.msPerMiB)} ms per MiB`);

  // ---- the rounds ----

  for (let round = 1; round <= ROUNDS; round++) {
    const present = KEYS.filter((k) => model.get(k)!.some((c) => c !== null));
    const absent = KEYS.filter((k) => model.get(k)!.every((c) => c === null));
    let op: Op = rng.weighted<Op>({ put: 3, overwrite: 3, delete: 2, multipart: 2.5 });
    if ((op === 'overwrite' || op === 'delete') && present.length === 0) op = 'put';
    const key = op === 'put' ? rng.pick(absent.length > 0 ? absent : KEYS) : op === 'multipart' ? rng.pick(KEYS) : rng.pick(present);
    const victim = rng.weighted<Victim>({ node: 4, gateway: 3, namespace: 3 });
    const nodeId = rng.pick(cluster.nodeIds);
    // Half the kills land anywhere in the operation (or just after it), timed from its expected
    // duration; half land right after its last request has been sent whole, around the commit.
    const nearCommit = rng.next() < 0.5;
    const nearDelay = rng.int(0, 59);
    const fraction = rng.next() * 1.2;
    const streamed = rng.next() < 0.4 || (nearCommit && (op === 'put' || op === 'overwrite'));
    const size = rng.pick([0, 1, 1000, 256 * 1024 - 3, MiB, MiB + 1, 2 * MiB + 12345, rng.int(1, 3 * MiB), rng.int(1, 3 * MiB)]);
    const label = `round ${round} ${op}`;

    const before = model.get(key)!;
    const s3 = s3ClientFor(cluster.endpoint);
    let running: RunningOp;
    let budgetMs: number;
    let bytes: number;
    let requests: number;
    if (op === 'delete') {
      running = startDelete(s3, key);
      bytes = 0;
      requests = 1;
      budgetMs = 30;
    } else if (op === 'multipart') {
      const count = rng.pick([2, 2, 3]);
      const parts = Array.from({ length: count }, (_, i) => bytesFor(`${label} part ${i + 1}`, i < count - 1 ? 5 * MiB : rng.int(1, MiB)));
      running = startMultipart(s3, key, parts, streamed, label);
      bytes = parts.reduce((s, p) => s + p.length, 0);
      requests = count + 2;
      budgetMs = expectedMs(bytes, requests);
    } else {
      const data = bytesFor(label, size);
      running = startPut(s3, key, data, streamed, label);
      bytes = size;
      requests = 1;
      budgetMs = expectedMs(bytes, 1);
    }
    const started = Date.now();
    // Handled from the start: the operation may fail while the kill is still being scheduled.
    const result = running.promise.then(
      () => ({ error: undefined as unknown, ok: true, at: Date.now() }),
      (err: unknown) => ({ error: err, ok: false, at: Date.now() }),
    );
    let point: string;
    if (nearCommit) {
      await Promise.race([running.lastSent, result]);
      // A body streams on for a few ms after the SDK took its last chunk; a delete or a completion is one short request.
      const after = op === 'put' || op === 'overwrite' ? nearDelay : Math.floor(nearDelay / 3);
      await sleep(after);
      const bucket = op === 'put' || op === 'overwrite' ? `${after - (after % 20)}–${after - (after % 20) + 19}` : `${after - (after % 10)}–${after - (after % 10) + 9}`;
      point = `${op === 'multipart' ? 'complete' : op === 'delete' ? 'request' : 'body'} sent +${bucket} ms`;
    } else {
      await sleep(Math.round(fraction * budgetMs));
      point = op === 'multipart' ? `during ${running.step()}` : Date.now() - started < budgetMs / 2 ? 'first half' : 'second half';
    }
    const elapsed = Date.now() - started;
    if (running.settled()) point = 'after the answer';
    const victimName = victim === 'node' ? nodeId : victim;
    await crash(victim, nodeId);
    const restartedMs = Date.now() - started - elapsed;
    const { ok: acked, error, at } = await result;
    s3.destroy();
    await waitHealthy();
    if (acked && point === 'after the answer') learn(bytes, requests, at - started);

    model.set(key, acked ? [running.newValue] : running.mayHaveApplied() ? [...before, running.newValue] : before);
    const context = `seed ${SEED} round ${round} (${op} ${JSON.stringify(key)}, ${bytes} B${streamed ? ' streamed' : ''}, SIGKILL ${victimName} after ${elapsed} ms, ${point}, ${acked ? 'acknowledged' : `failed: ${errorText(error)}`})`;
    if (!acked && victim === 'node' && !/^(ServiceUnavailable|InternalError|SlowDown)$/.test(errorName(error))) {
      // One node of k+m=6 lost: the write must go through degraded, or fail with a clean S3 error.
      violations.push(`${context}: one storage node lost, but the client got ${errorText(error)}`);
    }
    const seen = await check(key, context);
    const outcome: RoundRecord['outcome'] =
      seen === 'violation' ? 'violation' : sameValue(seen, running.newValue) && seen !== null ? 'new value' : seen === null ? 'absent' : 'old value';
    rounds.push({ round, op, victim: victim === 'node' ? 'storage node' : victim, point, acked, outcome, ...(acked ? {} : { error: errorName(error) }) });
    t.comment(`round ${round}: ${op} ${JSON.stringify(key)} ${bytes} B, kill ${victimName} at ${elapsed} ms (${point}) → ${acked ? 'acked' : `failed (${errorName(error)})`}, ${outcome} [restart ${restartedMs} ms, round ${Date.now() - started} ms]`);

    // An upload that did not complete is aborted, as a client would (if the outcome is unknown, it may be gone already).
    const uploadId = running.uploadId?.();
    if (uploadId && !acked) {
      const c = s3ClientFor(cluster.endpoint);
      await c.send(new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: key, UploadId: uploadId })).catch(() => undefined);
      c.destroy();
    }
    if (victim === 'namespace') {
      // Our own client reconnects by itself too; a fresh one just avoids waiting on a dead keep-alive socket.
      await ns.close();
      ns = new NamespaceClient(cluster.namespaceUrl, { secret: cluster.clusterSecret, timeoutMs: 10_000 });
    }
  }

  // ---- a commit that applied but whose answer was lost ----
  // The namespace SIGKILLed right after its batch and back at once, a network cut or a stall past the
  // gateway's timeout: the client gets an error, yet the object exists, so its shards must stay. A proxy
  // in front of the namespace for a second gateway lets the commit through and drops the answer.
  await t.test('a PUT whose commit applied but whose answer was lost leaves the object readable', async (t) => {
    const key = 'lost-answer';
    const upstream = new URL(cluster.namespaceUrl);
    let dropped = 0;
    const proxy = http.createServer((req, res) => {
      // This gateway serves only this PUT, so its first commit batch is this object's commit.
      const commit = req.method === 'POST' && req.url === '/batch/commits' && dropped === 0;
      const forward = http.request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
        if (commit) {
          dropped++;
          answer.resume();
          answer.on('end', () => req.socket.destroy());
          return;
        }
        res.writeHead(answer.statusCode!, answer.headers);
        answer.pipe(res);
      });
      forward.on('error', () => res.destroy());
      req.pipe(forward);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', () => resolve()));
    t.teardown(() => proxy.close());
    const gateway = spawn(
      process.execPath,
      ['--no-warnings', '--import', 'tsx', 'gateway/main.ts', '--host', '127.0.0.1', '--port', '0', '--namespace', `http://127.0.0.1:${(proxy.address() as { port: number }).port}`,
        '--access-key-id', ACCESS_KEY_ID, '--k', '4', '--m', '2', '--segment-size', String(MiB)],
      // The parent watch stops it even if this test process is SIGKILLed before its teardown runs.
      { cwd: ROOT, env: { ...SECRET_ENV, CAIRN_SECRET_ACCESS_KEY: SECRET_ACCESS_KEY, [WATCH_PARENT_ENV]: '1' }, stdio: ['ignore', 'pipe', 'ignore'] },
    );
    t.teardown(() => void gateway.kill('SIGKILL'));
    const url = await new Promise<string>((resolve, reject) => {
      gateway.once('exit', (code) => reject(new Error(`proxied gateway exited (${code})`)));
      createInterface({ input: gateway.stdout! }).on('line', (line) => line.startsWith('CAIRN_READY ') && resolve((JSON.parse(line.slice('CAIRN_READY '.length)) as { url: string }).url));
    });
    const data = bytesFor('lost answer', 2 * MiB + 77);
    const client = s3ClientFor(url);
    const answer = await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: data })).then(() => 'acknowledged', (err: unknown) => errorName(err));
    client.destroy();
    t.equal(dropped, 1, 'the commit reached the namespace and its answer was dropped');
    t.not(answer, 'acknowledged', `the client was told the PUT failed (${answer})`);
    model.set(key, [null, { sha: sha256(data), size: data.length, etag: `"${md5hex(data)}"`, label: 'lost answer' }]);
    await sleep(1000); // what the gateway does after a failed commit (it used to delete the shards) is done by now
    const seen = await check(key, `seed ${SEED} lost answer`);
    t.ok(seen !== null && seen !== 'violation', `the committed object reads back exactly: ${seen === 'violation' ? violations[violations.length - 1] : describe(seen)}`);
  });

  // ---- the end state ----

  const s3 = s3ClientFor(cluster.endpoint);
  t.teardown(() => s3.destroy());
  const leftover = await s3.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }));
  for (const u of leftover.Uploads ?? []) await s3.send(new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: u.Key!, UploadId: u.UploadId! }));
  if ((leftover.Uploads ?? []).length > 0) t.comment(`aborted ${leftover.Uploads!.length} uploads whose creation the client never heard back about`);

  const listed = ((await s3.send(new ListObjectsV2Command({ Bucket: BUCKET }))).Contents ?? []).map((o) => ({ key: o.Key!, size: o.Size!, etag: o.ETag! }));
  const expected = [...model.keys()].filter((k) => model.get(k)![0] !== null).sort();
  t.same(listed.map((o) => o.key).sort(), expected, 'ListObjectsV2 lists exactly the keys the model holds');
  for (const entry of listed) {
    const value = model.get(entry.key)?.[0];
    if (value) t.ok(entry.size === value.size && entry.etag === value.etag, `${entry.key}: listed size and ETag are the model's`);
  }
  for (const key of model.keys()) {
    const seen = await check(key, `seed ${SEED} final read`);
    if (seen !== 'violation' && seen !== null) t.pass(`${key} reads back exactly (${seen.size} B)`);
  }

  // Every shard a record references is on its node, and after GC and orphan collection nothing else is.
  async function shardSetProblems(): Promise<string[]> {
    const wanted = new Map<string, Set<string>>(cluster.nodeIds.map((id) => [id, new Set()]));
    const problems: string[] = [];
    for (const key of model.keys()) {
      const rec = await ns.getObjectOrNull(BUCKET, key);
      rec?.segments.forEach((seg, s) =>
        seg.placements.forEach((p, i) => (p.nodeId === null ? problems.push(`${key}#${s}.${i}: not placed yet`) : wanted.get(p.nodeId)!.add(p.shardId))),
      );
    }
    const urls = new Map((await ns.listNodes()).map((n) => [n.id, n.url]));
    for (const id of cluster.nodeIds) {
      const client = pool.get(urls.get(id)!);
      const disk = new Set<string>();
      let after: string | undefined;
      do {
        const page = await client.listShards(after, 1000);
        for (const s of page.shards) disk.add(s.id);
        after = page.next;
      } while (after);
      for (const s of disk) if (!wanted.get(id)!.has(s)) problems.push(`${id}: unreferenced ${s}`);
      for (const s of wanted.get(id)!) if (!disk.has(s)) problems.push(`${id}: MISSING referenced ${s}`);
    }
    return problems;
  }
  let lastProblems: string[] = [];
  const settled = await waitFor('the nodes to hold exactly the referenced shards', async () => {
    lastProblems = await shardSetProblems();
    if (lastProblems.some((p) => p.includes('MISSING'))) return lastProblems; // never healed by waiting: report at once
    return lastProblems.length === 0 ? lastProblems : undefined;
  }, 40_000, 500).catch(() => lastProblems);
  t.same(settled, [], 'after GC and orphan collection every node holds exactly the shards the records reference');

  // ---- the report ----
  const table = new Map<string, number>();
  for (const r of rounds) {
    const row = `${r.victim} | ${r.op} | ${r.point} | ${r.acked ? 'acked' : 'failed'} → ${r.outcome}`;
    table.set(row, (table.get(row) ?? 0) + 1);
  }
  t.comment('fault | operation | kill point | client saw → key holds | rounds');
  for (const [row, n] of [...table].sort()) t.comment(`${row} | ${n}`);
  const byOutcome = (o: RoundRecord['outcome']): number => rounds.filter((r) => r.outcome === o).length;
  t.comment(`outcomes: new value ${byOutcome('new value')}, old value ${byOutcome('old value')}, absent ${byOutcome('absent')}, violations ${violations.length}`);
  t.same(violations, [], `seed ${SEED}: no round left a torn, wrong or lost object`);
  t.equal(rounds.length, ROUNDS);
});

// =================================================================================================
// Part 2: the namespace's LevelDB under SIGKILL mid-batch
// =================================================================================================

const NS_BUCKET = 'b';
const NS_NODES = ['n1', 'n2', 'n3', 'n4'];
const NS_LAYOUT = { k: 2, m: 1, blockSize: 8 };
const WORKERS = 4;
const NS_KILLS = 7;

interface NamespaceProcess {
  child: ChildProcess;
  url: string;
  exited: Promise<void>;
}

async function spawnNamespace(dir: string, port: number): Promise<NamespaceProcess> {
  const child = spawn(process.execPath, ['--no-warnings', '--import', 'tsx', 'namespace/main.ts', '--data-dir', dir, '--port', String(port), '--down-after', '1h'], {
    cwd: ROOT,
    env: { ...SECRET_ENV, [WATCH_PARENT_ENV]: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`namespace not ready; stderr: ${stderr}`)), 30_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (!line.startsWith('CAIRN_READY ')) return;
      clearTimeout(timer);
      resolve((JSON.parse(line.slice('CAIRN_READY '.length)) as { url: string }).url);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`namespace exited (${code ?? signal}) before ready; stderr: ${stderr}`));
    });
  });
  return { child, url, exited };
}

/** Segments of `size` bytes split 10/rest, 3 placements each; every `nullEvery`-th placement missing (a degraded write). */
function nsSegments(tag: string, rng: Rng, degraded: boolean): Segment[] {
  const nodes = [...NS_NODES].sort(() => rng.next() - 0.5);
  return [10, 6].map((size, s) => ({
    size,
    placements: [0, 1, 2].map((i) => ({ nodeId: degraded && s === 1 && i === 2 ? null : nodes[(s + i) % nodes.length]!, shardId: `${tag}.${s}.${i}` })),
  }));
}

function nsRecord(key: string, versionId: string, segments: Segment[]): ObjectRecord {
  return {
    bucket: NS_BUCKET,
    key,
    versionId,
    size: segments.reduce((sum, s) => sum + s.size, 0),
    etag: `"${versionId}"`,
    lastModified: new Date().toISOString(),
    contentType: 'application/octet-stream',
    userMetadata: {},
    headers: {},
    checksums: {},
    layout: NS_LAYOUT,
    segments,
  };
}

/** What a key of the namespace test may hold: an object version, or nothing. */
type NsState = { versionId: string; shards: string[] } | null;

interface NsPending {
  key: string;
  /** The key's state if the operation applied. */
  next: NsState;
  /** For a completion: the upload that disappears with it. */
  uploadId?: string;
}

t.test('the namespace survives SIGKILL mid-batch: whole batches or none, every acknowledged commit kept', async (t) => {
  const rng = new Rng(SEED ^ 0x5eed);
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-crash-ns-'));
  let proc: NamespaceProcess | undefined;
  t.teardown(async () => {
    if (proc && proc.child.exitCode === null && proc.child.signalCode === null) {
      proc.child.kill('SIGKILL');
      await proc.exited;
    }
    await rm(dir, { recursive: true, force: true });
  });
  proc = await spawnNamespace(dir, 0);
  const port = Number(new URL(proc.url).port);
  const admin = (url: string): NamespaceClient => new NamespaceClient(url, { secret: TEST_SECRET, timeoutMs: 10_000 });
  {
    const c = admin(proc.url);
    await c.createBucket(NS_BUCKET, 'crash');
    for (const id of NS_NODES) await c.heartbeat(id, { url: `http://127.0.0.1:1/${id}`, capacityBytes: 1e12, usedBytes: 0, freeBytes: 1e12 });
    await c.close();
  }

  // The model: per key, the states it may be in (one once acknowledged or observed).
  const keys = Array.from({ length: WORKERS }, (_, w) => [0, 1, 2].map((j) => `w${w}/k${j}`));
  const state = new Map<string, NsState[]>(keys.flat().map((k) => [k, [null]]));
  /** Every shard that some applied batch made live (object or part); shard ids are never reused. */
  const everLive = new Set<string>();
  /** GC entries acknowledged so far: acks are not fsynced, so one may come back after a crash. */
  const ackedGarbage = new Set<string>();
  const acked = { commits: 0, deletes: 0, completions: 0, parts: 0, aborts: 0 };
  let counter = 0;
  const cycles: string[] = [];
  /** Parts put (acknowledged or in flight) of uploads not yet completed: upload/part → shards. */
  const openParts = new Map<string, string[]>();

  const shardsOf = (segments: Segment[]): string[] => segments.flatMap((s) => s.placements.map((p) => `${p.nodeId ?? '-'}/${p.shardId}`));

  /** One client's loop of multi-key batches until the namespace dies under it. Returns what was in flight. */
  async function worker(w: number, url: string, stop: { now: boolean }): Promise<NsPending | undefined> {
    const client = admin(url);
    let pending: NsPending | undefined;
    try {
      while (!stop.now) {
        const key = rng.pick(keys[w]!);
        const current = state.get(key)!;
        if (current.length !== 1) throw new Error(`model of ${key} not settled`);
        const roll = rng.next();
        const v = `v${w}-${++counter}`;
        if (roll < 0.45) {
          // Commit or overwrite: object record + 6 reverse-index entries + the old version's shards to GC (+ a repair task if degraded).
          const segments = nsSegments(v, rng, rng.next() < 0.3);
          const next = { versionId: v, shards: shardsOf(segments) };
          pending = { key, next };
          await client.commitObject({ record: nsRecord(key, v, segments) });
          acked.commits++;
        } else if (roll < 0.6) {
          pending = { key, next: null };
          await client.deleteObject(NS_BUCKET, key);
          acked.deletes++;
        } else {
          // Multipart: the completion moves the parts' shards to the object, drops upload and parts, and queues the old object's shards.
          pending = undefined;
          const upload = await client.createUpload({ bucket: NS_BUCKET, key, contentType: 'application/octet-stream', userMetadata: {}, headers: {} });
          const parts: PartRecord[] = [];
          for (const n of [1, 2]) {
            const segments = nsSegments(`${v}p${n}`, rng, rng.next() < 0.2);
            const part: PartRecord = { uploadId: upload.uploadId, partNumber: n, size: 16, etag: `"${v}p${n}"`, lastModified: new Date().toISOString(), checksums: {}, layout: NS_LAYOUT, segments };
            openParts.set(`${upload.uploadId}/${n}`, shardsOf(segments));
            await client.putPart(part);
            acked.parts++;
            for (const s of shardsOf(segments)) everLive.add(s);
            parts.push(part);
          }
          const segments = parts.flatMap((p) => p.segments);
          const record = { ...nsRecord(key, v, segments), parts: parts.map((p) => ({ partNumber: p.partNumber, size: p.size, etag: p.etag, segmentCount: p.segments.length })) };
          pending = { key, next: { versionId: v, shards: shardsOf(segments) }, uploadId: upload.uploadId };
          await client.completeUpload(upload.uploadId, { record, usedParts: [1, 2] });
          for (const n of [1, 2]) openParts.delete(`${upload.uploadId}/${n}`);
          acked.completions++;
        }
        const p = pending;
        if (p) {
          state.set(key, [p.next]);
          if (p.next) for (const s of p.next.shards) everLive.add(s);
        }
        pending = undefined;
      }
    } catch (err) {
      if (!(err instanceof NamespaceError && err.code === 'ServiceUnavailable')) throw err;
    } finally {
      await client.close().catch(() => undefined);
    }
    return pending;
  }

  /** Raw look at the database between kill and restart: no reference without its record, no live shard in the GC queue. */
  async function rawCheck(cycle: number): Promise<string[]> {
    const engine = await LevelEngine.open(path.join(dir, 'meta'));
    const problems: string[] = [];
    try {
      const live = new Map<string, string>();
      for (const [, raw] of await scanRange(engine, 'objects', {})) {
        const rec = decode<ObjectRecord>(raw);
        rec.segments.forEach((seg, s) => seg.placements.forEach((p, i) => p.nodeId && live.set(`${p.nodeId}/${p.shardId}`, `${rec.key}@${rec.versionId}#${s}.${i}`)));
      }
      const uploads = new Set((await scanRange(engine, 'uploads', {})).map(([, raw]) => decode<{ uploadId: string }>(raw).uploadId));
      const uploadKeys = new Set((await scanRange(engine, 'upload-keys', {})).map(([, raw]) => decode<{ uploadId: string }>(raw).uploadId));
      if ([...uploads].some((u) => !uploadKeys.has(u)) || [...uploadKeys].some((u) => !uploads.has(u))) problems.push(`cycle ${cycle}: uploads and upload-keys disagree`);
      for (const [, raw] of await scanRange(engine, 'parts', {})) {
        const part = decode<PartRecord>(raw);
        if (!uploads.has(part.uploadId)) problems.push(`cycle ${cycle}: part ${part.partNumber} of a gone upload ${part.uploadId}`);
        part.segments.forEach((seg, s) => seg.placements.forEach((p, i) => p.nodeId && live.set(`${p.nodeId}/${p.shardId}`, `${part.uploadId}/${part.partNumber}#${s}.${i}`)));
      }
      const refs = new Set<string>();
      for (const [, raw] of await scanRange(engine, 'shards', {})) {
        const ref = decode<ShardRef>(raw);
        refs.add(`${ref.nodeId}/${ref.shardId}`);
        if (!live.has(`${ref.nodeId}/${ref.shardId}`)) problems.push(`cycle ${cycle}: reverse-index entry ${ref.nodeId}/${ref.shardId} without a record`);
      }
      for (const [shard, owner] of live) if (!refs.has(shard)) problems.push(`cycle ${cycle}: ${owner} (${shard}) has no reverse-index entry`);
      for (const [, raw] of await scanRange(engine, 'gc', {})) {
        const entry = decode<GarbageEntry>(raw);
        if (live.has(`${entry.nodeId}/${entry.shardId}`)) problems.push(`cycle ${cycle}: live shard ${entry.nodeId}/${entry.shardId} queued for GC`);
      }
    } finally {
      await engine.close();
    }
    return problems;
  }

  /** After a restart, through the API: resolve what was in flight, then check every invariant. */
  async function apiCheck(client: NamespaceClient, cycle: number, inFlight: NsPending[]): Promise<string[]> {
    const problems: string[] = [];
    const where = `seed ${SEED} cycle ${cycle}`;
    for (const p of inFlight) {
      const rec = await client.getObjectOrNull(NS_BUCKET, p.key);
      const seen: NsState = rec ? { versionId: rec.versionId, shards: shardsOf(rec.segments) } : null;
      const allowed = [...state.get(p.key)!, p.next];
      const match = allowed.find((s) => (s === null ? seen === null : seen !== null && s.versionId === seen.versionId));
      if (match === undefined) problems.push(`${where}: ${p.key} holds ${seen?.versionId ?? 'nothing'}, allowed ${allowed.map((s) => s?.versionId ?? 'nothing').join(' | ')}`);
      else {
        state.set(p.key, [match]);
        if (match === p.next && match) for (const s of match.shards) everLive.add(s);
      }
      if (p.uploadId) {
        const upload = await client.getUpload(p.uploadId).then(() => true, (err: unknown) => (err instanceof NamespaceError && err.code === 'NoSuchUpload' ? false : Promise.reject(err)));
        const completed = seen?.versionId === p.next?.versionId;
        if (upload === completed) problems.push(`${where}: completion of ${p.uploadId} half applied (object ${completed ? 'committed' : 'not committed'}, upload ${upload ? 'still there' : 'gone'})`);
        if (completed) for (const name of [...openParts.keys()]) if (name.startsWith(`${p.uploadId}/`)) openParts.delete(name);
      }
    }
    // Every key: acknowledged (or just resolved) state, exactly.
    for (const [key, allowed] of state) {
      const rec = await client.getObjectOrNull(NS_BUCKET, key);
      const want = allowed[0]!;
      if (allowed.length !== 1 || (want?.versionId ?? null) !== (rec?.versionId ?? null)) problems.push(`${where}: ${key} holds ${rec?.versionId ?? 'nothing'}, acknowledged ${want?.versionId ?? 'nothing'}`);
      else if (rec && want && shardsOf(rec.segments).join() !== want.shards.join()) problems.push(`${where}: ${key} has other placements than committed`);
    }
    // Open uploads: abandoned by their workers. Their parts must be whole; then they are aborted (another batch).
    const uploads = (await client.listUploads(NS_BUCKET)).uploads;
    for (const u of uploads) {
      for (const part of (await client.listParts(u.uploadId)).parts) {
        const put = openParts.get(`${u.uploadId}/${part.partNumber}`);
        if (!put || put.join() !== shardsOf(part.segments).join()) problems.push(`${where}: part ${part.partNumber} of ${u.uploadId} is not what was put`);
        else for (const s of put) everLive.add(s);
      }
    }
    // Reverse index: exactly the placements of the objects and of the open uploads' parts, owner by owner.
    const wantRefs = new Map<string, string>();
    for (const key of state.keys()) {
      const rec = await client.getObjectOrNull(NS_BUCKET, key);
      rec?.segments.forEach((seg, s) => seg.placements.forEach((p, i) => p.nodeId && wantRefs.set(`${p.nodeId}/${p.shardId}`, `${rec.key}|${rec.versionId}|${s}|${i}|`)));
    }
    for (const u of uploads) {
      for (const part of (await client.listParts(u.uploadId)).parts) {
        part.segments.forEach((seg, s) => seg.placements.forEach((p, i) => p.nodeId && wantRefs.set(`${p.nodeId}/${p.shardId}`, `${u.key}|${u.uploadId}|${s}|${i}|${part.partNumber}`)));
      }
    }
    const haveRefs = new Map<string, string>();
    for (const node of NS_NODES) {
      let after: string | undefined;
      do {
        const page = await client.shardsOnNode(node, after, 1000);
        for (const r of page.refs) haveRefs.set(`${r.nodeId}/${r.shardId}`, `${r.key}|${r.versionId}|${r.segment}|${r.index}|${r.upload?.partNumber ?? ''}`);
        after = page.next;
      } while (after);
    }
    for (const [shard, owner] of wantRefs) if (haveRefs.get(shard) !== owner) problems.push(`${where}: reverse index has ${haveRefs.get(shard) ?? 'nothing'} for ${shard}, record says ${owner}`);
    for (const shard of haveRefs.keys()) if (!wantRefs.has(shard)) problems.push(`${where}: dangling reverse-index entry ${shard}`);
    // lookupShardRefs agrees, node by node.
    for (const node of NS_NODES) {
      const mine = [...wantRefs.keys()].filter((s) => s.startsWith(`${node}/`)).map((s) => s.slice(node.length + 1));
      const found = await client.lookupShardRefs(node, mine);
      if (found.length !== mine.length) problems.push(`${where}: lookupShardRefs on ${node} found ${found.length} of ${mine.length}`);
    }
    // Degraded placements of live records have their repair task (queued in the same batch).
    const tasks = new Set<string>();
    let after: string | undefined;
    do {
      const page = await client.repairTasks(after, 1000);
      for (const task of page.tasks) tasks.add(`${task.key}|${task.versionId}|${task.segment}|${task.part ?? ''}`);
      after = page.next;
    } while (after);
    for (const key of state.keys()) {
      const rec = await client.getObjectOrNull(NS_BUCKET, key);
      rec?.segments.forEach((seg, s) => {
        if (seg.placements.some((p) => p.nodeId === null) && !tasks.has(`${key}|${rec.versionId}|${s}|`)) problems.push(`${where}: degraded ${key}@${rec.versionId}#${s} has no repair task`);
      });
    }
    // The GC queue: every shard that was live and no longer is, nothing live, extras only from acks lost in the crash.
    const liveNow = new Set(wantRefs.keys());
    const entries: GarbageEntry[] = [];
    for (;;) {
      const page = await client.garbage(new Date(Date.now() + 60_000), 1000);
      entries.push(...page);
      await client.ackGarbage(page.map((e) => e.id));
      if (page.length < 1000) break;
    }
    const queued = new Set(entries.map((e) => `${e.nodeId ?? '-'}/${e.shardId}`));
    for (const s of everLive) {
      if (liveNow.has(s) || s.startsWith('-/')) continue;
      if (!queued.has(s) && !ackedGarbage.has(s)) problems.push(`${where}: superseded shard ${s} is not in the GC queue`);
    }
    for (const s of queued) {
      if (liveNow.has(s)) problems.push(`${where}: live shard ${s} returned by the GC queue`);
      else if (!everLive.has(s) && !s.startsWith('-/')) problems.push(`${where}: GC entry ${s} for a shard no applied batch made live`);
      ackedGarbage.add(s);
    }
    // Abort what the workers left open: it must move their parts' shards to the GC queue, which the next cycle checks.
    for (const u of uploads) {
      await client.abortUpload(u.uploadId);
      acked.aborts++;
      for (const [name] of openParts) if (name.startsWith(`${u.uploadId}/`)) openParts.delete(name);
    }
    return problems;
  }

  const problems: string[] = [];
  for (let cycle = 1; cycle <= NS_KILLS; cycle++) {
    const stop = { now: false };
    const before = { ...acked };
    const workers = Array.from({ length: WORKERS }, (_, w) => worker(w, proc!.url, stop));
    const delay = rng.int(40, 500);
    await sleep(delay);
    proc!.child.kill('SIGKILL');
    await proc!.exited;
    stop.now = true;
    const inFlight = (await Promise.all(workers)).filter((p): p is NsPending => p !== undefined);
    problems.push(...(await rawCheck(cycle)));
    proc = await spawnNamespace(dir, port);
    const client = admin(proc.url);
    try {
      problems.push(...(await apiCheck(client, cycle, inFlight)));
    } finally {
      await client.close();
    }
    const done = Object.entries(acked).map(([k, n]) => `${k} ${n - before[k as keyof typeof acked]}`).join(', ');
    cycles.push(`cycle ${cycle}: SIGKILL after ${delay} ms (${done}; ${inFlight.length} in flight)`);
    t.comment(cycles[cycles.length - 1]!);
  }
  t.ok(acked.commits + acked.completions > 50, `the namespace acknowledged ${acked.commits} commits, ${acked.completions} completions, ${acked.deletes} deletes, ${acked.parts} parts, ${acked.aborts} aborts across ${NS_KILLS} kills`);
  t.same(problems, [], `seed ${SEED}: after every SIGKILL the database held whole batches only, and every acknowledged one`);
});
