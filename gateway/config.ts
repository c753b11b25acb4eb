// The gateway's configuration, from flags and environment (see main.ts).
import { DEFAULT_LAYOUT, validateLayout, type Layout } from '../erasure/layout.js';
import { readConfig } from '../common/process.js';
import { parseDuration } from '../common/duration.js';
import { parseDomains } from './virtual-host.js';
import { parseCorsOrigins } from './cors.js';

export interface GatewayConfig {
  host: string;
  port: number;
  namespaceUrl: string;
  region: string;
  /** Access key id → secret. The root key bootstraps the cluster. */
  credentials: Map<string, string>;
  layout: Layout;
  /** Bytes of object data per segment (each segment has its own placement). */
  segmentSize: number;
  /** Shards that must be durable before a write is acknowledged. */
  writeQuorum: number;
  /** How long a storage node may stall a shard read or write before it counts as failed. */
  shardTimeoutMs: number;
  /** Domains served virtual-hosted style (Host `<bucket>.<domain>`); empty: path-style only. */
  domains: string[];
  /** Origins browsers may call from (CORS); `*` is any. */
  corsOrigins: string[];
}

export function loadGatewayConfig(argv = process.argv.slice(2)): GatewayConfig {
  const c = readConfig(
    {
      host: { env: 'CAIRN_HOST', default: '127.0.0.1' },
      port: { env: 'CAIRN_PORT', default: '9000' },
      namespace: { env: 'CAIRN_NAMESPACE_URL' },
      region: { env: 'CAIRN_REGION', default: 'us-east-1' },
      'access-key-id': { env: 'CAIRN_ACCESS_KEY_ID', default: 'cairnadmin' },
      'secret-access-key': { env: 'CAIRN_SECRET_ACCESS_KEY', default: 'cairnadmin' },
      k: { env: 'CAIRN_K', default: String(DEFAULT_LAYOUT.k) },
      m: { env: 'CAIRN_M', default: String(DEFAULT_LAYOUT.m) },
      'block-size': { env: 'CAIRN_BLOCK_SIZE', default: String(DEFAULT_LAYOUT.blockSize) },
      'segment-size': { env: 'CAIRN_SEGMENT_SIZE', default: String(32 * 1024 * 1024) },
      'write-quorum': { env: 'CAIRN_WRITE_QUORUM' },
      'shard-timeout': { env: 'CAIRN_SHARD_TIMEOUT', default: '10s' },
      domain: { env: 'CAIRN_DOMAIN' },
      'cors-origins': { env: 'CAIRN_CORS_ORIGINS', default: '*' },
    },
    argv,
  );
  if (!c.namespace) throw new Error('--namespace (or CAIRN_NAMESPACE_URL) is required');
  const layout: Layout = { k: int(c.k!, 'k'), m: int(c.m!, 'm'), blockSize: int(c['block-size']!, 'block-size') };
  validateLayout(layout);
  const segmentSize = int(c['segment-size']!, 'segment-size');
  if (segmentSize < layout.k * layout.blockSize) throw new Error('--segment-size must hold at least one full stripe');
  const writeQuorum = c['write-quorum'] ? int(c['write-quorum'], 'write-quorum') : layout.k;
  if (writeQuorum < layout.k || writeQuorum > layout.k + layout.m) throw new Error(`--write-quorum must be in ${layout.k}..${layout.k + layout.m}`);
  return {
    host: c.host!,
    port: int(c.port!, 'port'),
    namespaceUrl: c.namespace,
    region: c.region!,
    credentials: new Map([[c['access-key-id']!, c['secret-access-key']!]]),
    layout,
    segmentSize,
    writeQuorum,
    shardTimeoutMs: parseDuration(c['shard-timeout']!),
    domains: parseDomains(c.domain),
    corsOrigins: parseCorsOrigins(c['cors-origins']),
  };
}

function int(text: string, name: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got "${text}"`);
  return n;
}
