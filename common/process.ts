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

export type ConfigSpec<K extends string> = Record<K, { env?: string; default?: string }>;

/** `--help`, or flags that cannot be taken: the text to print and the exit code (0 for help). */
export class ConfigUsage extends Error {
  constructor(message: string, readonly exitCode: number) {
    super(message);
    this.name = 'ConfigUsage';
  }
}

/**
 * Reads `--name value` flags, falling back to the environment variable given for each, then a default.
 * Flags win over the environment so that a launcher can pin per-process values. `--help` and a flag
 * that is unknown or lacks its value end the process with the list of options, not a stack trace.
 */
export function readConfig<K extends string>(spec: ConfigSpec<K>, argv: string[] = process.argv.slice(2)): Record<K, string | undefined> {
  try {
    return parseConfig(spec, argv, process.env);
  } catch (err) {
    if (!(err instanceof ConfigUsage)) throw err;
    (err.exitCode === 0 ? process.stdout : process.stderr).write(err.message + '\n');
    process.exit(err.exitCode);
  }
}

/** readConfig without the process: throws ConfigUsage for `--help` (exit 0) and for bad flags (exit 2). */
export function parseConfig<K extends string>(spec: ConfigSpec<K>, argv: readonly string[], env: NodeJS.ProcessEnv): Record<K, string | undefined> {
  if (argv.includes('--help') || argv.includes('-h')) throw new ConfigUsage(configUsage(spec), 0);
  const options: Record<string, { type: 'string' }> = {};
  for (const name of Object.keys(spec)) options[name] = { type: 'string' };
  let values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  try {
    ({ values } = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }));
  } catch (err) {
    // parseArgs explains itself ("Unknown option '--prot'. To specify a positional argument, ..."): its first sentence is enough.
    const reason = err instanceof Error ? err.message.split('. ')[0]!.replace(/\.$/, '') : String(err);
    throw new ConfigUsage(`cairn: ${reason}\n\n${configUsage(spec)}`, 2);
  }
  const out = {} as Record<K, string | undefined>;
  for (const name of Object.keys(spec) as K[]) {
    const entry = spec[name];
    const flag = values[name];
    out[name] = typeof flag === 'string' ? flag : (entry.env ? env[entry.env] : undefined) ?? entry.default;
  }
  return out;
}

/** Every option, its environment variable and its default, one per line. */
export function configUsage(spec: ConfigSpec<string>): string {
  const rows = Object.entries(spec).map(([name, entry]) => [`  --${name} <value>`, entry.env ?? '', entry.default === undefined ? '' : `default ${entry.default}`]);
  const width = (i: number): number => Math.max(...rows.map((r) => r[i]!.length));
  const lines = rows.map((r) => [r[0]!.padEnd(width(0)), r[1]!.padEnd(width(1)), r[2]].join('  ').trimEnd());
  return ['Options (each may also be set by the environment variable beside it; a flag wins):', ...lines].join('\n');
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
