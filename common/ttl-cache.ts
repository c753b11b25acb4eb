// A small cache of answers the gateway asks another service for on every request (who owns this
// access key, what is this bucket's owner and policy): an answer is used for `ttlMs` and fetched
// again after that, concurrent misses for one key share a single fetch, and at most `maxEntries`
// are kept (the least recently fetched go first). A fetch that fails is not cached: the next caller
// asks again, so an outage never outlives itself. What a "no" looks like is the loader's choice —
// return a value for it to have it cached, throw to have it asked about every time.
//
// An entry in use is refreshed ahead: once it is half the TTL old, the next caller still gets it
// and a fetch starts beside. A busy key then never expires, so its callers never all stop at once
// for a round trip to the namespace (every 2 s, 256 clients of one key would); an entry past the
// TTL is never served, so the bound on staleness stays the TTL.

export interface TtlCacheOptions {
  /** How long a fetched answer is trusted (default 2 s). */
  ttlMs?: number;
  /** Entries kept at most (default 10,000). */
  maxEntries?: number;
  now?: () => number;
}

/**
 * What a cache has answered since start: from memory, or by asking its source. A get that joins a
 * fetch already under way for its key counts as neither (it neither hit nor asked again).
 */
export interface TtlCacheStats {
  /** Gets answered from a cached entry (an entry being refreshed ahead among them). */
  hits: number;
  /** Fetches started: a miss, an entry past its TTL, or a refresh ahead. */
  fetches: number;
}

interface Entry<V> {
  value: V;
  fetchedAt: number;
}

/** One fetch in flight; forget() drops it, and then what it brings back is not stored. */
interface Flight<V> {
  promise?: Promise<V>;
}

export class TtlCache<V> {
  private readonly entries = new Map<string, Entry<V>>();
  private readonly flights = new Map<string, Flight<V>>();
  readonly stats: TtlCacheStats = { hits: 0, fetches: 0 };
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(
    private readonly load: (key: string) => Promise<V>,
    opts: TtlCacheOptions = {},
  ) {
    this.ttlMs = opts.ttlMs ?? 2_000;
    this.maxEntries = opts.maxEntries ?? 10_000;
    this.now = opts.now ?? Date.now;
  }

  /** The cached answer while fresh, else the (shared) result of a new fetch. */
  get(key: string): Promise<V> {
    const cached = this.entries.get(key);
    if (cached !== undefined) {
      const age = this.now() - cached.fetchedAt;
      if (age < this.ttlMs) {
        if (age >= this.ttlMs / 2 && !this.flights.has(key)) {
          // Its failure reaches nobody: the entry stays until its TTL, then a caller fetches and hears it.
          this.start(key).catch(() => undefined);
        }
        this.stats.hits++;
        return Promise.resolve(cached.value);
      }
    }
    return this.flights.get(key)?.promise ?? this.start(key);
  }

  /** This process changed what `key` answers: ask again on the next get, not after the TTL. */
  forget(key: string): void {
    this.entries.delete(key);
    this.flights.delete(key);
  }

  /** This process just learned `key`'s current answer (from the write that changed it). */
  remember(key: string, value: V): void {
    this.forget(key);
    this.store(key, value);
  }

  get size(): number {
    return this.entries.size;
  }

  private start(key: string): Promise<V> {
    const flight: Flight<V> = {};
    this.stats.fetches++;
    this.flights.set(key, flight);
    flight.promise = this.fetch(key, flight);
    return flight.promise;
  }

  private async fetch(key: string, flight: Flight<V>): Promise<V> {
    // Aged from the ask, not the answer: what the answer says held at some moment after the ask, so
    // no entry is ever used more than ttlMs after the state it shows (a slow answer only ages faster).
    const askedAt = this.now();
    try {
      const value = await this.load(key);
      if (this.flights.get(key) === flight) this.store(key, value, askedAt);
      return value;
    } finally {
      if (this.flights.get(key) === flight) this.flights.delete(key);
    }
  }

  private store(key: string, value: V, fetchedAt = this.now()): void {
    this.entries.delete(key);
    this.entries.set(key, { value, fetchedAt });
    for (const oldest of this.entries.keys()) {
      if (this.entries.size <= this.maxEntries) break;
      this.entries.delete(oldest);
    }
  }
}
