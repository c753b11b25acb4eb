// What every service process shares: config from flags and environment, the ready line the
// cluster launcher waits for, and a clean stop on SIGINT/SIGTERM.
import { parseArgs } from 'node:util';
import type { Logger } from './log.js';

/** The line a service prints on stdout once it serves requests; the launcher parses it. */
export const READY_PREFIX = 'CAIRN_READY ';

export interface ReadyInfo {
  service: string;
  url: string;
  pid: number;
  [extra: string]: unknown;
}

export function announceReady(info: Omit<ReadyInfo, 'pid'>): void {
  process.stdout.write(READY_PREFIX + JSON.stringify({ ...info, pid: process.pid }) + '\n');
}

export function parseReadyLine(line: string): ReadyInfo | undefined {
  if (!line.startsWith(READY_PREFIX)) return undefined;
  return JSON.parse(line.slice(READY_PREFIX.length)) as ReadyInfo;
}

/**
 * Reads `--name value` flags, falling back to the environment variable given for each, then a default.
 * Flags win over the environment so that a launcher can pin per-process values.
 */
export function readConfig<K extends string>(
  spec: Record<K, { env?: string; default?: string }>,
  argv: string[] = process.argv.slice(2),
): Record<K, string | undefined> {
  const options: Record<string, { type: 'string' }> = {};
  for (const name of Object.keys(spec)) options[name] = { type: 'string' };
  const { values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
  const out = {} as Record<K, string | undefined>;
  for (const name of Object.keys(spec) as K[]) {
    const entry = spec[name];
    const flag = values[name];
    out[name] = typeof flag === 'string' ? flag : (entry.env ? process.env[entry.env] : undefined) ?? entry.default;
  }
  return out;
}

/** Runs `stop` once on SIGINT or SIGTERM, then exits; a second signal exits at once. */
export function onShutdown(log: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals): void => {
    if (stopping) process.exit(1);
    stopping = true;
    log.info('stopping', { signal });
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error('stop failed', { err });
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  if (process.env[WATCH_PARENT_ENV]) watchParent(() => handler('SIGTERM'));
}

/** Set by the cluster launcher: its services stop when it disappears, even if it was SIGKILLed. */
export const WATCH_PARENT_ENV = 'CAIRN_WATCH_PARENT';

function watchParent(onOrphaned: () => void): void {
  const parent = process.ppid;
  const timer = setInterval(() => {
    // process.ppid is read afresh each time: it changes when the parent dies and we are re-parented.
    if (process.ppid !== parent) {
      clearInterval(timer);
      onOrphaned();
    }
  }, 1000);
  timer.unref();
}
