// Everything the bench starts (clusters, the peer, helper processes, temp dirs) registers how to
// undo it here, so that a normal end, a failure and Ctrl-C all leave nothing behind.
// Cleanups run last-registered first. A second Ctrl-C (or a cleanup that hangs) falls back to
// SIGKILL of every registered process and a synchronous removal of every registered dir.
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';

interface Entry {
  name: string;
  run: () => Promise<void> | void;
  /** Set once the step has started, so that everyone waits for the same run. */
  started?: Promise<void>;
}

const entries: Entry[] = [];
const processes = new Set<ChildProcess>();
const processSources: (() => Iterable<ChildProcess>)[] = [];
const dirs = new Set<string>();
let keepDirs = false;
let running: Promise<void> | undefined;
let signalled = false;

const CLEANUP_TIMEOUT_MS = 30_000;

function start(entry: Entry): Promise<void> {
  entry.started ??= (async () => entry.run())();
  return entry.started;
}

/**
 * Registers an undo step; returns a function that runs it now and unregisters it. Either way it
 * runs once: calling the function while cleanupAll runs the step waits for that run.
 */
export function onCleanup(name: string, run: () => Promise<void> | void): () => Promise<void> {
  const entry: Entry = { name, run };
  entries.push(entry);
  return async () => {
    const at = entries.indexOf(entry);
    if (at !== -1) entries.splice(at, 1);
    await start(entry);
  };
}

/** True once Ctrl-C / SIGTERM arrived: start nothing new. */
export function interrupted(): boolean {
  return signalled;
}

/** A process that must never outlive the bench (SIGKILLed by the last-resort path). */
export function trackProcess(child: ChildProcess): void {
  processes.add(child);
  child.once('exit', () => processes.delete(child));
}

/** Processes that appear over time (a cluster's children, read at kill time). */
export function trackProcesses(source: () => Iterable<ChildProcess>): void {
  processSources.push(source);
}

/** A temp dir removed at the end (unless --keep). */
export function trackDir(dir: string): () => Promise<void> {
  dirs.add(dir);
  return async () => {
    dirs.delete(dir);
    if (!keepDirs) await rm(dir, { recursive: true, force: true });
    else console.error(`bench: kept ${dir}`);
  };
}

export function setKeepDirs(keep: boolean): void {
  keepDirs = keep;
}

/** Runs every registered cleanup (LIFO), then kills what is left and removes the dirs. Idempotent. */
export function cleanupAll(): Promise<void> {
  running ??= (async () => {
    const deadline = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), CLEANUP_TIMEOUT_MS).unref());
    const all = (async () => {
      while (entries.length > 0) {
        const entry = entries.pop()!;
        try {
          await start(entry);
        } catch (err) {
          console.error(`bench: cleanup "${entry.name}" failed: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
    })();
    if ((await Promise.race([all, deadline])) === 'timeout') console.error('bench: cleanup timed out; killing what is left');
    lastResort();
  })();
  return running;
}

/** Synchronous: SIGKILL every tracked process, remove every tracked dir. */
function lastResort(): void {
  const all = new Set(processes);
  for (const source of processSources) for (const child of source()) all.add(child);
  for (const child of all) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  processes.clear();
  for (const dir of dirs) {
    if (keepDirs) {
      console.error(`bench: kept ${dir}`);
      continue;
    }
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // best effort
    }
  }
  dirs.clear();
}

/** Ctrl-C / SIGTERM: clean up and exit 130; a second signal kills everything at once. */
export function installSignalHandlers(): void {
  const handler = (signal: NodeJS.Signals): void => {
    if (signalled) {
      console.error(`bench: ${signal} again, killing everything`);
      lastResort();
      process.exit(130);
    }
    signalled = true;
    console.error(`\nbench: ${signal}, stopping every process and removing temp dirs (Ctrl-C again to force)`);
    cleanupAll().finally(() => process.exit(130));
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  process.on('SIGHUP', handler);
  process.on('exit', () => lastResort());
}
