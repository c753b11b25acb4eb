// When the client of a request has gone. Waits for memory (the upload and download budgets) take
// this signal, so that a request whose client left is taken out of the queue at once: served its
// turn instead, it would take a buffer and only then find its socket closed. A GET's shard fetches
// take it too, so that they stop when the client does instead of filling memory nobody will send.
import { s3Error } from './s3/errors.js';
import type { S3Context } from './server.js';

/**
 * Aborted once the response is closed: its client went away, or it is over and nothing waits. The
 * reason is the S3 error the request then ends with (nobody hears it; it keeps the logs quiet).
 */
export function clientGoneSignal(ctx: S3Context): AbortSignal {
  const gone = new AbortController();
  const abort = (): void => gone.abort(s3Error('RequestTimeout', 'The client closed the connection before its request was answered.'));
  ctx.res.once('close', abort);
  // A request cut off mid-body is known gone as soon as its connection's end is read, in the same
  // turn as the others cut with it; its response closes only in a later phase of the loop.
  ctx.req.once('close', () => {
    if (!ctx.req.complete) abort();
  });
  return gone.signal;
}
