// Command line and the sizes of every workload, full or --quick. Every workload is bounded both
// by counts (below) and by time (its `budgetMs`, after which it stops starting new work).
import path from 'node:path';
import { parseArgs } from 'node:util';
import { REPO_ROOT } from '../common/source-tree.js';
import { GiB, KiB, MiB } from './stats.js';

export const WORKLOADS = ['machine', 'large', 'multipart', 'ranged', 'small', 'list', 'degraded', 'rss', 'repair'] as const;
export type WorkloadName = (typeof WORKLOADS)[number];

export interface BenchConfig {
  mode: 'full' | 'quick';
  only: Set<WorkloadName>;
  outDir: string;
  keep: boolean;
  /** Cairn layout and cluster size for every workload but repair. */
  cluster: { nodes: number; nodesPerProcess: number; k: number; m: number };
  machine: { diskBytes: number; tcpBytes: number; rsBytes: number; crcBytes: number; budgetMs: number };
  large: { objectSize: number; objects1: number; objects8: number; budgetMs: number };
  multipart: { objectSize: number; partSize: number; parallel: number; budgetMs: number };
  ranged: { rangeSize: number; count: number; budgetMs: number };
  small: { sizes: number[]; clients: number[]; phaseMs: number; maxOps: number; budgetMs: number };
  list: { keys: number; dirs: number; peerKeys: number; populateVia: 'store' | 'client'; firstPageTries: number; budgetMs: number };
  degraded: { objectSize: number; objects: number; budgetMs: number };
  rss: { objectSize: number; hugeObjectSize: number; hugePartSize: number; idleUploads: number; trickleMs: number; pausedDownloads: number; pauseMs: number; budgetMs: number };
  repair: { victimBytes: number; objectSize: number; concurrency: number; downAfter: string; workers: number; budgetMs: number };
}

const USAGE = `npm run bench -- [--quick] [--only w1,w2] [--out DIR] [--keep] [--list-keys N] [--list-via store|client]
  workloads: ${WORKLOADS.join(', ')}
  --quick      tiny sizes and counts (small objects at 8 and 32 clients), for a smoke run of about a minute
  --only       run only these workloads (machine limits are always measured unless --only omits "machine")
  --out        where results.jsonl and the charts go (default bench/results)
  --keep       keep the clusters' data dirs and logs
  --list-keys  keys in the listing bucket (default 1000000; quick 5000)
  --nodes-per-process  storage nodes (disks) per storage process (default: all 6 in one, as on
               one machine; 1 = a process per node)
  --list-via   populate the listing bucket through the namespace store in-process before the cluster
               starts (store, default: fast) or through the running namespace service's client (client)`;

export function parseConfig(argv = process.argv.slice(2)): BenchConfig {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      out: { type: 'string' },
      keep: { type: 'boolean', default: false },
      'list-keys': { type: 'string' },
      'list-via': { type: 'string' },
      'nodes-per-process': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const only = new Set<WorkloadName>();
  for (const name of (values.only ?? WORKLOADS.join(',')).split(',').map((s) => s.trim()).filter(Boolean)) {
    if (!(WORKLOADS as readonly string[]).includes(name)) throw new Error(`unknown workload "${name}"\n${USAGE}`);
    only.add(name as WorkloadName);
  }
  const quick = values.quick ?? false;
  const listVia = values['list-via'] ?? 'store';
  if (listVia !== 'store' && listVia !== 'client') throw new Error(`--list-via must be store or client\n${USAGE}`);
  const base = quick ? quickConfig() : fullConfig();
  if (values['list-keys']) {
    const n = Number(values['list-keys']);
    if (!Number.isInteger(n) || n < 1) throw new Error('--list-keys must be a positive integer');
    base.list.keys = n;
    base.list.dirs = Math.max(1, Math.round(Math.sqrt(n)));
  }
  base.list.populateVia = listVia;
  if (values['nodes-per-process']) {
    const n = Number(values['nodes-per-process']);
    if (!Number.isInteger(n) || n < 1) throw new Error('--nodes-per-process must be a positive integer');
    base.cluster.nodesPerProcess = n;
  }
  return {
    ...base,
    mode: quick ? 'quick' : 'full',
    only,
    outDir: path.resolve(values.out ?? path.join(REPO_ROOT, 'bench', 'results')),
    keep: values.keep ?? false,
  };
}

type Sizes = Omit<BenchConfig, 'mode' | 'only' | 'outDir' | 'keep'>;

function fullConfig(): Sizes {
  return {
    cluster: { nodes: 6, nodesPerProcess: 6, k: 4, m: 2 },
    machine: { diskBytes: 1 * GiB, tcpBytes: 2 * GiB, rsBytes: 512 * MiB, crcBytes: 1 * GiB, budgetMs: 10_000 },
    large: { objectSize: 64 * MiB, objects1: 6, objects8: 32, budgetMs: 150_000 },
    multipart: { objectSize: 1 * GiB, partSize: 8 * MiB, parallel: 8, budgetMs: 150_000 },
    ranged: { rangeSize: 1 * MiB, count: 300, budgetMs: 20_000 },
    small: { sizes: [4 * KiB, 64 * KiB], clients: [32, 256], phaseMs: 6_000, maxOps: 100_000, budgetMs: 270_000 },
    list: { keys: 1_000_000, dirs: 1000, peerKeys: 5_000, populateVia: 'store', firstPageTries: 7, budgetMs: 90_000 },
    degraded: { objectSize: 64 * MiB, objects: 8, budgetMs: 60_000 },
    rss: { objectSize: 512 * MiB, hugeObjectSize: 10 * GiB, hugePartSize: 128 * MiB, idleUploads: 1000, trickleMs: 15_000, pausedDownloads: 200, pauseMs: 8_000, budgetMs: 220_000 },
    repair: { victimBytes: 2 * GiB, objectSize: 256 * MiB, concurrency: 2, downAfter: '3s', workers: 8, budgetMs: 330_000 },
  };
}

function quickConfig(): Sizes {
  return {
    cluster: { nodes: 6, nodesPerProcess: 6, k: 4, m: 2 },
    machine: { diskBytes: 32 * MiB, tcpBytes: 64 * MiB, rsBytes: 16 * MiB, crcBytes: 64 * MiB, budgetMs: 2_000 },
    large: { objectSize: 4 * MiB, objects1: 2, objects8: 8, budgetMs: 15_000 },
    multipart: { objectSize: 40 * MiB, partSize: 5 * MiB, parallel: 8, budgetMs: 15_000 },
    ranged: { rangeSize: 1 * MiB, count: 20, budgetMs: 4_000 },
    small: { sizes: [4 * KiB, 64 * KiB], clients: [8, 32], phaseMs: 400, maxOps: 1_000, budgetMs: 22_000 },
    list: { keys: 5_000, dirs: 50, peerKeys: 300, populateVia: 'store', firstPageTries: 3, budgetMs: 15_000 },
    degraded: { objectSize: 8 * MiB, objects: 2, budgetMs: 15_000 },
    rss: { objectSize: 32 * MiB, hugeObjectSize: 64 * MiB, hugePartSize: 16 * MiB, idleUploads: 100, trickleMs: 2_000, pausedDownloads: 20, pauseMs: 2_000, budgetMs: 25_000 },
    repair: { victimBytes: 16 * MiB, objectSize: 16 * MiB, concurrency: 2, downAfter: '3s', workers: 2, budgetMs: 30_000 },
  };
}
