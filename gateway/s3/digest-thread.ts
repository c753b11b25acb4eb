// Large PUT bodies are hashed on a worker thread. MD5 (always, for the ETag) and the default
// CRC64NVME checksum took a third of the gateway's event loop on a large PUT (cpu profile of
// `npm run bench -- --only large`: hash update 18%, CRC64NVME 16%), and that loop is what bounds
// one stream's throughput. Bodies are copied into 1 MiB batches whose buffers move to the thread
// and back (transferred, never cloned); at most MAX_BATCHES_IN_FLIGHT per body are queued there,
// after which the body waits, so a slow thread slows uploads instead of growing memory. Small
// bodies are hashed on the event loop: a round trip to the thread costs more than their hashing.
import { Worker } from 'node:worker_threads';
import { BodyHashers, type BodyDigests, type BodyDigestSpec } from './body-digests.js';

const BATCH_BYTES = 1024 * 1024;
/** Per body: bounds the bytes one upload has queued at the thread to 4 MiB. */
const MAX_BATCHES_IN_FLIGHT = 4;
/** Batch buffers kept for reuse once their bodies are done. */
const SPARE_BUFFERS = 32;
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
  return declaredLength >= OFFLOAD_MIN_BYTES ? new OffThreadDigester(digestThread, spec) : new InlineDigester(spec);
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

/** The one worker thread, started on first use (or by `startDigestThread`) and again after a crash. */
class DigestThread {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly handlers = new Map<number, Handler>();
  private readonly spare: ArrayBuffer[] = [];
  /** Bodies hashed here since start, for tests and metrics. */
  offloaded = 0;

  start(): Worker {
    if (this.worker) return this.worker;
    // The service runs TypeScript through tsx's loader, which a worker does not inherit.
    const url = new URL(`./digest-thread-main${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url).href;
    const boot = import.meta.url.endsWith('.ts')
      ? `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(url)}); })`
      : `import(${JSON.stringify(url)})`;
    const worker = new Worker(boot, { eval: true });
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

  takeBuffer(): ArrayBuffer {
    return this.spare.pop() ?? new ArrayBuffer(BATCH_BYTES);
  }

  giveBuffer(buffer: ArrayBuffer): void {
    if (this.spare.length < SPARE_BUFFERS && buffer.byteLength === BATCH_BYTES) this.spare.push(buffer);
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

/** Starts the thread ahead of the first large PUT (which would otherwise wait for it to load). */
export function startDigestThread(): void {
  digestThread.start();
}

export function digestThreadStats(): { offloaded: number; openAtThread: () => Promise<number> } {
  return { offloaded: digestThread.offloaded, openAtThread: () => digestThread.openAtThread() };
}

class OffThreadDigester implements BodyDigester {
  private readonly id: number;
  private batch: Buffer;
  private filled = 0;
  private inFlight = 0;
  private failure: Error | undefined;
  private waiting: { resolve: () => void; reject: (err: Error) => void } | undefined;
  private finishing: { resolve: (d: BodyDigests) => void; reject: (err: Error) => void } | undefined;
  private closed = false;

  constructor(private readonly thread: DigestThread, spec: BodyDigestSpec) {
    this.id = thread.open(spec, (m) => this.onMessage(m));
    this.batch = Buffer.from(thread.takeBuffer());
  }

  update(piece: Buffer): Promise<void> | undefined {
    if (this.failure) throw this.failure;
    for (let off = 0; off < piece.length; ) {
      const n = Math.min(piece.length - off, BATCH_BYTES - this.filled);
      piece.copy(this.batch, this.filled, off, off + n);
      this.filled += n;
      off += n;
      if (this.filled === BATCH_BYTES) this.flush();
    }
    if (this.inFlight < MAX_BATCHES_IN_FLIGHT) return undefined;
    return new Promise((resolve, reject) => (this.waiting = { resolve, reject }));
  }

  finish(): Promise<BodyDigests> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.filled > 0) this.flush();
    this.thread.giveBuffer(this.batch.buffer as ArrayBuffer);
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
    this.thread.giveBuffer(this.batch.buffer as ArrayBuffer);
    if (!this.failure) this.thread.post({ op: 'abort', id: this.id });
  }

  private flush(): void {
    const buffer = this.batch.buffer as ArrayBuffer;
    this.thread.post({ op: 'data', id: this.id, buffer, length: this.filled }, [buffer]);
    this.inFlight++;
    this.batch = Buffer.from(this.thread.takeBuffer());
    this.filled = 0;
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
