// Keyed readers-writer lock. The namespace is a single process, so this is what makes
// check-then-write sequences (conditions, bucket emptiness) atomic against each other.
// Waiters are served in arrival order so a bucket delete cannot be starved by a stream of commits.

interface Waiter {
  exclusive: boolean;
  grant: () => void;
}

interface Slot {
  readers: number;
  writer: boolean;
  queue: Waiter[];
}

export class KeyedLock {
  private readonly slots = new Map<string, Slot>();

  shared<T>(key: string, fn: () => Promise<T>): Promise<T> {
    return this.run(key, false, fn);
  }

  exclusive<T>(key: string, fn: () => Promise<T>): Promise<T> {
    return this.run(key, true, fn);
  }

  /**
   * Holds several keys exclusively. They are taken one by one in sorted order, so two callers
   * with overlapping key sets cannot deadlock each other.
   */
  async exclusiveAll<T>(keys: string[], fn: () => Promise<T>): Promise<T> {
    const sorted = [...new Set(keys)].sort();
    const held: string[] = [];
    try {
      for (const key of sorted) {
        await this.acquire(key, true);
        held.push(key);
      }
      return await fn();
    } finally {
      for (const key of held.reverse()) this.release(key, true);
    }
  }

  /** Keys currently held or awaited; lets tests check that nothing leaks. */
  get size(): number {
    return this.slots.size;
  }

  private async run<T>(key: string, exclusive: boolean, fn: () => Promise<T>): Promise<T> {
    await this.acquire(key, exclusive);
    try {
      return await fn();
    } finally {
      this.release(key, exclusive);
    }
  }

  private acquire(key: string, exclusive: boolean): Promise<void> {
    let slot = this.slots.get(key);
    if (!slot) {
      slot = { readers: 0, writer: false, queue: [] };
      this.slots.set(key, slot);
    }
    const s = slot;
    return new Promise<void>((resolve) => {
      s.queue.push({ exclusive, grant: resolve });
      this.pump(key, s);
    });
  }

  private release(key: string, exclusive: boolean): void {
    const slot = this.slots.get(key);
    if (!slot) return;
    if (exclusive) slot.writer = false;
    else slot.readers--;
    this.pump(key, slot);
  }

  private pump(key: string, slot: Slot): void {
    while (slot.queue.length > 0 && !slot.writer) {
      const head = slot.queue[0];
      if (head.exclusive && slot.readers > 0) break;
      slot.queue.shift();
      if (head.exclusive) slot.writer = true;
      else slot.readers++;
      head.grant();
    }
    if (!slot.writer && slot.readers === 0 && slot.queue.length === 0) this.slots.delete(key);
  }
}
