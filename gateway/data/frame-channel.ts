// The body of one streamed shard upload: the writer queues frames, the node client's HTTP client
// pulls them. A PassThrough did this before; this one also keeps pooled stripe buffers safe to
// reuse (common/buffer-pool.ts): it holds every frame it queues, and lets go of a frame only when
// the HTTP client pulls the next one — undici writes a pulled chunk to its socket before it pulls
// again, and the socket holds the chunk itself from that write until the kernel has it.
import { holdView, releaseBuffer } from '../../common/buffer-pool.js';

export class UploadCancelledError extends Error {
  constructor() {
    super('the shard upload was cancelled');
    this.name = 'UploadCancelledError';
  }
}

export class FrameChannel implements AsyncIterable<Buffer> {
  private readonly queue: Buffer[] = [];
  private queuedBytes = 0;
  private ended = false;
  private cancelled = false;
  private wakeReader: (() => void) | undefined;
  private drainWaiters: (() => void)[] = [];

  /** `highWaterMark`: queued bytes at which `write` asks the writer to wait for `drained`. */
  constructor(private readonly highWaterMark: number) {}

  get destroyed(): boolean {
    return this.cancelled;
  }

  /** Queues a frame; false once the queue has reached its high-water mark (or the channel is gone). */
  write(frame: Buffer): boolean {
    if (this.cancelled) return false;
    if (this.ended) throw new Error('write after the end of a shard upload');
    holdView(frame);
    this.queue.push(frame);
    this.queuedBytes += frame.length;
    this.wake();
    return this.queuedBytes < this.highWaterMark;
  }

  /** No more frames: the upload ends once the queue is sent. */
  end(): void {
    this.ended = true;
    this.wake();
  }

  /** Gives up: queued frames are dropped and the HTTP client's next pull fails, aborting the request. */
  destroy(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    for (const frame of this.queue.splice(0)) releaseBuffer(frame);
    this.queuedBytes = 0;
    this.wake();
    this.drain();
  }

  /** Resolves once the queue is below its high-water mark, or the channel is destroyed. */
  drained(): Promise<void> {
    if (this.cancelled || this.queuedBytes < this.highWaterMark) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    for (;;) {
      if (this.cancelled) throw new UploadCancelledError();
      const frame = this.queue.shift();
      if (frame) {
        this.queuedBytes -= frame.length;
        if (this.queuedBytes < this.highWaterMark) this.drain();
        try {
          yield frame;
        } finally {
          releaseBuffer(frame);
        }
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wakeReader = resolve));
    }
  }

  private wake(): void {
    const wake = this.wakeReader;
    this.wakeReader = undefined;
    wake?.();
  }

  private drain(): void {
    for (const resolve of this.drainWaiters.splice(0)) resolve();
  }
}
