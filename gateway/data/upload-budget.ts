// A process-wide limit on upload bytes held in memory while their stripe fills. A client that
// trickles its body keeps a partly filled stripe buffer for as long as it likes; a thousand of them
// would hold a thousand buffers. With the budget spent, the next stripe waits before reading its
// client's socket (the bytes then wait in the kernel, not in this process).
//
// Deadlock freedom: a stripe reserves all the bytes it can hold before it reads past its first
// chunk, so an upload never holds part of the budget while waiting for more of it to finish a
// stripe. Waiters are served in arrival order, so a large reservation is not starved by small ones.
// A wait is bounded too (`maxWaitMs`): when slow clients hold the budget that long, the waiting
// upload is refused with 503 SlowDown (which S3 clients retry with back-off) instead of hanging.
import { s3Error } from '../s3/errors.js';

export type Release = () => void;

interface Waiter {
  bytes: number;
  grant: (release: Release) => void;
  timer: NodeJS.Timeout;
}

export class UploadBudget {
  private used = 0;
  private readonly waiters: Waiter[] = [];

  constructor(readonly limit: number, readonly maxWaitMs = 30_000) {
    if (!Number.isSafeInteger(limit) || limit <= 0) throw new RangeError(`upload budget must be a positive integer, got ${limit}`);
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
   */
  reserve(bytes: number): Promise<Release> {
    if (this.waiters.length === 0 && this.fits(bytes)) return Promise.resolve(this.take(bytes));
    return new Promise((grant, refuse) => {
      const waiter: Waiter = {
        bytes,
        grant,
        timer: setTimeout(() => {
          this.waiters.splice(this.waiters.indexOf(waiter), 1);
          refuse(s3Error('SlowDown', `Please reduce your request rate. (upload memory busy for ${this.maxWaitMs} ms)`));
          this.wake(); // a large waiter leaving may let smaller ones behind it in
        }, this.maxWaitMs),
      };
      this.waiters.push(waiter);
    });
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
      this.wake();
    };
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

export const sharedUploadBudget = new UploadBudget(DEFAULT_UPLOAD_BUDGET_BYTES);
