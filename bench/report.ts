// Result rows, targets and the human table. A target never fails the run (the exit code only
// reports a broken bench: wrong bytes, a crash); it is a pass/fail column next to the number.
import { fmtNum } from './stats.js';

export interface Target {
  text: string;
  /** null: could not be judged (a number is missing). */
  pass: boolean | null;
  /** How far from the threshold, as a factor: ≥ 1 meets it (for the chart). */
  score: number | null;
  /** Whether the target is on the row's ratio or on its Cairn value. */
  on: 'ratio' | 'value';
}

export interface Row {
  /** Stable id for the JSON history and the chart, e.g. "large.get.8". */
  id: string;
  workload: string;
  unit: string;
  cairn: number | null;
  /** s3rver's value, or the value named by `baseline` (e.g. healthy Cairn, disk bandwidth). */
  peer: number | null;
  /** What `peer` holds when it is not s3rver; '' when the row has no comparison at all. */
  baseline?: string;
  /** cairn / peer. */
  ratio: number | null;
  target?: Target;
  /** The same target judged on the floor's ratio to s3rver (bench/floor): how far the shape itself got. */
  floorTarget?: Target;
  note?: string;
}

export const ratioOf = (cairn: number | null, peer: number | null): number | null =>
  cairn !== null && peer !== null && Number.isFinite(cairn) && Number.isFinite(peer) && peer > 0 ? cairn / peer : null;

const known = (value: number | null): value is number => value !== null && Number.isFinite(value);

/** value must be ≥ limit (higher is better). */
function higher(text: string, value: number | null, limit: number, on: Target['on']): Target {
  return known(value) ? { text, pass: value >= limit, score: value / limit, on } : { text, pass: null, score: null, on };
}

/** value must be ≤ limit (or < limit when strict; lower is better). */
function lower(text: string, value: number | null, limit: number, on: Target['on'], strict = false): Target {
  if (!known(value)) return { text, pass: null, score: null, on };
  return { text, pass: strict ? value < limit : value <= limit, score: value > 0 ? limit / value : Infinity, on };
}

export const target = {
  /** ratio ≥ x (throughputs). */
  ratioAtLeast: (ratio: number | null, x: number, of = 's3rver'): Target => higher(`≥ ${Number.isInteger(x) ? x.toFixed(1) : x}× ${of}`, ratio, x, 'ratio'),
  /** ratio ≤ x (latencies); `text` says it the way the issue does, e.g. "≤ 1/3 s3rver". */
  ratioAtMost: (ratio: number | null, x: number, text: string): Target => lower(text, ratio, x, 'ratio'),
  below: (value: number | null, limit: number, unit: string): Target => lower(`< ${limit} ${unit}`, value, limit, 'value', true),
  atMost: (value: number | null, limit: number, unit: string): Target => lower(`≤ ${limit} ${unit}`, value, limit, 'value'),
  atLeast: (value: number | null, limit: number, unit: string): Target => higher(`≥ ${fmtNum(limit, 0)} ${unit}`, value, limit, 'value'),
  equals: (value: number | null, expected: number, unit = ''): Target => {
    const text = `= ${expected}${unit ? ' ' + unit : ''}`;
    return known(value) ? { text, pass: value === expected, score: value === expected ? 1 : 0, on: 'value' } : { text, pass: null, score: null, on: 'value' };
  },
};

/** A row that failed to run at all. */
export function failedRow(id: string, workload: string, why: string): Row {
  return { id, workload, unit: '', cairn: null, peer: null, ratio: null, note: `FAILED: ${why}` };
}

export function cell(value: number | null, unit: string): string {
  if (value === null || !Number.isFinite(value)) return 'n/a';
  const text = Number.isInteger(value) ? fmtNum(value, 0) : fmtNum(value);
  return unit ? `${text} ${unit}` : text;
}

export function renderTable(rows: Row[]): string {
  const header = ['workload', 'Cairn', 'peer', 'ratio', 'target', 'result'];
  const lines = rows.map((r) => [
    r.workload,
    cell(r.cairn, r.unit),
    r.peer === null ? (r.baseline === '' ? '' : r.baseline ? `n/a (${r.baseline})` : 'n/a') : `${cell(r.peer, r.unit)}${r.baseline ? ` (${r.baseline})` : ''}`,
    r.ratio === null ? '' : `${fmtNum(r.ratio, r.ratio >= 10 ? 1 : 2)}×`,
    r.target?.text ?? '',
    r.target ? `${r.target.pass === null ? '?' : r.target.pass ? 'PASS' : 'FAIL'}${r.floorTarget?.pass === false ? ' (floor: FAIL)' : ''}` : '',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : i === 5 ? c : c.padStart(widths[i]!))).join('  ').trimEnd();
  const out = [fmt(header), widths.map((w) => '-'.repeat(w)).join('  ')];
  for (const [i, l] of lines.entries()) {
    out.push(fmt(l));
    const note = rows[i]!.note;
    if (note) out.push(`    ${note}`);
  }
  const judgedRows = rows.filter((r) => r.target && r.target.pass !== null);
  const passed = judgedRows.filter((r) => r.target!.pass).length;
  out.push('', `targets: ${passed} of ${judgedRows.length} met${rows.some((r) => r.target?.pass === null) ? ` (${rows.filter((r) => r.target?.pass === null).length} not judged)` : ''}`);
  return out.join('\n');
}
