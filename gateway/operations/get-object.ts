// GetObject and HeadObject: GET|HEAD /bucket/key, with Range, conditional headers and response-*
// overrides. The body streams from the storage nodes window by window.
import { once } from 'node:events';
import { s3Error } from '../s3/errors.js';
import { parseRange, contentRange, rangeSelection } from '../s3/range.js';
import { evaluateReadConditions } from '../conditions.js';
import { RESPONSE_OVERRIDES } from '../metadata.js';
import { checksumTypeOf } from '../s3/checksums.js';
import { encodeHeaderText } from '../s3/mime-words.js';
import { readObjectRange, readObjectWindows } from '../data/reader.js';
import { readerDeps } from '../data/options.js';
import { selectPart } from '../part-range.js';
import { drainedOrStalled } from '../response-stall.js';
import type { ObjectRecord, SegmentSelection } from '../../namespace/types.js';
import { sendEmpty, type OperationHandler, type S3Context } from '../server.js';
import { clientGoneSignal } from '../client-gone.js';
import type { GatewayServices } from '../services.js';

export const getObject: OperationHandler = async (ctx, services) => {
  const { bucket, key } = ctx.state.target as { bucket: string; key: string };
  const record = await services.namespace.getObject(bucket, key, segmentsNeeded(ctx));
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
  const windows = readObjectWindows(record, start, end, { ...readerDeps(services), signal: clientGoneSignal(ctx) });
  const first = await windows.next();
  ctx.length = length;
  // Not awaited: the request's metrics and log stop at the first byte, as for any other body.
  void sendWindows(ctx, first.done ? [] : first.value, windows, services);
};

/**
 * The segments this request reads: none for a HEAD; those of its range for a ranged GET (a few of a
 * large object's hundreds, whose record would otherwise travel and be parsed whole on every GET).
 * A part's range is known only from the record: a partNumber GET gets them all, and a partNumber
 * HEAD the parts (a selected record comes without them otherwise).
 */
function segmentsNeeded(ctx: S3Context): SegmentSelection | undefined {
  const byPart = 'partNumber' in ctx.query;
  if (ctx.method === 'HEAD') return byPart ? { none: true, parts: true } : { none: true };
  if (byPart) return undefined;
  return rangeSelection(ctx.get('range') || undefined);
}

/**
 * Writes the object straight to the socket, a window at a time: the window's pieces corked into
 * one writev, and a wait only when the socket is full. Piped through a stream, every piece (about
 * 20 per MiB) was a write of its own followed by a pause and a 'drain' tick. A failure after the
 * status line can only cut the connection, which the client sees as a short body.
 *
 * The next window is asked for once this one has left the process (the socket drained): asking is
 * what gives its bytes back to the download budget, so a client that stops reading holds one
 * window and the two read ahead, and after READ_AHEAD_IDLE_MS only that one (reader.ts). The
 * windows after it are being read meanwhile.
 */
async function sendWindows(ctx: S3Context, first: Buffer[], rest: AsyncGenerator<Buffer[]>, services: GatewayServices): Promise<void> {
  const res = ctx.res;
  ctx.respond = false;
  // What commonHeaders would add after the handler, too late for headers written here.
  if (!ctx.req.complete) res.setHeader('Connection', 'close');
  res.writeHead(ctx.status);
  let gone = false;
  const closed = once(res, 'close').then(() => (gone = true));
  try {
    for (let window: Buffer[] | undefined = first; window && !gone; ) {
      res.cork();
      for (const piece of window) res.write(piece);
      res.uncork();
      services.metrics.bytesOut.inc(undefined, window.reduce((sum, piece) => sum + piece.length, 0));
      if (res.writableNeedDrain) await drainedOrStalled(res, closed, services.config.bodyTimeoutMs);
      if (gone) break;
      const step = await rest.next();
      window = step.done ? undefined : step.value;
    }
    if (!gone) res.end();
  } catch (err) {
    res.destroy();
    ctx.app.emit('error', err, ctx);
  } finally {
    await rest.return(undefined).catch(() => undefined);
  }
}

function setObjectHeaders(ctx: S3Context, record: ObjectRecord, lastModified: Date): void {
  ctx.set('ETag', record.etag);
  ctx.set('Last-Modified', lastModified.toUTCString());
  ctx.set('Accept-Ranges', 'bytes');
  // Verbatim: koa's ctx.type would append "; charset=utf-8" to text types.
  ctx.set('Content-Type', record.contentType);
  for (const [name, value] of Object.entries(record.headers)) ctx.set(name, value);
  for (const [name, value] of Object.entries(record.userMetadata)) ctx.set(`x-amz-meta-${name}`, encodeHeaderText(value));
  if (record.tags !== undefined && record.tags.length > 0) ctx.set('x-amz-tagging-count', String(record.tags.length));
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
