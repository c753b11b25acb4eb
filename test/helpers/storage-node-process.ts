// storage-node/main.ts as a real process for tests: its ready line, its exit, its stderr. Every
// process is SIGKILLed at the end of the test file, and it watches its parent, so even a killed
// test run leaves none behind.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import t from 'tap';
import { parseReadyLine, WATCH_PARENT_ENV } from '../../common/process.js';
import { SECRET_ENV } from './internal.js';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const children = new Set<ChildProcess>();
t.teardown(() => {
  for (const child of children) child.kill('SIGKILL');
});

export interface NodeProcess {
  child: ChildProcess;
  ready: Promise<Record<string, unknown>>;
  exit: Promise<number | null>;
  stderr: () => string;
}

/** Starts a storage node with `args`, as user `uid` when given (to test unwritable data dirs). */
export function spawnNode(args: string[], uid?: number): NodeProcess {
  const ids = uid === undefined ? {} : { uid, gid: uid };
  const env = { ...SECRET_ENV, [WATCH_PARENT_ENV]: '1' };
  const child = spawn(process.execPath, ['--import', 'tsx', 'storage-node/main.ts', ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], ...ids });
  children.add(child);
  let err = '';
  child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
  const exit = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      children.delete(child);
      resolve(code);
    }),
  );
  const ready = new Promise<Record<string, unknown>>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (c: Buffer) => {
      out += c.toString();
      for (const line of out.split('\n')) {
        const info = parseReadyLine(line);
        if (info) resolve(info);
      }
    });
    void exit.then((code) => reject(new Error(`exited ${code} before ready: ${err}`)));
  });
  return { child, ready, exit, stderr: () => err };
}
