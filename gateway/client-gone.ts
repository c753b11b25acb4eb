// When the client of a request has gone. Waits for memory (the upload and download budgets) take
// this signal, so that a request whose client left is taken out of the queue at once: served its
// turn instead, it would take a buffer and only then find its socket closed. A GET's shard fetches
// take it too, so that they stop when the client does instead of filling memory nobody will send.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { s3Error } from './s3/errors.js';

/** The two halves of an exchange the signal watches (a koa context is one). */
export interface Exchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
}

/**
 * Aborted when the client goes before its response was sent. The reason is the S3 error the
 * request then ends with (nobody hears it; it keeps the logs quiet). A response sent in full closes
 * too, but nothing waits on its signal any more: aborting it then would build an error (and its
 * stack) for every request, a few per cent of the gateway's CPU on small PUTs.
 */
export function clientGoneSignal({ req, res }: Exchange): AbortSignal {
  const gone = new AbortController();
  const abort = (): void => {
    if (!gone.signal.aborted) gone.abort(s3Error('RequestTimeout', 'The client closed the connection before its request was answered.'));
  };
  res.once('close', () => {
    if (!res.writableFinished) abort();
  });
  // A request cut off mid-body is known gone as soon as its connection's end is read, in the same
  // turn as the others cut with it; its response closes only in a later phase of the loop.
  req.once('close', () => {
    if (!req.complete) abort();
  });
  return gone.signal;
}
