// Helpers the workloads share: buckets, streamed PUT/GET of pattern objects through the SDK with
// byte verification, and per-phase peak-RSS sampling of the S3 front process.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import type { Readable } from 'node:stream';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { Pattern } from '../data.js';
import { ProcessGroupMeter, peakRss, resetPeakRss } from '../procfs.js';
import { RawS3 } from '../s3/raw.js';
import { sdkClient } from '../s3/sdk.js';
import { MB, sleep } from '../stats.js';
import type { System } from '../systems.js';
import { BUCKET } from './context.js';

export function raw(system: System, connections: number, timeoutMs?: number): RawS3 {
  return new RawS3(system.endpoint, system.creds, { connections, timeoutMs });
}

export function sdk(system: System, maxSockets: number): S3Client {
  return sdkClient(system.endpoint, system.creds, maxSockets);
}

export async function ensureBucket(system: System, bucket = BUCKET): Promise<void> {
  const client = raw(system, 1);
  try {
    await client.createBucket(bucket);
  } finally {
    await client.close();
  }
}

export async function putPattern(s3: S3Client, pattern: Pattern, key: string, size: number, signal?: AbortSignal, bucket = BUCKET): Promise<void> {
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: pattern.stream(key, size), ContentLength: size }), { abortSignal: signal });
}

/** GETs the whole object and checks every byte; returns its size. */
export async function getPattern(s3: S3Client, pattern: Pattern, key: string, size: number, signal?: AbortSignal, bucket = BUCKET): Promise<number> {
  const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal });
  const verifier = pattern.verifier(key);
  for await (const chunk of res.Body as Readable) verifier.update(chunk as Buffer);
  verifier.check(size, `GET ${key}`);
  return size;
}

/**
 * Writes every dirty page out (sync(1)) before a system's phase, untimed. s3rver writes through
 * the page cache without fsync, so the gigabytes of a large or multipart phase were still being
 * flushed during the next phase, whichever system it measured: Cairn's 4 KiB PUT p99 at 256
 * clients was 344 ms right after them and 137-163 ms in runs of the small workload alone.
 */
export async function settleDisk(log: (line: string) => void): Promise<void> {
  const started = performance.now();
  // A missing or failing sync(1) costs the phase its clean start, not the run.
  const code = await once(spawn('sync', { stdio: 'ignore' }), 'exit').then(([c]) => c as number | null, (err: Error) => err.message);
  const ms = performance.now() - started;
  if (code !== 0) log(`  sync failed (${code}): the phase starts with dirty pages`);
  else if (ms >= 100) log(`  flushed dirty pages before the phase (${(ms / 1000).toFixed(1)} s, untimed)`);
}

/**
 * Waits until `system`'s processes are all but idle (under 10% of a core over 250 ms), at most
 * `maxMs`: work a phase leaves behind (a LevelDB compaction, a flush) must not run on the clock
 * of the phase after it, above all when that phase is the other system's.
 */
export async function quiesce(system: System, log: (line: string) => void, maxMs = 5_000, signal?: AbortSignal): Promise<void> {
  const started = performance.now();
  for (;;) {
    const meter = new ProcessGroupMeter(() => system.pids());
    await meter.start();
    const t0 = performance.now();
    await sleep(250, signal);
    const { cpuSeconds } = await meter.stop();
    const cores = cpuSeconds / ((performance.now() - t0) / 1000);
    const waited = performance.now() - started;
    if (cores < 0.1 || signal?.aborted) {
      if (waited >= 1_000) log(`  ${system.name} took ${(waited / 1000).toFixed(1)} s to go quiet after the phase (untimed)`);
      return;
    }
    if (waited >= maxMs) {
      log(`  ${system.name} still busy (${cores.toFixed(2)} cores) ${(maxMs / 1000).toFixed(0)} s after the phase; going on`);
      return;
    }
  }
}

/**
 * The order in which the systems run the halves of a phase: A B B A, every system once first and
 * once last. The box's speed drifts by ±30% over minutes; run one system's phases after the
 * other's, a drift lands on one side only (once s3rver's small GETs, for a 5.7× ratio), while a
 * drift across a pair of halves weighs on both alike.
 */
export function inTurns<S>(systems: readonly S[]): S[] {
  return [...systems, ...[...systems].reverse()];
}

export const mbps = (bytes: number, seconds: number): number | null => (seconds > 0 && bytes > 0 ? bytes / MB / seconds : null);

/** Peak RSS of one process over a phase: reset VmHWM at start, read it at the end. */
export class PeakRss {
  private resetOk = false;

  private constructor(readonly pid: number) {}

  static async start(pid: number): Promise<PeakRss> {
    const p = new PeakRss(pid);
    p.resetOk = await resetPeakRss(pid);
    return p;
  }

  /** Bytes; `sinceStart` when the kernel would not reset the high-water mark. */
  async read(): Promise<{ bytes: number; sinceStart: boolean }> {
    return { bytes: await peakRss(this.pid).catch(() => NaN), sinceStart: !this.resetOk };
  }
}
