// What every S3 operation handler may use: the clients of the other services and shared state.
import type { BatcherStats } from '../common/batcher.js';
import type { TtlCacheStats } from '../common/ttl-cache.js';
import type { Logger } from '../common/log.js';
import type { Counter, Histogram, Registry } from '../common/metrics.js';
import type { StripeCodec } from '../erasure/codec.js';
import type { NamespaceClient } from '../namespace/client.js';
import type { StorageNodePool } from '../storage-node/client.js';
import type { GatewayConfig } from './config.js';
import type { NodeDirectory } from './data/node-directory.js';
import type { DamageReporter } from './data/damage-reporter.js';
import type { BucketRecords } from './bucket-records.js';
import { stripeBufferPool } from './data/stripe-buffers.js';
import { sharedDownloadBudget, sharedUploadBudget, type MemoryBudget } from './data/memory-budget.js';

export interface GatewayMetrics {
  registry: Registry;
  requests: Counter;
  latency: Histogram;
  bytesIn: Counter;
  bytesOut: Counter;
  shardReadFailures: Counter;
  degradedReads: Counter;
  damageReportsDropped: Counter;
}

export interface GatewayServices {
  config: GatewayConfig;
  namespace: NamespaceClient;
  nodes: StorageNodePool;
  directory: NodeDirectory;
  codec: StripeCodec;
  log: Logger;
  metrics: GatewayMetrics;
  damage: DamageReporter;
  /** Bucket records read within the last 2 s: the early NoSuchBucket check of PUT and copy, and authorization. */
  buckets: BucketRecords;
  /** Memory for upload stripes being filled (the writer takes it from here); the process-wide default when absent. */
  uploadBudget?: MemoryBudget;
  /** Memory for GET windows being sent or read ahead; the process-wide default when absent. */
  downloadBudget?: MemoryBudget;
}

/** `budgets`: the memory budgets the process uses (reported as cairn_memory_budget_*). */
export function createGatewayMetrics(registry: Registry, budgets: readonly MemoryBudget[] = [sharedUploadBudget, sharedDownloadBudget]): GatewayMetrics {
  const stripeBuffers = registry.gauge('cairn_stripe_buffers_taken', 'Stripe buffers taken for uploads since start: reused from the pool, or newly allocated');
  stripeBuffers.set(() => stripeBufferPool.reused, { source: 'reused' });
  stripeBuffers.set(() => stripeBufferPool.allocated, { source: 'allocated' });
  registry.gauge('cairn_stripe_buffer_pool_idle_bytes', 'Bytes of idle stripe buffers kept for reuse').set(() => stripeBufferPool.idleSize);
  const reserved = registry.gauge('cairn_memory_budget_reserved_bytes', 'Object bytes held in memory under the process-wide budgets: upload stripes filling, download windows sent or read ahead');
  const waiting = registry.gauge('cairn_memory_budget_waiting', 'Requests waiting for bytes of a memory budget');
  for (const budget of budgets) {
    reserved.set(() => budget.reserved, { budget: budget.purpose });
    waiting.set(() => budget.waiting, { budget: budget.purpose });
  }
  return {
    registry,
    requests: registry.counter('cairn_s3_requests_total', 'S3 requests by operation and status'),
    latency: registry.histogram('cairn_s3_request_seconds', 'S3 request latency by operation'),
    bytesIn: registry.counter('cairn_s3_bytes_received_total', 'Object bytes received'),
    bytesOut: registry.counter('cairn_s3_bytes_sent_total', 'Object bytes sent'),
    shardReadFailures: registry.counter('cairn_shard_read_failures_total', 'Shard reads that failed and fell back to parity'),
    degradedReads: registry.counter('cairn_degraded_read_windows_total', 'Read windows reconstructed from parity'),
    damageReportsDropped: registry.counter('cairn_damage_reports_dropped_total', 'Damaged-shard reports dropped because too many were pending'),
  };
}

/**
 * The batching clients' traffic (commits, record reads and placements to the namespace; whole
 * shards of at most 128 KiB written, and shard ranges of at most 128 KiB read, to the nodes): per
 * item, how long it waited for a request to carry it; per request, its round trip as the gateway
 * sees it. Next to the namespace's own cairn_namespace_group_commit_* times, this splits a small
 * PUT's wait into the store's (the value log's append, the LevelDB write), the trip between the
 * processes, and the gateway's queue.
 */
export function exposeClientBatches(registry: Registry, namespace: Pick<NamespaceClient, 'commits' | 'reads' | 'placements'>, nodes: Pick<StorageNodePool, 'batchStats'>): void {
  const sources: { to: string; kind: string; stats: () => BatcherStats }[] = [
    { to: 'namespace', kind: 'commits', stats: () => namespace.commits.stats },
    { to: 'namespace', kind: 'records', stats: () => namespace.reads.stats },
    { to: 'namespace', kind: 'placements', stats: () => namespace.placements.stats },
    { to: 'storage', kind: 'small_shard_writes', stats: () => nodes.batchStats().shardWrites },
    { to: 'storage', kind: 'small_shard_reads', stats: () => nodes.batchStats().smallReads },
  ];
  const requests = registry.gauge('cairn_batched_requests_total', 'Requests of the batching internal clients, each carrying one item or several');
  const items = registry.gauge('cairn_batched_items_total', 'Items those requests carried');
  const queued = registry.gauge('cairn_batched_queued_seconds_total', 'Summed over items: time waiting for a request to carry them (the client keeps a few requests out at once)');
  const roundTrips = registry.gauge('cairn_batched_request_seconds_total', 'Summed over requests: their round trip as the gateway sees it (the service, both event loops, the network)');
  for (const { to, kind, stats } of sources) {
    const labels = { to, kind };
    requests.set(() => stats().requests, labels);
    items.set(() => stats().items, labels);
    queued.set(() => stats().queuedSeconds, labels);
    roundTrips.set(() => stats().requestSeconds, labels);
  }
}

/**
 * The gateway's caches of namespace answers (access keys, bucket records): how many lookups each
 * answered from memory and how many it asked the namespace for. Hits far above fetches is the
 * cache doing its job; fetches close to hits means its TTL is too short for the traffic.
 */
export function exposeCaches(registry: Registry, caches: Record<string, Readonly<TtlCacheStats>>): void {
  const lookups = registry.gauge('cairn_gateway_cache_lookups_total', 'Lookups of the gateway\'s caches of namespace answers: answered from memory (hit) or fetched');
  for (const [cache, stats] of Object.entries(caches)) {
    lookups.set(() => stats.hits, { cache, result: 'hit' });
    lookups.set(() => stats.fetches, { cache, result: 'fetch' });
  }
}
