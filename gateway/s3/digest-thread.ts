// Large PUT bodies are hashed on a worker thread. MD5 (always, for the ETag) and the default
// CRC64NVME checksum took a third of the gateway's event loop on a large PUT (cpu profile of
// `npm run bench -- --only large`: hash update 18%, CRC64NVME 16%), and that loop is what bounds
// one stream's throughput. Bodies are copied into 1 MiB batches whose buffers move to the thread
// and back (transferred, never cloned); at most MAX_BATCHES_IN_FLIGHT per body are queued there,
// after which the body waits, so a slow thread slows uploads instead of growing memory. Small
// bodies are hashed on the event loop: a round trip to the thread costs more than their hashing.
// A large body goes to the thread only once its first MiB has arrived (kept until then as the
// pieces it came in, not copied): a thousand uploads trickling their first bytes hold only what
// they sent, not a batch buffer each.
import { Worker } from 'node:worker_threads';
import { RUNS_BUILD } from '../../common/source-tree.js';
import { QuietTimer } from '../../common/quiet-timer.js';
import { BodyHashers, type BodyDigests, type BodyDigestSpec } from './body-digests.js';

const BATCH_BYTES = 1024 * 1024;
/** Per body: bounds the bytes one upload has queued at the thread to 4 MiB. */
const MAX_BATCHES_IN_FLIGHT = 4;
/** Batch buffers kept for reuse once their bodies are done: enough for two bodies in full flow. */
const SPARE_BUFFERS = 2 * (MAX_BATCHES_IN_FLIGHT + 1);
/** Spare batch buffers are let go after this long without a large body. */
const SPARE_TRIM_AFTER_MS = 2_000;
/** Bodies declared at least this large are hashed off the event loop. */
export const OFFLOAD_MIN_BYTES = BATCH_BYTES;

export type ToDigestThread =
  | { op: 'open'; id: number; spec: BodyDigestSpec }
  | { op: 'data'; id: number; buffer: ArrayBuffer; length: number }
  | { op: 'finish'; id: number }
  | { op: 'abort'; id: number }
  | { op: 'stats'; id: number };

export type FromDigestThread =
  | { op: 'ack'; id: number; buffer: ArrayBuffer }
  | { op: 'done'; id: number; digests: BodyDigests }
  | { op: 'error'; id: number; message: string }
  | { op: 'stats'; id: number; open: number };

/** Hashes a body piece by piece; `update` may ask the caller to wait before the next piece. */
export interface BodyDigester {
  update(piece: Buffer): Promise<void> | undefined;
  finish(): Promise<BodyDigests>;
  /** Drops an unfinished body (its request failed). */
  abort(): void;
}

/** The body digester for a body of `declaredLength` bytes: on the event loop, or off it when large. */
export function createBodyDigester(spec: BodyDigestSpec, declaredLength: number): BodyDigester {
  return declaredLength >= OFFLOAD_MIN_BYTES ? new DeferredDigester(spec) : new InlineDigester(spec);
}

/** Holds a body's first pieces until a batch's worth has come, then hands them to the thread. */
class DeferredDigester implements BodyDigester {
  private held: Buffer[] = [];
  private heldBytes = 0;
  private offThread: OffThreadDigester | undefined;

  constructor(private readonly spec: BodyDigestSpec) {}

  update(piece: Buffer): Promise<void> | undefined {
    if (this.offThread) return this.offThread.update(piece);
    this.held.push(piece);
    this.heldBytes += piece.length;
    if (this.heldBytes < BATCH_BYTES) return undefined;
    this.offThread = new OffThreadDigester(digestThread, this.spec);
    const held = this.held;
    this.held = [];
    let wait: Promise<void> | undefined;
    for (const p of held) wait = this.offThread.update(p) ?? wait;
    return wait;
  }

