// Where Cairn's small PUTs waited during a phase, from its own metrics read before and after: the
// gateway's queue for a commit request, the commit's round trip, and of that the namespace's store
// (the value log's synced append, then the LevelDB write). The bench prints it beside the PUT rows,
// so a run shows which part a change moved without instrumenting anything by hand.

/** Prometheus series by their exact name and labels as rendered (`name{a="x",b="y"}`). */
export type Series = Map<string, number>;

export function parseSeries(text: string): Series {
  const out: Series = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    const value = Number(line.slice(at + 1));
    if (at > 0 && Number.isFinite(value)) out.set(line.slice(0, at), value);
  }
  return out;
}

/** Counters, all monotonic: a phase's counts are the difference of two readings. */
export interface PutWaitCounts {
  putSeconds: number;
  puts: number;
  commitRequests: number;
  commitItems: number;
  commitQueuedSeconds: number;
  commitRequestSeconds: number;
  storeBatches: number;
  storeWrites: number;
  storeWaitSeconds: number;
  storePrepareSeconds: number;
  storeWriteSeconds: number;
}

const COMMITS = '{kind="commits",to="namespace"}';

/** Where each count is read: the gateway's or the namespace's metrics, and the series. */
export const PUT_WAIT_SERIES: Record<keyof PutWaitCounts, ['gateway' | 'namespace', string]> = {
  putSeconds: ['gateway', 'cairn_s3_request_seconds_sum{operation="PutObject"}'],
  puts: ['gateway', 'cairn_s3_request_seconds_count{operation="PutObject"}'],
  commitRequests: ['gateway', `cairn_batched_requests_total${COMMITS}`],
  commitItems: ['gateway', `cairn_batched_items_total${COMMITS}`],
  commitQueuedSeconds: ['gateway', `cairn_batched_queued_seconds_total${COMMITS}`],
  commitRequestSeconds: ['gateway', `cairn_batched_request_seconds_total${COMMITS}`],
  storeBatches: ['namespace', 'cairn_namespace_group_commit_total{kind="batches"}'],
  storeWrites: ['namespace', 'cairn_namespace_group_commit_total{kind="writes"}'],
  storeWaitSeconds: ['namespace', 'cairn_namespace_group_commit_wait_seconds_total'],
  storePrepareSeconds: ['namespace', 'cairn_namespace_group_commit_prepare_seconds_total'],
  storeWriteSeconds: ['namespace', 'cairn_namespace_group_commit_write_seconds_total'],
};

/** The counts in one reading of the gateway's and the namespace's metrics (absent series read 0). */
export function putWaitCounts(gateway: Series, namespace: Series): PutWaitCounts {
  const counts = {} as PutWaitCounts;
  for (const [key, [source, series]] of Object.entries(PUT_WAIT_SERIES) as [keyof PutWaitCounts, ['gateway' | 'namespace', string]][]) {
    counts[key] = (source === 'gateway' ? gateway : namespace).get(series) ?? 0;
  }
  return counts;
}

function combine(a: PutWaitCounts, b: PutWaitCounts, sign: 1 | -1): PutWaitCounts {
  const out = { ...a };
  for (const key of Object.keys(out) as (keyof PutWaitCounts)[]) out[key] = a[key] + sign * b[key];
  return out;
}

/** What happened between two readings. */
export function countsBetween(before: PutWaitCounts, after: PutWaitCounts): PutWaitCounts {
  return combine(after, before, -1);
}

/** Two phases' counts as one (the halves of a phase). */
export function addCounts(a: PutWaitCounts, b: PutWaitCounts): PutWaitCounts {
  return combine(a, b, 1);
}

/** Per-PUT, per-commit and per-group averages, in milliseconds; null where nothing was counted. */
export interface PutWaits {
  putMs: number | null;
  commitQueuedMs: number | null;
  commitRoundTripMs: number | null;
  commitsPerRequest: number | null;
  storeWaitMs: number | null;
  appendMs: number | null;
  writeMs: number | null;
  commitsPerWrite: number | null;
}

export function putWaits(c: PutWaitCounts): PutWaits {
  const per = (total: number, count: number, scale = 1000): number | null => (count > 0 ? (total * scale) / count : null);
  return {
    putMs: per(c.putSeconds, c.puts),
    commitQueuedMs: per(c.commitQueuedSeconds, c.commitItems),
    commitRoundTripMs: per(c.commitRequestSeconds, c.commitRequests),
    commitsPerRequest: per(c.commitItems, c.commitRequests, 1),
    storeWaitMs: per(c.storeWaitSeconds, c.storeBatches),
    appendMs: per(c.storePrepareSeconds, c.storeWrites),
    writeMs: per(c.storeWriteSeconds, c.storeWrites),
    commitsPerWrite: per(c.storeBatches, c.storeWrites, 1),
  };
}

/** One line for the report; undefined when the phase made no PUT. */
export function describePutWaits(w: PutWaits): string | undefined {
  if (w.putMs === null) return undefined;
  const ms = (v: number | null): string => (v === null ? 'n/a' : `${v.toFixed(1)} ms`);
  const n = (v: number | null): string => (v === null ? 'n/a' : v.toFixed(1));
  return (
    `PutObject ${ms(w.putMs)} in the gateway; its commit queued ${ms(w.commitQueuedMs)}, then a round trip of ${ms(w.commitRoundTripMs)} ` +
    `(${n(w.commitsPerRequest)} commits per request), ${ms(w.storeWaitMs)} of it in the namespace's store ` +
    `(per group of ${n(w.commitsPerWrite)}: value-log append ${ms(w.appendMs)}, LevelDB write ${ms(w.writeMs)})`
  );
}
