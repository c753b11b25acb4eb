// A helper process of the bench (the peer, the floor): spawned on loopback, tracked so it dies with
// the bench, and awaited until it prints its ready line (`<PREFIX> {json}`) on stdout.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { REPO_ROOT } from '../common/source-tree.js';
import { onCleanup, trackProcess } from './cleanup.js';

export interface ReadyChild<R> {
  child: ChildProcess;
  /** What the ready line carried. */
  ready: R;
  /** Stops the process (SIGTERM, SIGKILL after 5 s) and forgets it. */
  unregister: () => Promise<void>;
}

export async function spawnReady<R>(what: string, nodeArgs: string[], prefix: string, timeoutMs: number): Promise<ReadyChild<R>> {
  const child = spawn(process.execPath, ['--no-warnings', ...nodeArgs], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  trackProcess(child);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const unregister = onCleanup(`stop ${what}`, () => stopChild(child));
  try {
    const ready = await new Promise<R>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${what} did not start within ${timeoutMs} ms`)), timeoutMs);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${what} exited (code ${code}, signal ${signal}) before serving: ${stderr.trim()}`));
      });
      child.once('error', reject);
      createInterface({ input: child.stdout! }).on('line', (line) => {
        if (!line.startsWith(`${prefix} `)) return;
        clearTimeout(timer);
        resolve(JSON.parse(line.slice(prefix.length + 1)) as R);
      });
    });
    return { child, ready, unregister };
  } catch (err) {
    await unregister();
    throw err;
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}