  finish(): Promise<BodyDigests> {
    if (this.offThread) return this.offThread.finish();
    // It ended before a batch's worth: hashing it here is cheaper than the round trip.
    const hashers = new BodyHashers(this.spec);
    for (const p of this.held) hashers.update(p);
    this.held = [];
    return Promise.resolve(hashers.digests());
  }

  abort(): void {
    this.held = [];
    this.offThread?.abort();
  }
}

class InlineDigester implements BodyDigester {
  private readonly hashers: BodyHashers;
  constructor(spec: BodyDigestSpec) {
    this.hashers = new BodyHashers(spec);
  }
  update(piece: Buffer): undefined {
    this.hashers.update(piece);
    return undefined;
  }
  finish(): Promise<BodyDigests> {
    return Promise.resolve(this.hashers.digests());
  }
  abort(): void {}
}

type Handler = (message: FromDigestThread) => void;

/**
 * The one worker thread, started by the first large body (~22 MB of RSS from then on, for its
 * isolate and batch buffers, running the build; about 34 MB under tsx, which it must load too;
 * a gateway that never sees a large body does not pay it) and again after a crash.
 */
class DigestThread {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly handlers = new Map<number, Handler>();
  private readonly spare: ArrayBuffer[] = [];
  /** The spare batch buffers go once no large body has taken one for a while. */
  private readonly quiet = new QuietTimer(SPARE_TRIM_AFTER_MS, () => (this.spare.length = 0));
  /** Bodies hashed here since start, for tests and metrics. */
  offloaded = 0;

  start(): Worker {
    if (this.worker) return this.worker;
    // Under tsx (the tests) the worker must register the loader itself: workers do not inherit it.
    const url = new URL(`./digest-thread-main${RUNS_BUILD ? '.js' : '.ts'}`, import.meta.url).href;
    const boot = RUNS_BUILD
      ? `import(${JSON.stringify(url)})`
      : `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(url)}); })`;
    // Small heap limits: its heap holds only hash states (the batches are off-heap), so a default
    // young generation would only grow the gateway's RSS (effect within the rss bench's noise).
    const worker = new Worker(boot, { eval: true, resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 64 } });
    worker.on('message', (message: FromDigestThread) => this.handlers.get(message.id)?.(message));
    const fail = (err: Error): void => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      const handlers = [...this.handlers.entries()];
      this.handlers.clear();
      worker.unref();
      for (const [id, handler] of handlers) handler({ op: 'error', id, message: err.message });
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`the digest thread exited (code ${code})`)));
    this.worker = worker;
    // Kept alive by the process only while someone waits on it (after the listeners: adding a
    // 'message' listener refs the worker again).
    this.holdWhileWaited();
    return worker;
  }

  open(spec: BodyDigestSpec, handler: Handler): number {
    const id = this.listen(handler);
    this.post({ op: 'open', id, spec });
    this.offloaded++;
    return id;
  }

  close(id: number): void {
    this.handlers.delete(id);
    this.holdWhileWaited();
  }

  private listen(handler: Handler): number {
    const id = this.nextId++;
    this.handlers.set(id, handler);
    this.start();
    this.holdWhileWaited();
    return id;
  }

  private holdWhileWaited(): void {
    if (this.handlers.size > 0) this.worker?.ref();
    else this.worker?.unref();
  }

  post(message: ToDigestThread, transfer: ArrayBuffer[] = []): void {
    this.start().postMessage(message, transfer);
  }

  /**
   * Not zero-filled: a fresh batch's pages are touched only as bytes are copied in, so a thousand
   * trickling uploads hold what they sent, not a MiB each.
   */
  takeBuffer(): ArrayBuffer {
    this.quiet.touch();
    return this.spare.pop() ?? (Buffer.allocUnsafeSlow(BATCH_BYTES).buffer as ArrayBuffer);
  }

  giveBuffer(buffer: ArrayBuffer): void {
    if (this.spare.length < SPARE_BUFFERS && buffer.byteLength === BATCH_BYTES) this.spare.push(buffer);
    this.quiet.arm();
  }

  /** How many bodies the thread holds open (0 once every request has finished or failed). */
  openAtThread(): Promise<number> {
    return new Promise((resolve, reject) => {
      const id = this.listen((m) => {
        this.close(id);
        if (m.op === 'stats') resolve(m.open);
        else reject(new Error(m.op === 'error' ? m.message : `unexpected ${m.op}`));
      });
      this.post({ op: 'stats', id });
    });
  }
}

