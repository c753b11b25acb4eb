// Options of a chaos run, from the command line (`npm run chaos -- --duration 10m --seed 7`) or
// from a test. Defaults are the long-run shape: 8 nodes, k=4 m=2, two gateways, 6 clients.
import { parseArgs } from 'node:util';
import { parseDuration } from '../../common/duration.js';

export interface ChaosOptions {
  seed: number;
  durationMs: number;
  nodes: number;
  clients: number;
  keys: number;
  k: number;
  m: number;
  /** CAIRN_DOWN_AFTER of the namespace: short, so repair acts during the run. */
  downAfter: string;
  maxSize: number;
  segmentSize: number;
  blockSize: number;
  faultIntervalMs: number;
  lossBoundMs: number;
  flipLifetimeMs: number;
  /** Bound on the wait for full redundancy once the faults stop. */
  healTimeoutMs: number;
  opTimeoutMs: number;
  /** After healing, read everything again with m nodes down. */
  degradedCheck: boolean;
  /** Repair's scrub pass interval: short, so flipped bits in parity shards are found during the run. */
  scrubInterval: string;
  /** Repair's GC grace: short, so collection of replaced shards runs (and is exercised) during the run. */
  gcGrace: string;
  keep: boolean;
  echoLogs: boolean;
}

const MiB = 1024 * 1024;

export function defaultOptions(): ChaosOptions {
  return {
    seed: Math.floor(Math.random() * 2 ** 31),
    durationMs: 60_000,
    nodes: 8,
    clients: 6,
    keys: 120,
    k: 4,
    m: 2,
    downAfter: '5s',
    maxSize: 20 * MiB,
    segmentSize: 8 * MiB,
    blockSize: 256 * 1024,
    faultIntervalMs: 6_000,
    lossBoundMs: 60_000,
    flipLifetimeMs: 90_000,
    healTimeoutMs: 180_000,
    opTimeoutMs: 120_000,
    degradedCheck: true,
    scrubInterval: '30s',
    gcGrace: '30s',
    keep: false,
    echoLogs: false,
  };
}

const USAGE = `usage: npm run chaos -- [--duration 10m] [--seed N] [--nodes 8] [--clients 6] [--keys 120]
  [--k 4] [--m 2] [--down-after 5s] [--max-size-mib 20] [--segment-size-mib 8] [--fault-interval 6s]
  [--loss-bound 60s] [--flip-lifetime 90s] [--heal-timeout 180s] [--scrub-interval 30s] [--gc-grace 30s]
  [--no-degraded-check] [--keep] [--logs]`;

export function parseOptions(argv: string[]): ChaosOptions {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      duration: { type: 'string' }, seed: { type: 'string' }, nodes: { type: 'string' }, clients: { type: 'string' },
      keys: { type: 'string' }, k: { type: 'string' }, m: { type: 'string' }, 'down-after': { type: 'string' },
      'max-size-mib': { type: 'string' }, 'segment-size-mib': { type: 'string' }, 'fault-interval': { type: 'string' },
      'loss-bound': { type: 'string' }, 'flip-lifetime': { type: 'string' }, 'heal-timeout': { type: 'string' },
      'scrub-interval': { type: 'string' }, 'gc-grace': { type: 'string' }, 'no-degraded-check': { type: 'boolean' }, keep: { type: 'boolean' }, logs: { type: 'boolean' }, help: { type: 'boolean' },
    },
  });
  if (values.help) throw new UsageError(USAGE);
  const d = defaultOptions();
  const int = (v: string | undefined, fallback: number, name: string): number => {
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0) throw new UsageError(`--${name} must be a non-negative integer\n${USAGE}`);
    return n;
  };
  const ms = (v: string | undefined, fallback: number): number => (v === undefined ? fallback : parseDuration(v));
  const opts: ChaosOptions = {
    ...d,
    seed: int(values.seed, d.seed, 'seed'),
    durationMs: ms(values.duration, d.durationMs),
    nodes: int(values.nodes, d.nodes, 'nodes'),
    clients: int(values.clients, d.clients, 'clients'),
    keys: int(values.keys, d.keys, 'keys'),
    k: int(values.k, d.k, 'k'),
    m: int(values.m, d.m, 'm'),
    downAfter: values['down-after'] ?? d.downAfter,
    maxSize: int(values['max-size-mib'], d.maxSize / MiB, 'max-size-mib') * MiB,
    segmentSize: int(values['segment-size-mib'], d.segmentSize / MiB, 'segment-size-mib') * MiB,
    faultIntervalMs: ms(values['fault-interval'], d.faultIntervalMs),
    lossBoundMs: ms(values['loss-bound'], d.lossBoundMs),
    flipLifetimeMs: ms(values['flip-lifetime'], d.flipLifetimeMs),
    healTimeoutMs: ms(values['heal-timeout'], d.healTimeoutMs),
    degradedCheck: !values['no-degraded-check'],
    scrubInterval: values['scrub-interval'] ?? d.scrubInterval,
    gcGrace: values['gc-grace'] ?? d.gcGrace,
    keep: values.keep ?? false,
    echoLogs: values.logs ?? false,
  };
  validate(opts);
  return opts;
}

function validate(o: ChaosOptions): void {
  if (o.nodes < o.k + o.m) throw new UsageError(`--nodes must be at least k+m = ${o.k + o.m}`);
  if (o.clients < 1 || o.keys < 1) throw new UsageError('--clients and --keys must be at least 1');
  if (o.maxSize < 6 * MiB) throw new UsageError('--max-size-mib must be at least 6 (multipart uploads use 5 MiB parts)');
  if (o.segmentSize < 1) throw new UsageError('--segment-size-mib must be at least 1');
  for (const d of [o.downAfter, o.scrubInterval, o.gcGrace]) parseDuration(d);
}

export function reproduceCommand(o: ChaosOptions): string {
  const d = defaultOptions();
  const parts = [`npm run chaos -- --seed ${o.seed} --duration ${o.durationMs / 1000}s --nodes ${o.nodes} --clients ${o.clients}`];
  if (o.keys !== d.keys) parts.push(`--keys ${o.keys}`);
  if (o.k !== d.k || o.m !== d.m) parts.push(`--k ${o.k} --m ${o.m}`);
  if (o.downAfter !== d.downAfter) parts.push(`--down-after ${o.downAfter}`);
  if (o.maxSize !== d.maxSize) parts.push(`--max-size-mib ${o.maxSize / MiB}`);
  if (o.segmentSize !== d.segmentSize) parts.push(`--segment-size-mib ${o.segmentSize / MiB}`);
  if (o.faultIntervalMs !== d.faultIntervalMs) parts.push(`--fault-interval ${o.faultIntervalMs / 1000}s`);
  if (o.lossBoundMs !== d.lossBoundMs) parts.push(`--loss-bound ${o.lossBoundMs / 1000}s`);
  if (o.flipLifetimeMs !== d.flipLifetimeMs) parts.push(`--flip-lifetime ${o.flipLifetimeMs / 1000}s`);
  if (o.healTimeoutMs !== d.healTimeoutMs) parts.push(`--heal-timeout ${o.healTimeoutMs / 1000}s`);
  if (o.scrubInterval !== d.scrubInterval) parts.push(`--scrub-interval ${o.scrubInterval}`);
  if (o.gcGrace !== d.gcGrace) parts.push(`--gc-grace ${o.gcGrace}`);
  if (!o.degradedCheck) parts.push('--no-degraded-check');
  return parts.join(' ');
}

export class UsageError extends Error {}
