// The S3 calls of the workload, through @aws-sdk/client-s3 with its default settings (retries,
// checksums), each bounded by a timeout, with results turned into checker observations.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { ListEntryObservation, Observation, RangeSpec } from './checker.js';
import { rangeHeader } from './checker.js';
import { ValueSource } from './data.js';

const MAX_LIST_PAGES = 20;
export const MULTIPART_PART_SIZE = 5 * 1024 * 1024;

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

/** The SDK's own console warnings (e.g. for every failed streaming upload) would drown the run's log. */
const QUIET = { debug: (): void => undefined, info: (): void => undefined, warn: (): void => undefined, error: (): void => undefined };

/** The SDK with its defaults (retries, checksums); only what a non-AWS endpoint needs is set. */
export function s3Client(endpoint: string, credentials: Credentials): S3Client {
  return new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials, logger: QUIET });
}

export interface OpFailure {
  code: string;
  status?: number;
  attempts?: number;
  message: string;
}

export function failureOf(err: unknown): OpFailure {
  const message = err instanceof Error ? err.message : String(err);
  const meta = typeof err === 'object' && err !== null && '$metadata' in err ? (err as { $metadata?: { httpStatusCode?: number; attempts?: number } }).$metadata : undefined;
  const code = err instanceof S3ServiceException ? err.name : err instanceof Error ? ((err as NodeJS.ErrnoException).code ?? err.name) : 'Error';
  return { code, message: message.slice(0, 300), status: meta?.httpStatusCode, attempts: meta?.attempts };
}

/** A 4xx on the only attempt is a refusal; anything else may have taken effect. */
export function refused(f: OpFailure): boolean {
  return f.status !== undefined && f.status >= 400 && f.status < 500 && f.attempts === 1;
}

/** The SDK checks a whole-object response checksum while streaming; a mismatch means wrong bytes. */
export function isChecksumMismatch(f: OpFailure): boolean {
  return /checksum mismatch/i.test(f.message);
}

export async function putObject(s3: S3Client, bucket: string, key: string, body: Buffer, streamed: boolean, timeoutMs: number): Promise<string | undefined> {
  const Body = streamed ? ValueSource.stream(body) : body;
  const res = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body, ContentLength: body.length }), { abortSignal: AbortSignal.timeout(timeoutMs) });
  return res.ETag;
}

/** lib-storage multipart upload (5 MiB parts, 4 at a time); aborted at the timeout. */
export async function multipartUpload(s3: S3Client, bucket: string, key: string, body: Buffer, timeoutMs: number): Promise<string | undefined> {
  const upload = new Upload({ client: s3, params: { Bucket: bucket, Key: key, Body: body }, partSize: MULTIPART_PART_SIZE, queueSize: 4 });
  const timer = setTimeout(() => void upload.abort(), timeoutMs);
  try {
    return (await upload.done()).ETag;
  } finally {
    clearTimeout(timer);
  }
}

export async function deleteObject(s3: S3Client, bucket: string, key: string, timeoutMs: number): Promise<void> {
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: AbortSignal.timeout(timeoutMs) });
}

/** A GET (whole or ranged) as an observation: absent for NoSuchKey, unsatisfiable for 416. */
export async function getObject(s3: S3Client, bucket: string, key: string, range: RangeSpec | undefined, timeoutMs: number): Promise<Observation> {
  const abortSignal = AbortSignal.timeout(timeoutMs);
  try {
    const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: range ? rangeHeader(range) : undefined }), { abortSignal });
    const body = res.Body;
    if (!(body instanceof Readable)) throw new Error('GetObject returned no Node stream body');
    const contentRange = range && res.ContentRange ? parseContentRange(res.ContentRange) : undefined;
    if (range && contentRange) return { kind: 'range', spec: range, ...contentRange, bytes: await collect(body) };
    const { sha256, size } = await digest(body);
    return { kind: 'value', sha256, size, etag: res.ETag };
  } catch (err) {
    if (err instanceof S3ServiceException && err.name === 'NoSuchKey') return { kind: 'absent' };
    if (err instanceof S3ServiceException && err.name === 'InvalidRange' && range) return { kind: 'unsatisfiable', spec: range };
    throw err;
  }
}

export async function listObjects(s3: S3Client, bucket: string, prefix: string, timeoutMs: number): Promise<ListEntryObservation[]> {
  const out: ListEntryObservation[] = [];
  let token: string | undefined;
  for (let page = 0; page < MAX_LIST_PAGES; page++) {
    const res = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }), { abortSignal: AbortSignal.timeout(timeoutMs) });
    for (const c of res.Contents ?? []) out.push({ key: c.Key ?? '', size: c.Size ?? -1, etag: c.ETag });
    if (!res.IsTruncated || !res.NextContinuationToken) break;
    token = res.NextContinuationToken;
  }
  return out;
}

function parseContentRange(header: string): { start: number; end: number; total: number } | undefined {
  const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(header.trim());
  return m ? { start: Number(m[1]), end: Number(m[2]), total: Number(m[3]) } : undefined;
}

async function digest(body: Readable): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { sha256: hash.digest('hex'), size };
}

async function collect(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}
