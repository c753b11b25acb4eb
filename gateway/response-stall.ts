// When a response's client has stopped taking bytes, as opposed to taking them slowly.
import { once } from 'node:events';
import type http from 'node:http';

/**
 * Resolves once the response has drained or closed. A client that takes no bytes at all for
 * `idleMs` (the --body-timeout that also cuts off a request body that stops) has its connection
 * closed: it would otherwise keep its windows of the download budget for as long as it likes.
 * A client that reads slowly is not cut off; only one whose unsent bytes stop going down.
 */
export async function drainedOrStalled(res: http.ServerResponse, closed: Promise<unknown>, idleMs: number): Promise<void> {
  const drained = Promise.race([once(res, 'drain'), closed]);
  if (idleMs <= 0) return void (await drained);
  let unsent = unsentBytes(res);
  let movedAt = Date.now();
  const check = setInterval(() => {
    const now = unsentBytes(res);
    if (now < unsent) {
      unsent = now;
      movedAt = Date.now();
    } else if (Date.now() - movedAt >= idleMs) {
      res.destroy();
    }
  }, Math.max(10, Math.min(1000, Math.floor(idleMs / 4))));
  try {
    await drained;
  } finally {
    clearInterval(check);
  }
}

/**
 * Bytes the kernel has not taken yet. `writableLength` goes down only when a whole write is done,
 * and a GET writes a window (up to 8 MiB) as one corked writev: a client reading 100 KiB/s would
 * show no progress for over a minute and be cut off as stalled. libuv's write queue goes down with
 * every partial write, i.e. each time the client's TCP window opens.
 */
function unsentBytes(res: http.ServerResponse): number {
  const handle = (res.socket as { _handle?: { writeQueueSize?: unknown } } | null)?._handle;
  const queued = typeof handle?.writeQueueSize === 'number' ? handle.writeQueueSize : 0;
  return res.writableLength + queued;
}
