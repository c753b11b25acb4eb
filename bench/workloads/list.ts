// ListObjectsV2 over a bucket of 1,000,000 keys (1000 "directories" × 1000): time to the first
// page of 1000, keys/s of a full listing (every page chained by its continuation token, the key
// count and order checked), and a delimiter listing (every common prefix at the root).
//
// Putting 1M objects through S3 would take far longer than the whole bench, so Cairn's big bucket
// is filled with 0-byte object records straight into the namespace: by default in-process through
// NamespaceStore.commitObject (the very commit path the service runs, validation included, fsync
// off) on the namespace's data dir before the cluster starts; with --list-via client, through
// NamespaceClient.commitObject against the running namespace service (about 4× slower here).
// s3rver has no such back door and lists by walking its directory tree, so both systems are also
// compared on a small bucket filled through S3 PUTs.
import path from 'node:path';
import { NamespaceError } from '../../namespace/client.js';
import { NamespaceStore } from '../../namespace/store.js';
import type { CommitObjectRequest, ObjectRecord } from '../../namespace/types.js';
import { ratioOf, target, type Row } from '../report.js';
import type { RawS3 } from '../s3/raw.js';
import { fmtNum, runPool, summarize } from '../stats.js';
import { BENCH_USER, type System } from '../systems.js';
import { ensureBucket, raw } from './common.js';
import type { BenchContext, WorkloadResult } from './context.js';

export const LIST_BUCKET = 'list-big';
const SMALL_BUCKET = 'list-small';
const POPULATE_CONCURRENCY = 256;
const EMPTY_MD5 = '"d41d8cd98f00b204e9800998ecf8427e"';

/** Keys `dir-NNNN/obj-NNNNNNN`, `dirs` directories, in the order S3 lists them. */
export function listKey(i: number, keys: number, dirs: number): string {
  const perDir = Math.ceil(keys / dirs);
  return `dir-${String(Math.floor(i / perDir)).padStart(4, '0')}/obj-${String(i).padStart(7, '0')}`;
}

function emptyRecord(bucket: string, key: string, i: number, now: string): ObjectRecord {
  return {
    bucket,
    key,
    versionId: `0bench${String(i).padStart(10, '0')}`,
    size: 0,
    etag: EMPTY_MD5,
    lastModified: now,
    contentType: 'application/octet-stream',
    userMetadata: {},
    headers: {},
    checksums: {},
    layout: { k: 4, m: 2, blockSize: 256 * 1024 },
    segments: [],
  };
}

export interface PopulateStats {
  via: 'store' | 'client';
  keys: number;
  seconds: number;
  keysPerSec: number;
}

/** Commits `keys` 0-byte records with many commits in flight. */
async function populate(committer: { commitObject(r: CommitObjectRequest): Promise<unknown> }, keys: number, dirs: number): Promise<{ seconds: number; done: number }> {
  const now = new Date().toISOString();
  const r = await runPool({ concurrency: POPULATE_CONCURRENCY, maxOps: keys, durationMs: Infinity }, async (i) => {
    await committer.commitObject({ record: emptyRecord(LIST_BUCKET, listKey(i, keys, dirs), i, now) });
  });
  if (r.errors > 0) throw new Error(`populating the listing bucket: ${r.errors} commits failed (${r.firstError})`);
  return { seconds: r.wallSeconds, done: r.ops };
}

/** The "store" path: run on Cairn's fresh data dir before any service starts. */
export function listFixture(ctxLog: (line: string) => void, keys: number, dirs: number, owner: string): { prepare: (dataDir: string) => Promise<void>; stats: () => PopulateStats | undefined } {
  let stats: PopulateStats | undefined;
  return {
    stats: () => stats,
    prepare: async (dataDir) => {
      ctxLog(`  populating Cairn's "${LIST_BUCKET}" with ${fmtNum(keys, 0)} 0-byte object records in-process (NamespaceStore.commitObject, ${POPULATE_CONCURRENCY} in flight, fsync off) ...`);
      const store = await NamespaceStore.open(path.join(dataDir, 'namespace'), { sync: false });
      try {
        await store.users.createUser(owner);
        await store.createBucket(LIST_BUCKET, owner);
        const { seconds } = await populate(store, keys, dirs);
        stats = { via: 'store', keys, seconds, keysPerSec: keys / seconds };
        ctxLog(`  populated ${fmtNum(keys, 0)} records in ${seconds.toFixed(1)} s (${fmtNum(keys / seconds, 0)}/s)`);
      } finally {
        await store.close();
      }
    },
  };
}

interface ListMeasure {
  keys: number;
  firstPageMs: number;
  firstPageTries: number[];
  fullKeys: number;
  fullSeconds: number;
  keysPerSec: number | null;
  complete: boolean;
  delimiterMs: number | null;
  delimiterPrefixes: number;
  pages: number;
}

