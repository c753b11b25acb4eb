// One JSON line per run appended to <out>/results.jsonl (kept in git to track regressions), and the
// run's chart next to it: <out>/latest.svg, plus <out>/quick.svg for --quick runs so a smoke run
// never replaces the chart of the last full run.
import { execFileSync } from 'node:child_process';
import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { renderChart } from './chart.js';
import type { BenchConfig } from './config.js';
import type { Row } from './report.js';

export interface RunRecord {
  schema: 1;
  runId: string;
  startedAt: string;
  durationSeconds: number;
  mode: BenchConfig['mode'];
  workloads: string[];
  git: { commit: string | null; dirty: boolean | null };
  host: { cpus: number; cpuModel: string; memGiB: number; kernel: string; node: string };
  versions: Record<string, string | null>;
  config: Omit<BenchConfig, 'only' | 'outDir' | 'keep'>;
  rows: Row[];
  targets: { met: number; judged: number };
  failures: string[];
  details: Record<string, unknown>;
}

function git(args: string[]): string | null {
  try {
    return execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

function version(pkg: string): string | null {
  try {
    return (createRequire(import.meta.url)(`${pkg}/package.json`) as { version: string }).version;
  } catch {
    return null;
  }
}

export function hostInfo(): RunRecord['host'] {
  return {
    cpus: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    node: process.version,
  };
}

export function runRecord(cfg: BenchConfig, startedAt: Date, rows: Row[], failures: string[], details: Record<string, unknown>): RunRecord {
  const judged = rows.filter((r) => r.target && r.target.pass !== null);
  const status = git(['status', '--porcelain']);
  const { only, outDir, keep, ...config } = cfg;
  void outDir;
  void keep;
  return {
    schema: 1,
    runId: startedAt.toISOString().replace(/[:.]/g, '-'),
    startedAt: startedAt.toISOString(),
    durationSeconds: Math.round((Date.now() - startedAt.getTime()) / 100) / 10,
    mode: cfg.mode,
    workloads: [...only],
    git: { commit: git(['rev-parse', 'HEAD']), dirty: status === null ? null : status.length > 0 },
    host: hostInfo(),
    versions: { s3rver: version('s3rver'), '@aws-sdk/client-s3': version('@aws-sdk/client-s3'), loadGenerator: 'bench/s3/lean-http.ts' },
    config,
    rows,
    targets: { met: judged.filter((r) => r.target!.pass).length, judged: judged.length },
    failures,
    details,
  };
}

/** Appends the JSON line and writes the chart; returns the paths written. */
export async function saveRun(outDir: string, record: RunRecord): Promise<{ jsonl: string; svg: string }> {
  await mkdir(outDir, { recursive: true });
  const jsonl = path.join(outDir, 'results.jsonl');
  await appendFile(jsonl, JSON.stringify(record) + '\n');
  const svg = path.join(outDir, record.mode === 'quick' ? 'quick.svg' : 'latest.svg');
  const subtitle = `${record.startedAt} · ${record.mode} · git ${record.git.commit?.slice(0, 10) ?? '?'}${record.git.dirty ? '+dirty' : ''} · ${record.host.cpus} × ${record.host.cpuModel} · Node ${record.host.node} · peer s3rver ${record.versions.s3rver ?? '?'}`;
  await writeFile(svg, renderChart(record.rows, 'Cairn benchmark: targets', subtitle));
  return { jsonl, svg };
}
