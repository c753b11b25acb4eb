// Request batching for a client of a single-threaded service: up to `maxInFlight` requests go out
// as they come; while that many are out, new items wait and leave together as one batch when a
// request comes back. A quiet caller therefore pays no delay, and a busy one pays one request's
// fixed cost (HTTP parsing, signing, a connection's turn) per batch instead of per item: for the
// namespace that fixed cost was most of a small object's commit (360 us of namespace CPU through
// HTTP against 120-170 us in process).

/** What the service answered for one item of a batch: its result, or the error it gets. */
export type Outcome<R> = { ok: true; value: R } | { ok: false; error: Error };

/** The outcome of a lone request, as a batch would report it. */
export async function outcomeOf<R>(answer: Promise<R>): Promise<Outcome<R>> {
  try {
    return { ok: true, value: await answer };
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err : new Error(String(err)) };
  }
}

export interface BatcherOptions<I = unknown> {
  /** Requests out at once; items beyond wait for one to come back. */
  maxInFlight: number;
  /** Most items in one request. */
  maxBatch: number;
  /** With `weigh`: most weight (bytes, say) in one request; an item heavier than this still goes, alone. */
  maxBatchWeight?: number;
  weigh?: (item: I) => number;
  /**
   * Hold an item that could go at once until the event loop's turn ends (setImmediate), so that
   * the items of one turn leave together: a server's callbacks for requests read off several
   * sockets in one poll each submit theirs, and without this the first few went out alone, one
   * request each. A quiet caller waits for the rest of one turn, well under a millisecond.
   */
  gatherTurn?: boolean;
}

interface Waiting<I, R> {
  item: I;
  resolve: (value: R) => void;
  reject: (err: Error) => void;
  /** performance.now() at submit. */
  since: number;
}

/**
 * What a batcher has sent, for metrics and tests. Per item, queuedSeconds / items is how long an
 * item waited for a request to carry it; per request, requestSeconds / requests is the service's
 * round trip as its callers see it (the service's own time plus both event loops' queues).
 */
export interface BatcherStats {
  requests: number;
  items: number;
  queuedSeconds: number;
  requestSeconds: number;
}

/** The sum of several batchers' stats (a client per node, say). */
export function sumBatcherStats(all: Iterable<BatcherStats>): BatcherStats {
  const sum: BatcherStats = { requests: 0, items: 0, queuedSeconds: 0, requestSeconds: 0 };
  for (const s of all) {
    sum.requests += s.requests;
    sum.items += s.items;
    sum.queuedSeconds += s.queuedSeconds;
    sum.requestSeconds += s.requestSeconds;
  }
  return sum;
}

export class Batcher<I, R> {
  private readonly waiting: Waiting<I, R>[] = [];
  /** A pump is due at the end of this turn (gatherTurn). */
  private turnEndPump: NodeJS.Immediate | undefined;
  private inFlight = 0;
  readonly stats: BatcherStats = { requests: 0, items: 0, queuedSeconds: 0, requestSeconds: 0 };

  /**
   * `send` carries one or more items and resolves to one outcome per item, in order; a rejection
   * fails every item it carried.
   */
  constructor(private readonly send: (items: I[]) => Promise<Outcome<R>[]>, private readonly opts: BatcherOptions<I>) {
    if (!(opts.maxInFlight >= 1 && opts.maxBatch >= 1)) throw new RangeError('maxInFlight and maxBatch must be at least 1');
  }

  /**
   * `signal` gives up on the item: it rejects at once with the signal's reason. One still waiting is
   * then never sent; one already sent leaves its request to run its course, answer unheard.
   */
  submit(item: I, signal?: AbortSignal): Promise<R> {
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return new Promise<R>((resolve, reject) => {
      const entry: Waiting<I, R> = { item, resolve, reject, since: performance.now() };
      if (signal) {
        const giveUp = (): void => {
          const at = this.waiting.indexOf(entry);
          if (at >= 0) this.waiting.splice(at, 1);
          reject(abortReason(signal));
        };
        signal.addEventListener('abort', giveUp, { once: true });
        const settled = (): void => signal.removeEventListener('abort', giveUp);
        entry.resolve = (value) => (settled(), resolve(value));
        entry.reject = (err) => (settled(), reject(err));
      }
      this.waiting.push(entry);
      if (this.opts.gatherTurn) this.pumpAtTurnEnd();
      else this.pump();
    });
  }

  /** Items waiting to be sent. */
  get queued(): number {
    return this.waiting.length;
  }

  private pumpAtTurnEnd(): void {
    if (this.turnEndPump !== undefined || this.inFlight >= this.opts.maxInFlight) return;
    this.turnEndPump = setImmediate(() => {
      this.turnEndPump = undefined;
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.opts.maxInFlight && this.waiting.length > 0) {
      const batch = this.waiting.splice(0, this.batchLength());
      const now = performance.now();
      for (const w of batch) this.stats.queuedSeconds += (now - w.since) / 1000;
      this.inFlight++;
      this.stats.requests++;
      this.stats.items += batch.length;
      void this.carry(batch).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  /** How many of the waiting items the next request carries: at least one, within both limits. */
  private batchLength(): number {
    const { maxBatch, maxBatchWeight, weigh } = this.opts;
    const most = Math.min(maxBatch, this.waiting.length);
    if (maxBatchWeight === undefined || weigh === undefined) return most;
    let weight = weigh(this.waiting[0]!.item);
    let n = 1;
    while (n < most && weight + weigh(this.waiting[n]!.item) <= maxBatchWeight) weight += weigh(this.waiting[n++]!.item);
    return n;
  }

  private async carry(batch: Waiting<I, R>[]): Promise<void> {
    let outcomes: Outcome<R>[];
    try {
      outcomes = await this.timed(batch);
      if (outcomes.length !== batch.length) throw new Error(`a batch of ${batch.length} got ${outcomes.length} outcomes back`);
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      for (const w of batch) w.reject(error);
      return;
    }
    outcomes.forEach((outcome, i) => (outcome.ok ? batch[i]!.resolve(outcome.value) : batch[i]!.reject(outcome.error)));
  }

  /** Sends one request; its time counts whether it succeeds or fails. */
  private async timed(batch: Waiting<I, R>[]): Promise<Outcome<R>[]> {
    const started = performance.now();
    try {
      return await this.send(batch.map((w) => w.item));
    } finally {
      this.stats.requestSeconds += (performance.now() - started) / 1000;
    }
  }
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('withdrawn before it was sent');
}
