// Large buffers reused instead of freed. Every fresh Buffer of a MiB is external memory to V8, and
// external memory is what triggers its collections: a large PUT allocated 1.5 MiB of stripe buffers
// per MiB of object, and the gateway ran a full mark-compact every ~15 MiB (trace-gc: "external
// memory pressure"), with the GC's helper threads at 2.5 ms of CPU per MiB. Reusing the stripe
// buffers took the gateway from 8.3 / 7.9 / 9.3 to 5.9 / 6.3 / 7.4 ms of CPU per MiB stored (A/B).
//
// A buffer may be reused only once nothing can still read it, and a buffer handed to a socket is
// read by the kernel at some later time. So a pooled buffer carries a lease: a count of holders.
// The one who takes it holds it once; whoever passes a view of it on takes a hold of its own
// (`holdView`) before letting go of theirs; a socket set up by `releaseOnWritten` holds every
// leased chunk written to it until the write's callback. At zero holders the buffer goes back to
// its pool. A holder that never lets go costs only the reuse: the buffer is then garbage collected
// like any other, so a missed release can never corrupt data, only an early one could — which is
// why a release below zero is a bug that throws.
import type { Socket } from 'node:net';
import { QuietTimer } from './quiet-timer.js';

const leases = new WeakMap<ArrayBufferLike, Lease>();

export class Lease {
  private holders = 1;

  constructor(private readonly pool: BufferPool, private readonly buffer: Buffer) {}

  hold(): void {
    if (this.holders <= 0) throw new Error('a released buffer was held again');
    this.holders++;
  }

  release(): void {
    if (this.holders <= 0) throw new Error('a pooled buffer was released more often than it was held');
    if (--this.holders === 0) this.pool.giveBack(this.buffer);
  }
}

export class BufferPool {
  private readonly idle = new Map<number, Buffer[]>();
  private idleBytes = 0;
  private readonly quiet: QuietTimer;
  /** Buffers handed out from the idle ones, and newly allocated: for metrics and tests. */
  reused = 0;
  allocated = 0;

  /**
   * Keeps up to `maxIdleBytes` of idle buffers, and lets them all go once none has been taken for
   * `trimAfterMs`: a burst of large transfers must not leave its buffers resident for good (the
   * gateway kept 24 MiB of stripes after one 512 MiB PUT, on top of what 1,000 connections need next).
   */
  constructor(readonly maxIdleBytes: number, trimAfterMs = Infinity) {
    this.quiet = new QuietTimer(trimAfterMs, () => this.trim());
  }

  /** A buffer of exactly `size` bytes, held once by the caller. */
  take(size: number): Buffer {
    this.quiet.touch();
    const spare = this.idle.get(size)?.pop();
    if (spare) {
      this.idleBytes -= size;
      this.reused++;
    } else {
      this.allocated++;
    }
    // Never from Node's shared small-buffer pool: the lease is keyed by the whole ArrayBuffer.
    const buffer = spare ?? Buffer.allocUnsafeSlow(size);
    leases.set(buffer.buffer, new Lease(this, buffer));
    return buffer;
  }

  /** Bytes of idle buffers kept for reuse. */
  get idleSize(): number {
    return this.idleBytes;
  }

  /** @internal by Lease, at zero holders. */
  giveBack(buffer: Buffer): void {
    leases.delete(buffer.buffer);
    if (this.idleBytes + buffer.length > this.maxIdleBytes) return;
    let list = this.idle.get(buffer.length);
    if (!list) this.idle.set(buffer.length, (list = []));
    list.push(buffer);
    this.idleBytes += buffer.length;
    this.quiet.arm();
  }

  /** Drops every idle buffer (the garbage collector frees them). */
  trim(): void {
    this.idle.clear();
    this.idleBytes = 0;
  }
}

/** Lets go of the caller's hold on a buffer from `BufferPool.take` (or on any view of it). */
export function releaseBuffer(view: Uint8Array): void {
  leases.get(view.buffer)?.release();
}

/** Takes a hold on the pooled buffer under `view`; returns its lease, or undefined if it is not pooled. */
export function holdView(view: Uint8Array): Lease | undefined {
  const lease = leases.get(view.buffer);
  lease?.hold();
  return lease;
}

type WriteCallback = (err?: Error | null) => void;

/**
 * Makes `socket` hold every pooled chunk written to it until the write has completed (its callback,
 * which Node calls also when the socket is destroyed first), so that a pooled buffer handed to an
 * HTTP client is not reused while the kernel may still be sending it.
 */
export function releaseOnWritten(socket: Socket): void {
  const write = socket.write as (this: Socket, ...args: unknown[]) => boolean;
  socket.write = function (this: Socket, chunk: unknown, encodingOrCallback?: unknown, callback?: unknown): boolean {
    const lease = chunk instanceof Uint8Array ? holdView(chunk) : undefined;
    if (!lease) return write.call(this, chunk, encodingOrCallback, callback);
    const done = (typeof encodingOrCallback === 'function' ? encodingOrCallback : callback) as WriteCallback | undefined;
    return write.call(this, chunk, (err?: Error | null) => {
      lease.release();
      done?.(err);
    });
  } as Socket['write'];
}
