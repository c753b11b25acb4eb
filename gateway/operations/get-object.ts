// GetObject and HeadObject: GET|HEAD /bucket/key, with Range, conditional headers and response-*
// overrides. The body streams from the storage nodes window by window.
import { Readable } from 'node:stream';
import { s3Error } from '../s3/errors.js';
import { parseRange, contentRange } from '../s3/range.js';
import { evaluateReadConditions } from '../conditions.js';
import { RESPONSE_OVERRIDES } from '../metadata.js';
import { checksumTypeOf } from '../s3/checksums.js';
import { encodeHeaderText } from '../s3/mime-words.js';
import { readObjectRange } from '../data/reader.js';
import { readerDeps } from '../data/options.js';
import { selectPart } from '../part-range.js';
import type { ObjectRecord } from '../../namespace/types.js';
import { sendEmpty, type OperationHandler, type S3Context } from '../server.js';
import type { GatewayServices } from '../services.js';

export const getObject: OperationHandler = async (ctx, services) => {
  const { bucket, key } = ctx.state.target as { bucket: string; key: string };
  const record = await services.namespace.getObject(bucket, key);
  const lastModified = new Date(record.lastModified);
  setObjectHeaders(ctx, record, lastModified);

  const outcome = evaluateReadConditions(ctx.req.headers, record.etag, lastModified);
  if (outcome === 'precondition-failed') throw s3Error('PreconditionFailed', undefined, { Condition: 'If-Match' });
  if (outcome === 'not-modified') {
    sendEmpty(ctx, 304);
    return;
  }

  const range = selectPart(ctx, record) ?? (ctx.get('range') ? parseRange(ctx.get('range'), record.size) : undefined);
  const start = range?.start ?? 0;
  const end = range?.end ?? record.size - 1;
  if (range) {
    ctx.status = 206;
    ctx.set('Content-Range', contentRange(range.start, range.end, record.size));
  } else {
    ctx.status = 200;
    setChecksumHeaders(ctx, record);
  }
  applyResponseOverrides(ctx);
  const length = end - start + 1;
  // HEAD: koa sends the headers only; the body must stay unset (a null body drops Content-Length).
  if (ctx.method === 'HEAD') {
    ctx.length = length;
    return;
  }
  if (length === 0) {
    ctx.body = Buffer.alloc(0);
    ctx.length = 0;
    return;
  }
  if (record.inline) {
    // Small objects are whole in memory already: one buffer, no stream machinery.
    const bytes = await readAll(readObjectRange(record, start, end, readerDeps(services)));
    services.metrics.bytesOut.inc(undefined, bytes.length);
    ctx.body = bytes;
    ctx.length = length;
    return;
  }
  // The first window is read before the status line goes out, so an object that cannot be read
  // (fewer than k shards reachable) gets a proper 503 S3 error instead of a cut connection.
  const bytes = readObjectRange(record, start, end, readerDeps(services));
  const first = await bytes.next();
  ctx.body = Readable.from(countBytes(prepend(first.done ? undefined : first.value, bytes), services));
  ctx.length = length;
};

function setObjectHeaders(ctx: S3Context, record: ObjectRecord, lastModified: Date): void {
  ctx.set('ETag', record.etag);
  ctx.set('Last-Modified', lastModified.toUTCString());
  ctx.set('Accept-Ranges', 'bytes');
  // Verbatim: koa's ctx.type would append "; charset=utf-8" to text types.
  ctx.set('Content-Type', record.contentType);
  for (const [name, value] of Object.entries(record.headers)) ctx.set(name, value);
  for (const [name, value] of Object.entries(record.userMetadata)) ctx.set(`x-amz-meta-${name}`, encodeHeaderText(value));
}

/** Stored checksums describe the whole object, so they are returned only for whole-object reads. */
function setChecksumHeaders(ctx: S3Context, record: ObjectRecord): void {
  if (ctx.get('x-amz-checksum-mode').toUpperCase() !== 'ENABLED') return;
  for (const [algorithm, value] of Object.entries(record.checksums)) {
    ctx.set(`x-amz-checksum-${algorithm.toLowerCase()}`, value);
    ctx.set('x-amz-checksum-type', checksumTypeOf(value));
  }
}

function applyResponseOverrides(ctx: S3Context): void {
  for (const [param, header] of Object.entries(RESPONSE_OVERRIDES)) {
    const value = ctx.query[param];
    if (typeof value === 'string') ctx.set(header, value);
  }
}

async function readAll(source: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of source) chunks.push(chunk);
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}

async function* prepend(head: Buffer | undefined, rest: AsyncGenerator<Buffer>): AsyncGenerator<Buffer> {
  if (head) yield head;
  yield* rest;
}

async function* countBytes(source: AsyncIterable<Buffer>, services: GatewayServices): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    services.metrics.bytesOut.inc(undefined, chunk.length);
    yield chunk;
  }
}
