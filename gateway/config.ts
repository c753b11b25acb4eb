// The gateway's configuration, from flags and environment (see main.ts).
import { readFileSync } from 'node:fs';
import { DEFAULT_LAYOUT, validateLayout, type Layout } from '../erasure/layout.js';
import { readConfig } from '../common/process.js';
import { parseDuration } from '../common/duration.js';
import { parseDomains } from './virtual-host.js';
import { parseCorsOrigins } from './cors.js';
import { MAX_INLINE_BYTES } from '../namespace/types.js';
import { DEFAULT_DOWNLOAD_BUDGET_BYTES, DEFAULT_UPLOAD_BUDGET_BYTES } from './data/memory-budget.js';

const FILESYSTEM_BLOCK = 4096;

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
  /**
   * Objects of at most this many bytes are kept inline in the namespace instead of erasure-coded
   * (0: never). Below k × 4 KiB every shard would be smaller than one filesystem block.
   */
  inlineMaxBytes: number;
  /** Shards that must be durable before a write is acknowledged. */
  writeQuorum: number;
  /** How long a storage node may stall a shard read or write before it counts as failed. */
  shardTimeoutMs: number;
  /** Domains served virtual-hosted style (Host `<bucket>.<domain>`); empty: path-style only. */
  domains: string[];
  /** Origins browsers may call from (CORS); `*` is any. */
  corsOrigins: string[];
  /** A client must send its whole request line and headers within this (Node's headersTimeout). */
  headersTimeoutMs: number;
  /**
   * A request body that sends nothing for this long while the gateway waits for it is cut off
   * (400 RequestTimeout, connection closed); 0 disables. Time the gateway itself spends not
   * reading (back-pressure from storage nodes) does not count. Likewise a GET whose client takes
   * no bytes of the object for this long has its connection closed (it holds download memory).
   */
  bodyTimeoutMs: number;
  /** Object bytes all uploads together may hold in stripes being filled (memory-budget.ts). */
  uploadBudgetBytes: number;
  /** Object bytes all GETs together may hold in windows being sent or read ahead (memory-budget.ts). */
  downloadBudgetBytes: number;
  /** Largest request line plus headers (Node's maxHeaderSize); larger: 400 RequestHeaderSectionTooLarge. */
  maxHeaderBytes: number;
  /** PEM certificate chain and key: S3 is served over HTTPS (--tls-cert / --tls-key, both or neither). */
  tls?: { cert: Buffer; key: Buffer };
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
      'inline-max': { env: 'CAIRN_INLINE_MAX' },
      'shard-timeout': { env: 'CAIRN_SHARD_TIMEOUT', default: '10s' },
      domain: { env: 'CAIRN_DOMAIN' },
      'cors-origins': { env: 'CAIRN_CORS_ORIGINS', default: '*' },
      'headers-timeout': { env: 'CAIRN_HEADERS_TIMEOUT', default: '60s' },
      'body-timeout': { env: 'CAIRN_BODY_TIMEOUT', default: '60s' },
      'max-header-size': { env: 'CAIRN_MAX_HEADER_SIZE', default: String(16 * 1024) },
      'upload-budget': { env: 'CAIRN_UPLOAD_BUDGET', default: String(DEFAULT_UPLOAD_BUDGET_BYTES) },
      'download-budget': { env: 'CAIRN_DOWNLOAD_BUDGET', default: String(DEFAULT_DOWNLOAD_BUDGET_BYTES) },
      'tls-cert': { env: 'CAIRN_TLS_CERT' },
      'tls-key': { env: 'CAIRN_TLS_KEY' },
    },
    argv,
  );
  if (!c.namespace) throw new Error('--namespace (or CAIRN_NAMESPACE_URL) is required');
  const layout: Layout = { k: int(c.k!, 'k'), m: int(c.m!, 'm'), blockSize: int(c['block-size']!, 'block-size') };
  validateLayout(layout);
  const segmentSize = int(c['segment-size']!, 'segment-size');
  if (segmentSize < layout.k * layout.blockSize) throw new Error('--segment-size must hold at least one full stripe');
  const headersTimeoutMs = parseDuration(c['headers-timeout']!);
  if (headersTimeoutMs < 1) throw new Error('--headers-timeout must be positive');
  const maxHeaderBytes = int(c['max-header-size']!, 'max-header-size');
  if (maxHeaderBytes < 1024) throw new Error('--max-header-size must be at least 1024');
  const writeQuorum = c['write-quorum'] ? int(c['write-quorum'], 'write-quorum') : layout.k;
  if (writeQuorum < layout.k || writeQuorum > layout.k + layout.m) throw new Error(`--write-quorum must be in ${layout.k}..${layout.k + layout.m}`);
  const uploadBudgetBytes = int(c['upload-budget']!, 'upload-budget');
  const downloadBudgetBytes = int(c['download-budget']!, 'download-budget');
  if (uploadBudgetBytes < 1 || downloadBudgetBytes < 1) throw new Error('--upload-budget and --download-budget must be positive (bytes)');
  const inlineMaxBytes = c['inline-max'] ? int(c['inline-max'], 'inline-max') : layout.k * FILESYSTEM_BLOCK;
  if (inlineMaxBytes > MAX_INLINE_BYTES) throw new Error(`--inline-max must be at most ${MAX_INLINE_BYTES}`);
  return {
    host: c.host!,
    port: int(c.port!, 'port'),
    namespaceUrl: c.namespace,
    region: c.region!,
    credentials: new Map([[c['access-key-id']!, c['secret-access-key']!]]),
    layout,
    segmentSize,
    inlineMaxBytes,
    writeQuorum,
    shardTimeoutMs: parseDuration(c['shard-timeout']!),
    domains: parseDomains(c.domain),
    corsOrigins: parseCorsOrigins(c['cors-origins']),
    headersTimeoutMs,
    bodyTimeoutMs: parseDuration(c['body-timeout']!),
    maxHeaderBytes,
    uploadBudgetBytes,
    downloadBudgetBytes,
    ...(c['tls-cert'] || c['tls-key'] ? { tls: loadTls(c['tls-cert'], c['tls-key']) } : {}),
  };
}

function loadTls(certFile: string | undefined, keyFile: string | undefined): { cert: Buffer; key: Buffer } {
  if (!certFile || !keyFile) throw new Error('--tls-cert and --tls-key go together');
  return { cert: readFileSync(certFile), key: readFileSync(keyFile) };
}

function int(text: string, name: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got "${text}"`);
  return n;
}