const digestThread = new DigestThread();

export function digestThreadStats(): { offloaded: number; openAtThread: () => Promise<number> } {
  return { offloaded: digestThread.offloaded, openAtThread: () => digestThread.openAtThread() };
}

interface Waiter {
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: Error) => void;
}

function waiter(): Waiter {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

class OffThreadDigester implements BodyDigester {
  private readonly id: number;
  /** Taken at the first byte, not at open: most uploads wait for budget before sending any. */
  private batch: Buffer | undefined;
  private filled = 0;
  private inFlight = 0;
  private failure: Error | undefined;
  private waiting: Waiter | undefined;
  private finishing: { resolve: (d: BodyDigests) => void; reject: (err: Error) => void } | undefined;
  private closed = false;

  constructor(private readonly thread: DigestThread, spec: BodyDigestSpec) {
    this.id = thread.open(spec, (m) => this.onMessage(m));
  }

  update(piece: Buffer): Promise<void> | undefined {
    if (this.failure) throw this.failure;
    for (let off = 0; off < piece.length; ) {
      this.batch ??= Buffer.from(this.thread.takeBuffer());
      const n = Math.min(piece.length - off, BATCH_BYTES - this.filled);
      piece.copy(this.batch, this.filled, off, off + n);
      this.filled += n;
      off += n;
      if (this.filled === BATCH_BYTES) this.flush();
    }
    if (this.inFlight < MAX_BATCHES_IN_FLIGHT) return undefined;
    // One wait for every caller until the backlog drains.
    this.waiting ??= waiter();
    return this.waiting.promise;
  }

  finish(): Promise<BodyDigests> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.filled > 0) this.flush();
    this.releaseBatch();
    this.closed = true;
    return new Promise((resolve, reject) => {
      this.finishing = { resolve, reject };
      this.thread.post({ op: 'finish', id: this.id });
    });
  }

  abort(): void {
    if (this.closed) return;
    this.closed = true;
    this.thread.close(this.id);
    this.releaseBatch();
    if (!this.failure) this.thread.post({ op: 'abort', id: this.id });
  }

  private flush(): void {
    const buffer = this.batch!.buffer as ArrayBuffer;
    this.thread.post({ op: 'data', id: this.id, buffer, length: this.filled }, [buffer]);
    this.inFlight++;
    this.batch = undefined;
    this.filled = 0;
  }

  private releaseBatch(): void {
    if (this.batch) this.thread.giveBuffer(this.batch.buffer as ArrayBuffer);
    this.batch = undefined;
  }

  private onMessage(m: FromDigestThread): void {
    if (m.op === 'ack') {
      this.inFlight--;
      this.thread.giveBuffer(m.buffer);
      if (this.waiting && this.inFlight < MAX_BATCHES_IN_FLIGHT) {
        const { resolve } = this.waiting;
        this.waiting = undefined;
        resolve();
      }
    } else if (m.op === 'done') {
      this.thread.close(this.id);
      const { md5, sha256, checksum } = m.digests;
      this.finishing?.resolve({ md5: Buffer.from(md5), sha256: sha256 && Buffer.from(sha256), checksum: checksum && Buffer.from(checksum) });
    } else if (m.op === 'error') {
      this.thread.close(this.id);
      this.failure = new Error(`hashing the body failed: ${m.message}`);
      this.waiting?.reject(this.failure);
      this.finishing?.reject(this.failure);
      this.waiting = this.finishing = undefined;
    }
  }
}
