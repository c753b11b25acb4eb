// Process-wide limits on object bytes held in memory, one for uploads and one for downloads.
//
// Uploads: a client that trickles its body keeps a partly filled stripe buffer for as long as it
// likes; a thousand of them would hold a thousand buffers. With the budget spent, the next stripe
// waits before reading its client's socket (the bytes then wait in the kernel, not in this process).
// A stripe reserves all the bytes it can hold before it reads past its first chunk, so an upload
// never holds part of the budget while waiting for more of it to finish a stripe.
//
// Downloads: a GET holds the window it is sending and the windows it reads ahead (8 MiB each with
// the default layout). A client that stops reading keeps them, and 50 such clients held 1.7 GiB.
// Each window reserves its bytes before it is fetched and gives them back once they have left the
// process (reader.ts); a stream gives back the window it sent before it needs more, so no stream
// waits on itself, and one whose client stops lets its read-ahead go after 2 s (it then holds one).
// Only the window a stream needs next waits for memory; one read ahead takes memory only if it is
// free at once, so speculative reads never queue ahead of another GET's first window.
//
// Waiters are served in arrival order, so a large reservation is not starved by small ones. A wait
// is bounded too (`maxWaitMs`): when slow clients hold the budget that long, the waiting request is
// refused with 503 SlowDown (which S3 clients retry with back-off) instead of hanging.
import { s3Error } from '../s3/errors.js';

export type Release = () => void;

interface Waiter {
  bytes: number;
  grant: (release: Release) => void;
  timer: NodeJS.Timeout;
}

/** What a reservation whose client went away fails with (nobody sees it; it keeps the logs quiet). */
function clientGone(purpose: string): Error {
  return s3Error('RequestTimeout', `The client closed the connection while its request waited for ${purpose} memory.`);
}

/** How long a request waits for bytes of a budget before it is refused with SlowDown. */
export const BUDGET_WAIT_MS = 30_000;

export class MemoryBudget {
  private used = 0;
  private readonly waiters: Waiter[] = [];
  private wakeDue: NodeJS.Immediate | undefined;

  /** `purpose` names the budget in the SlowDown message ("upload", "download"). */
  constructor(readonly limit: number, readonly maxWaitMs = BUDGET_WAIT_MS, readonly purpose = 'upload') {
    if (!Number.isSafeInteger(limit) || limit <= 0) throw new RangeError(`${purpose} budget must be a positive integer, got ${limit}`);
  }

  /** Bytes reserved right now (over the limit only by one reservation larger than the whole limit). */
  get reserved(): number {
    return this.used;
  }

  /** Reservations waiting for bytes to be released. */
  get waiting(): number {
    return this.waiters.length;
  }

  /**
   * Resolves once `bytes` are reserved; call the release exactly once (later calls are ignored).
   * A reservation larger than the whole limit is granted when nothing else is held, so it cannot wait forever.
   * `signal` (the client went away) takes a waiting reservation out of the queue at once: a request
   * nobody waits for must not be served its turn (and fetch what it would send) before the others.
   */
  reserve(bytes: number, signal?: AbortSignal): Promise<Release> {
    if (signal?.aborted) return Promise.reject(clientGone(this.purpose));
    if (this.waiters.length === 0 && this.fits(bytes)) return Promise.resolve(this.take(bytes));
    return new Promise((grant, refuse) => {
      const leave = (err: Error): void => {
        const at = this.waiters.indexOf(waiter);
        if (at < 0) return;
        this.waiters.splice(at, 1);
        clearTimeout(waiter.timer);
        signal?.removeEventListener('abort', onAbort);
        refuse(err);
        this.wakeAtTurnEnd(); // a large waiter leaving may let smaller ones behind it in
      };
      const onAbort = (): void => leave(clientGone(this.purpose));
      const waiter: Waiter = {
        bytes,
        grant: (release) => {
          signal?.removeEventListener('abort', onAbort);
          grant(release);
        },
        timer: setTimeout(() => leave(s3Error('SlowDown', `Please reduce your request rate. (${this.purpose} memory busy for ${this.maxWaitMs} ms)`)), this.maxWaitMs),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  /** `bytes` reserved now if they are free and nobody waits, else undefined (nothing is queued). */
  tryReserve(bytes: number): Release | undefined {
    return this.waiters.length === 0 && this.fits(bytes) ? this.take(bytes) : undefined;
  }

  private fits(bytes: number): boolean {
    return this.used + bytes <= this.limit || this.used === 0;
  }

  private take(bytes: number): Release {
    this.used += bytes;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.used -= bytes;
      this.wakeAtTurnEnd();
    };
  }

  /**
   * Serves the waiters at the end of the event loop's turn, not inside a release: clients whose
   * connections were seen closing in the same turn as the release have left the queue by then.
   * Served inside the release, the waiter next in line got the memory before its own close was
   * seen, took a buffer and read what its client had sent before finding it gone.
   */
  private wakeAtTurnEnd(): void {
    if (this.wakeDue !== undefined || this.waiters.length === 0) return;
    this.wakeDue = setImmediate(() => {
      this.wakeDue = undefined;
      this.wake();
    });
  }

  private wake(): void {
    while (this.waiters.length > 0 && this.fits(this.waiters[0]!.bytes)) {
      const waiter = this.waiters.shift()!;
      clearTimeout(waiter.timer);
      waiter.grant(this.take(waiter.bytes));
    }
  }
}

/**
 * Default for every gateway process: 32 stripes of the default layout (4 × 256 KiB) filling at
 * once, far more than a few fast uploads need (each fills one stripe at a time), while 1,000
 * trickling uploads keep the gateway under 256 MiB resident (bench rss.idle).
 */
export const DEFAULT_UPLOAD_BUDGET_BYTES = 32 * 1024 * 1024;

export const sharedUploadBudget = new MemoryBudget(DEFAULT_UPLOAD_BUDGET_BYTES, BUDGET_WAIT_MS, 'upload');

/**
 * Default for every gateway process: 8 windows of the default layout (4 × 2 MiB). A GET at full
 * speed holds three (one sending, two read ahead), one whose client stopped holds one; more GETs
 * share, each still reading one window while it sends another. The gateway's own resident memory is about 140 MiB, so with this much on
 * top it stays under 256 MiB however many clients stop reading (bench rss.paused).
 */
export const DEFAULT_DOWNLOAD_BUDGET_BYTES = 64 * 1024 * 1024;

export const sharedDownloadBudget = new MemoryBudget(DEFAULT_DOWNLOAD_BUDGET_BYTES, BUDGET_WAIT_MS, 'download');
