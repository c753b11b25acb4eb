// Bucket records (owner, policy) as the gateway needs them on every request: to say NoSuchBucket
// before a PUT streams any byte, and to authorize every caller but root. A record is trusted for
// BUCKET_RECORD_MAX_AGE_MS (2 s, counted from when it was asked for) without asking the namespace
// again, which saves a namespace round trip per request — for a user's 4 KiB GETs that lookup cost
// more CPU than the GET itself. A missing bucket is never cached (a bucket created through another
// gateway is usable at once).
//
// What a stale record can do, and why that is acceptable: existence is only an early answer (the
// commit checks the bucket atomically, so a bucket deleted within the TTL costs a wasted upload
// that ends in NoSuchBucket, never an object in a deleted bucket). An owner or policy change made
// through this gateway takes effect here at once (forget/remember); through another gateway,
// within the TTL — as a disabled access key does (auth/identities.ts), and as AWS's own bucket
// policy changes, which are eventually consistent. A bucket deleted and re-created by someone else
// within that time would be the one hole — its old owner authorized in a stranger's bucket — so
// the namespace holds a deleted bucket's name from other owners for longer (BUCKET_NAME_HOLD_MS:
// their CreateBucket answers OperationAborted, as AWS does while a deleted name is not yet free).
import type { NamespaceClient } from '../namespace/client.js';
import { BUCKET_RECORD_MAX_AGE_MS, type BucketRecord } from '../namespace/types.js';
import { TtlCache, type TtlCacheOptions, type TtlCacheStats } from '../common/ttl-cache.js';

export class BucketRecords {
  private readonly records: TtlCache<BucketRecord>;

  constructor(namespace: Pick<NamespaceClient, 'getBucket'>, opts: TtlCacheOptions = {}) {
    this.records = new TtlCache((bucket) => namespace.getBucket(bucket), { ttlMs: BUCKET_RECORD_MAX_AGE_MS, ...opts });
  }

  /** The bucket's record, at most the TTL old; NoSuchBucket from the namespace if it has none. */
  get(bucket: string): Promise<BucketRecord> {
    return this.records.get(bucket);
  }

  get stats(): Readonly<TtlCacheStats> {
    return this.records.stats;
  }

  /** This gateway deleted the bucket: stop vouching for it at once. */
  forget(bucket: string): void {
    this.records.forget(bucket);
  }

  /** This gateway changed the bucket (its policy): use the record the namespace returned. */
  remember(record: BucketRecord): void {
    this.records.remember(record.name, record);
  }
}
