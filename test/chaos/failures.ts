// Why operations failed. Failures while the client's gateway was being killed are the fault doing
// its job; any other failure (a 5xx with up to m nodes down, say) is an availability finding —
// not a safety violation, but worth a look — so the report lists its causes and a few examples.
import type { FaultRecord } from './faults.js';
import type { History } from './history.js';

/** The kill is recorded once done, and a restart takes a moment to be noticed by clients' retries. */
const GATEWAY_GRACE_MS = 2_000;
const MAX_EXAMPLES = 6;

export interface FailureSummary {
  total: number;
  whileGatewayDown: number;
  /** Other failures by cause ("ServiceUnavailable 503", "ECONNRESET", ...), most frequent first. */
  otherCauses: [string, number][];
  examples: string[];
}

interface FailedOp {
  opId: number;
  type: string;
  key: string;
  gateway: string;
  start: number;
  end: number;
  error: string;
}

export function summarizeFailures(history: History, faults: readonly FaultRecord[]): FailureSummary {
  const failed: FailedOp[] = [
    ...history.writes.filter((w) => w.status === 'failed' || w.status === 'unknown'),
    ...history.reads.filter((r) => !r.ok),
  ].map((o) => ({ opId: o.opId, type: o.type, key: o.key, gateway: o.gateway, start: o.start, end: o.end, error: o.error ?? '?' }));
  const kills = faults.filter((f) => f.type === 'gateway-kill' && f.outcome === 'injected' && f.at !== undefined);
  const gatewayDown = (op: FailedOp): boolean =>
    kills.some((k) => k.target === op.gateway && k.at! - GATEWAY_GRACE_MS <= op.end && (k.end ?? Infinity) + GATEWAY_GRACE_MS >= op.start);
  const others = failed.filter((op) => !gatewayDown(op));
  const causes = new Map<string, number>();
  for (const op of others) {
    const cause = op.error.split(':')[0]!.trim();
    causes.set(cause, (causes.get(cause) ?? 0) + 1);
  }
  return {
    total: failed.length,
    whileGatewayDown: failed.length - others.length,
    otherCauses: [...causes].sort((a, b) => b[1] - a[1]),
    examples: others.slice(0, MAX_EXAMPLES).map((op) => `+${(op.start / 1000).toFixed(1)}s ${op.type} ${op.key} via ${op.gateway} (op #${op.opId}): ${op.error.slice(0, 240)}`),
  };
}
