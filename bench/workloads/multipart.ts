// Multipart upload of a large object (1 GiB in 8 MiB parts, 8 parts in flight) through the SDK,
// from CreateMultipartUpload to CompleteMultipartUpload; MB/s over those spans, two uploads per
// system taken in turns. Each object's size is checked with HEAD, and the last one's bytes by the
// ranged-GET workload, which reads it next.
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import type { Pattern } from '../data.js';
import { ratioOf, target, type Row } from '../report.js';
import { MiB, runPool } from '../stats.js';
import type { System } from '../systems.js';
import { ensureBucket, inTurns, mbps, quiesce, raw, sdk, settleDisk } from './common.js';
import { BUCKET, type BenchContext, type WorkloadResult } from './context.js';

/** Key and size of the multipart object each system holds, for the ranged-GET workload. */
export const sharedObjectKey = (system: System): string => `mp-object:${system.name}`;

export interface MultipartObject {
  key: string;
  size: number;
}

export async function multipartUpload(s3: S3Client, pattern: Pattern, key: string, size: number, partSize: number, parallel: number, budgetMs: number, signal: AbortSignal): Promise<{ seconds: number; parts: number }> {
  const t0 = performance.now();
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key }), { abortSignal: signal });
  const parts = Math.ceil(size / partSize);
  const etags: string[] = new Array<string>(parts);
  try {
    const r = await runPool({ concurrency: parallel, maxOps: parts, durationMs: budgetMs, signal }, async (i) => {
      const offset = i * partSize;
      const length = Math.min(partSize, size - offset);
      const res = await s3.send(
        new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId, PartNumber: i + 1, Body: pattern.stream(key, length, offset), ContentLength: length }),
        { abortSignal: signal },
      );
      etags[i] = res.ETag!;
    });
    if (r.ops < parts) throw new Error(r.errors ? `${r.errors} parts failed: ${r.firstError}` : `only ${r.ops} of ${parts} parts within the time budget`);
    await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: BUCKET,
        Key: key,
        UploadId,
        MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
      }),
      { abortSignal: signal },
    );
  } catch (err) {
    await s3.send(new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: key, UploadId })).catch(() => undefined);
    throw err;
  }
  return { seconds: (performance.now() - t0) / 1000, parts };
}

export async function multipart(ctx: BenchContext): Promise<WorkloadResult> {
  const { objectSize, partSize, parallel, budgetMs } = ctx.cfg.multipart;
  // Two uploads per system, taking turns (inTurns): one upload each, minutes apart,
  // let the box's drift decide the ratio (s3rver alone measured 44 to 125 MB/s across runs).
  const turns = inTurns(ctx.systems);
  const uploads = new Map<string, { seconds: number; parts: number }[]>();
  const details: Record<string, unknown> = { objectSize, partSize, parallel, interleaving: 'A B B A uploads' };
  const errors: string[] = [];
  for (const system of ctx.systems) await ensureBucket(system);
  for (const system of turns) {
    if (ctx.signal.aborted || errors.some((e) => e.startsWith(`${system.name}:`))) continue;
    await settleDisk(ctx.log);
    const done = uploads.get(system.name) ?? [];
    const key = `multipart/${objectSize}/${done.length + 1}`;
    const s3 = sdk(system, parallel * 2);
    try {
      const upload = await multipartUpload(s3, ctx.pattern, key, objectSize, partSize, parallel, budgetMs / turns.length, ctx.signal);
      const head = raw(system, 1);
      const size = await head.head(BUCKET, key).finally(() => head.close());
      if (size !== objectSize) throw new Error(`HEAD says ${size} bytes, expected ${objectSize}`);
      uploads.set(system.name, [...done, upload]);
      ctx.shared.set(sharedObjectKey(system), { key, size: objectSize } satisfies MultipartObject);
      ctx.log(`  ${system.name}: ${upload.parts} parts in ${upload.seconds.toFixed(1)} s = ${mbps(objectSize, upload.seconds)?.toFixed(0)} MB/s`);
    } catch (err) {
      errors.push(`${system.name}: ${err instanceof Error ? err.message : String(err)}`);
      ctx.log(`  ${system.name}: multipart failed: ${errors.at(-1)}`);
    } finally {
      s3.destroy();
    }
    await quiesce(system, ctx.log, 5_000, ctx.signal);
  }
  // Bytes over time of all of a system's uploads; none if one of them failed.
  const speeds = new Map<string, number | null>();
  for (const system of ctx.systems) {
    const done = uploads.get(system.name) ?? [];
    const failed = errors.some((e) => e.startsWith(`${system.name}:`));
    const seconds = done.reduce((a, u) => a + u.seconds, 0);
    speeds.set(system.name, failed || done.length === 0 ? null : mbps(objectSize * done.length, seconds));
    details[system.name] = { uploads: done, mbps: speeds.get(system.name) };
  }
  const c = speeds.get('cairn') ?? null;
  const p = speeds.get('s3rver') ?? null;
  const ratio = ratioOf(c, p);
  const row: Row = {
    id: 'multipart',
    workload: `multipart ${fmtSize(objectSize)} (${partSize / MiB} MiB parts × ${parallel})`,
    unit: 'MB/s',
    cairn: c,
    peer: p,
    ratio,
    target: target.ratioAtLeast(ratio, 2.0),
    note: errors.length ? `errors: ${errors.join('; ')}` : undefined,
  };
  return { rows: [row], details };
}

export function fmtSize(bytes: number): string {
  return bytes >= 1024 * MiB ? `${bytes / (1024 * MiB)} GiB` : `${bytes / MiB} MiB`;
}