async function measure(ctx: BenchContext, client: RawS3, bucket: string, keys: number, dirs: number, budgetMs: number): Promise<ListMeasure> {
  const tries: number[] = [];
  for (let i = 0; i < ctx.cfg.list.firstPageTries; i++) {
    const t0 = performance.now();
    const page = await client.listPage(bucket, { maxKeys: 1000 }, ctx.signal);
    tries.push(performance.now() - t0);
    const expected = Math.min(1000, keys);
    if (page.keys !== expected) throw new Error(`first page of ${bucket} has ${page.keys} keys, expected ${expected}`);
  }
  // Full listing, chained by continuation tokens; count and order checked.
  const end = performance.now() + budgetMs;
  const t0 = performance.now();
  let listed = 0;
  let pages = 0;
  let last: string | undefined;
  let continuation: string | undefined;
  let complete = false;
  while (performance.now() < end && !ctx.signal.aborted) {
    const page = await client.listPage(bucket, { continuation, maxKeys: 1000 }, ctx.signal);
    pages++;
    if (page.firstKey !== undefined && last !== undefined && !(page.firstKey > last)) throw new Error(`listing out of order: ${page.firstKey} after ${last}`);
    listed += page.keys;
    last = page.lastKey ?? last;
    if (!page.truncated) {
      complete = true;
      break;
    }
    if (!page.next) throw new Error('truncated page without NextContinuationToken');
    continuation = page.next;
  }
  const fullSeconds = (performance.now() - t0) / 1000;
  if (complete && listed !== keys) throw new Error(`full listing of ${bucket} returned ${listed} keys, expected ${keys}`);
  // Delimiter listing: every common prefix at the root (one per directory).
  let delimiterMs: number | null = null;
  let prefixes = 0;
  if (!ctx.signal.aborted) {
    const d0 = performance.now();
    let token: string | undefined;
    for (;;) {
      const page = await client.listPage(bucket, { delimiter: '/', continuation: token, maxKeys: 1000 }, ctx.signal);
      prefixes += page.prefixes;
      if (!page.truncated || !page.next) break;
      token = page.next;
    }
    delimiterMs = performance.now() - d0;
    const expectedDirs = Math.ceil(keys / Math.ceil(keys / dirs));
    if (prefixes !== expectedDirs) throw new Error(`delimiter listing of ${bucket} gave ${prefixes} prefixes, expected ${expectedDirs}`);
  }
  return {
    keys,
    firstPageMs: summarize(tries).p50,
    firstPageTries: tries,
    fullKeys: listed,
    fullSeconds,
    keysPerSec: listed > 0 ? listed / fullSeconds : null,
    complete,
    delimiterMs,
    delimiterPrefixes: prefixes,
    pages,
  };
}

/** Fills a bucket through S3 PUTs of 0-byte objects (untimed). */
async function putEmptyObjects(ctx: BenchContext, system: System, bucket: string, keys: number, dirs: number): Promise<void> {
  await ensureBucket(system, bucket);
  const client = raw(system, 32);
  try {
    const r = await runPool({ concurrency: 32, maxOps: keys, durationMs: Infinity, signal: ctx.signal }, (i) => client.put(bucket, listKey(i, keys, dirs), Buffer.alloc(0), ctx.signal));
    if (r.ops !== keys) throw new Error(`filling ${bucket} on ${system.name}: ${r.ops} of ${keys} PUTs (${r.firstError ?? 'time budget'})`);
  } finally {
    await client.close();
  }
}

