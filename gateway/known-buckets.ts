// "Does this bucket exist?" before a PUT or copy streams any byte: a bucket seen to exist is taken
// as existing for `ttlMs` without asking the namespace again. This is only an early answer — the
// commit itself checks the bucket atomically — so a bucket deleted within the TTL costs a wasted
// upload that ends in NoSuchBucket, never an object in a deleted bucket. It saves one namespace
// round trip per small PUT.
import type { NamespaceClient } from '../namespace/client.js';

export class KnownBuckets {
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly namespace: Pick<NamespaceClient, 'getBucket'>,
    private readonly ttlMs = 2_000,
    private readonly maxEntries = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Resolves if the bucket exists (or did within the TTL); NoSuchBucket from the namespace otherwise. */
  async require(bucket: string): Promise<void> {
    const at = this.seen.get(bucket);
    if (at !== undefined && this.now() - at < this.ttlMs) return;
    await this.namespace.getBucket(bucket);
    this.seen.delete(bucket);
    if (this.seen.size >= this.maxEntries) this.seen.delete(this.seen.keys().next().value!);
    this.seen.set(bucket, this.now());
  }

  /** This gateway deleted the bucket: stop vouching for it at once. */
  forget(bucket: string): void {
    this.seen.delete(bucket);
  }
}
