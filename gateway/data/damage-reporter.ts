// Tells repair (through the namespace's durable repair queue) about shards that a GET found bad.
// Only shard-level damage is reported — a corrupt block, a shard missing from a live node, a short
// read — not node-level outages: repair finds a down node's shards from the reverse index itself,
// and reporting every shard of every GET while a node is down would flood the queue.
import type { Logger } from '../../common/log.js';
import type { Counter } from '../../common/metrics.js';
import type { NamespaceClient } from '../../namespace/client.js';
import type { DamageReport } from '../../namespace/types.js';
import type { ShardFailure } from './reader.js';

const REPORTED_CODES: Record<string, DamageReport['reason']> = {
  CorruptBlock: 'corrupt',
  NoSuchShard: 'unreadable',
  ShortRead: 'unreadable',
};

/** Reports waiting to be sent; beyond this they are dropped (and counted): the scrubber finds them later. */
const MAX_PENDING = 1000;
const FLUSH_INTERVAL_MS = 1000;

export class DamageReporter {
  private pending = new Map<string, DamageReport>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;

  constructor(
    private readonly namespace: Pick<NamespaceClient, 'reportDamage'>,
    private readonly log: Logger,
    private readonly dropped: Counter,
  ) {}

  report(failure: ShardFailure): void {
    const reason = REPORTED_CODES[failure.code];
    if (!reason) return;
    const { record } = failure;
    const id = `${record.versionId}.${failure.segment}.${failure.index}`;
    if (this.pending.has(id)) return;
    if (this.pending.size >= MAX_PENDING) {
      this.dropped.inc();
      return;
    }
    this.pending.set(id, {
      bucket: record.bucket,
      key: record.key,
      versionId: record.versionId,
      segment: failure.segment,
      shardIndex: failure.index,
      nodeId: failure.nodeId,
      reason,
    });
    this.timer ??= setTimeout(() => this.flushInBackground(), FLUSH_INTERVAL_MS);
  }

  private flushInBackground(): void {
    this.flush().catch((err: unknown) => this.log.error('damage report flush failed', { err }));
  }

  /** Sends what is pending; on failure the reports are kept for the next flush (within MAX_PENDING). */
  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.flushing;
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    // Promise.resolve().then: a synchronous throw must land in the same catch as a rejection.
    this.flushing = Promise.resolve()
      .then(() => this.namespace.reportDamage([...batch.values()]))
      .then(() => this.log.info('reported damaged shards to repair', { count: batch.size }))
      .catch((err: unknown) => {
        this.log.warn('could not report damaged shards; will retry', { count: batch.size, err });
        for (const [id, report] of batch) if (this.pending.size < MAX_PENDING) this.pending.set(id, report);
        this.timer ??= setTimeout(() => this.flushInBackground(), FLUSH_INTERVAL_MS);
      })
      .finally(() => (this.flushing = undefined));
    await this.flushing;
  }
}