export async function listing(ctx: BenchContext, fixture?: () => PopulateStats | undefined): Promise<WorkloadResult> {
  const { keys, dirs, peerKeys, budgetMs } = ctx.cfg.list;
  const details: Record<string, unknown> = {};
  const bigRows: Row[] = [];
  let populated = fixture?.();
  // Both systems on the same small bucket, filled through S3. First, so that the big bucket's first
  // page times the scan of a 1M-key bucket and not V8 compiling the listing code in the gateway,
  // the namespace and the client (the very first page in a fresh process took 50-110 ms here, the
  // same page once warm 9-20 ms); details.cairnBig.firstPageTries keeps every try.
  const small = new Map<string, ListMeasure>();
  /** A system whose listing fails loses its cells, not the whole workload. */
  const failures: string[] = [];
  const smallDirs = Math.max(1, Math.round(Math.sqrt(peerKeys)));
  for (const system of ctx.systems) {
    if (ctx.signal.aborted) break;
    await putEmptyObjects(ctx, system, SMALL_BUCKET, peerKeys, smallDirs);
    const client = raw(system, 1);
    try {
      const m = await measure(ctx, client, SMALL_BUCKET, peerKeys, smallDirs, budgetMs / 4);
      small.set(system.name, m);
      ctx.log(`  ${system.name} ${fmtNum(peerKeys, 0)} keys (S3 PUTs): first page ${m.firstPageMs.toFixed(1)} ms, full ${fmtNum(m.keysPerSec, 0)} keys/s, delimiter ${m.delimiterMs?.toFixed(1)} ms`);
    } catch (err) {
      if (system.name === 'cairn') throw err;
      const reason = err instanceof Error ? err.message : String(err);
      failures.push(`${system.name} failed: ${reason}`);
      ctx.log(`  ${system.name} listing failed: ${reason}`);
    } finally {
      await client.close();
    }
  }
  details.small = Object.fromEntries(small);
  const c = small.get('cairn');
  const p = small.get('s3rver');
  const label = `list ${fmtNum(peerKeys, 0)} keys`;
  const note = [`bucket filled through S3 PUTs on both systems (s3rver lists by walking its directory tree, so a 1M-key bucket is out of reach for it here)`, ...failures].join('; ');
  const smallRows: Row[] = [
    { id: 'list.small.first', workload: `${label}: first page`, unit: 'ms', cairn: c?.firstPageMs ?? null, peer: p?.firstPageMs ?? null, ratio: ratioOf(c?.firstPageMs ?? null, p?.firstPageMs ?? null), note },
    { id: 'list.small.full', workload: `${label}: full listing`, unit: 'keys/s', cairn: c?.keysPerSec ?? null, peer: p?.keysPerSec ?? null, ratio: ratioOf(c?.keysPerSec ?? null, p?.keysPerSec ?? null) },
    { id: 'list.small.delimiter', workload: `${label}: delimiter "/"`, unit: 'ms', cairn: c?.delimiterMs ?? null, peer: p?.delimiterMs ?? null, ratio: ratioOf(c?.delimiterMs ?? null, p?.delimiterMs ?? null) },
  ];
  const cairn = ctx.cairn;
  if (cairn) {
    if (!populated) {
      // --list-via client (or the fixture was not prepared): through the running namespace service.
      ctx.log(`  populating Cairn's "${LIST_BUCKET}" with ${fmtNum(keys, 0)} 0-byte object records through NamespaceClient.commitObject (${POPULATE_CONCURRENCY} in flight) ...`);
      await cairn.namespace.createBucket(LIST_BUCKET, BENCH_USER).catch((err: unknown) => {
        if (!(err instanceof NamespaceError && err.code === 'BucketAlreadyOwnedByYou')) throw err;
      });
      const { seconds } = await populate(cairn.namespace, keys, dirs);
      populated = { via: 'client', keys, seconds, keysPerSec: keys / seconds };
      ctx.log(`  populated ${fmtNum(keys, 0)} records in ${seconds.toFixed(1)} s (${fmtNum(keys / seconds, 0)}/s)`);
    }
    details.populate = populated;
    const client = raw(cairn, 1);
    try {
      const m = await measure(ctx, client, LIST_BUCKET, keys, dirs, budgetMs / 2);
      details.cairnBig = m;
      ctx.log(`  Cairn ${fmtNum(keys, 0)} keys: first page ${m.firstPageMs.toFixed(1)} ms, full listing ${fmtNum(m.keysPerSec, 0)} keys/s (${m.fullKeys} keys, ${m.pages} pages${m.complete ? '' : ', cut by the time budget'}), delimiter listing ${m.delimiterMs?.toFixed(1)} ms (${m.delimiterPrefixes} prefixes)`);
      const how = `bucket filled with ${fmtNum(keys, 0)} 0-byte records directly through the namespace (${populated.via === 'store' ? 'NamespaceStore.commitObject in-process, before start' : 'NamespaceClient.commitObject'}), not S3 PUTs`;
      const size = keys >= 1e6 ? `${keys / 1e6}M` : fmtNum(keys, 0);
      bigRows.push(
        { id: 'list.big.first', workload: `list ${size} keys: first page of 1000`, unit: 'ms', cairn: m.firstPageMs, peer: null, baseline: 'see small bucket', ratio: null, target: target.below(m.firstPageMs, 50, 'ms'), note: `${how}; median of ${m.firstPageTries.length} tries, after the small buckets were listed (the first try ${m.firstPageTries[0]!.toFixed(1)} ms)` },
        { id: 'list.big.full', workload: `list ${size} keys: full listing`, unit: 'keys/s', cairn: m.keysPerSec, peer: null, baseline: 'see small bucket', ratio: null, target: target.atLeast(m.keysPerSec, 100_000, 'keys/s'), note: m.complete ? undefined : `cut by the time budget after ${m.fullKeys} keys` },
        { id: 'list.big.delimiter', workload: `list ${size} keys: delimiter "/" (${m.delimiterPrefixes} prefixes)`, unit: 'ms', cairn: m.delimiterMs, peer: null, baseline: 'see small bucket', ratio: null },
      );
    } finally {
      await client.close();
    }
  }
  return { rows: [...bigRows, ...smallRows], details };
}
