// When the client of a request has gone: waits for memory (the upload and download budgets) take
// this signal, so that a request whose client left is taken out of the queue at once. Served its
// turn instead, it would take a buffer and only then find its socket closed: when a thousand
// trickling uploads were cut at once, the 968 waiting ones each took a 64 KiB first buffer that way,
// and the gateway's resident memory rose by ~60 MiB after the clients had left (bench rss.idle).
import type { S3Context } from './server.js';

/** Aborted once the response is closed: its client went away, or it is over and nothing waits. */
export function clientGoneSignal(ctx: S3Context): AbortSignal {
  const gone = new AbortController();
  ctx.res.once('close', () => gone.abort());
  return gone.signal;
}
