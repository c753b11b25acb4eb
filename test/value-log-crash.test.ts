// The value log under SIGKILL: a child writes and deletes small values through group commit, the
// value log and LevelDB, with segments so small that compactions run all the time, and is killed at
// a random moment, several rounds on the same directory. After each kill, every key reads back as
// its last acknowledged state or as the one operation it had in flight, byte for byte; the live
// counts match what is pointed to; and a compaction afterwards changes nothing that can be read.
import t from 'tap';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import path from 'node:path';
import { tempDir } from './helpers/temp-dir.js';
import { LevelEngine, scanRange } from '../namespace/engine.js';
import { ValueLogEngine } from '../namespace/value-log-engine.js';
import { decodePointer, entryBytes } from '../namespace/value-log.js';
import { WATCH_PARENT_ENV } from '../common/process.js';
import { valueFor, writerKey, WRITER_KEYS, WRITER_ROLL_BYTES } from './helpers/value-log-values.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const ROUNDS = 6;
/** Versions: key → the acknowledged one (-1: deleted or never written) and the one in flight. */
type Model = Map<number, { acked: number; pending?: number }>;

/** Runs the writer until SIGKILL after `ms`; returns what it said. */
async function writeUntilKilled(dir: string, firstVersion: number, ms: number, model: Model): Promise<{ acks: number }> {
  const child = spawn(process.execPath, ['--no-warnings', '--import', 'tsx', 'test/helpers/value-log-writer.ts', dir, String(firstVersion)], {
    cwd: ROOT,
    env: { ...process.env, [WATCH_PARENT_ENV]: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let acks = 0;
  let timer: NodeJS.Timeout | undefined;
  createInterface({ input: child.stdout! }).on('line', (line) => {
    if (line === 'READY') timer = setTimeout(() => child.kill('SIGKILL'), ms);
    const [what, k, v] = line.split(' ');
    if (what === 'W') model.get(Number(k))!.pending = Number(v);
    if (what === 'A') {
      model.set(Number(k), { acked: Number(v) });
      acks++;
    }
  });
  const guard = setTimeout(() => child.kill('SIGKILL'), 60_000);
  await exited;
  clearTimeout(timer);
  clearTimeout(guard);
  if (child.signalCode !== 'SIGKILL') throw new Error(`the writer exited by itself (${child.exitCode}): ${stderr}`);
  return { acks };
}

t.test('SIGKILL mid-write and mid-compaction: every value is its last acknowledged state or its in-flight one', async (t) => {
  const dir = await tempDir(t, 'cairn-vlog-crash-');
  const model: Model = new Map(Array.from({ length: WRITER_KEYS }, (_, k) => [k, { acked: -1 }]));
  let compactions = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const { acks } = await writeUntilKilled(dir, round * 1_000_000, 400 + Math.floor(Math.random() * 1200), model);
    const level = await LevelEngine.open(path.join(dir, 'meta'));
    const engine = await ValueLogEngine.open(level, path.join(dir, 'values'), { rollBytes: WRITER_ROLL_BYTES });
    try {
      const wrong: string[] = [];
      for (const [k, state] of model) {
        const got = await engine.get('inline', writerKey(k));
        const allowed = [state.acked, ...(state.pending === undefined ? [] : [state.pending])];
        const seen = allowed.find((v) => (v < 0 ? got === undefined : got?.equals(valueFor(k, v))));
        if (seen === undefined) wrong.push(`key ${k}: ${got === undefined ? 'missing' : `${got.length} other bytes`}, expected version ${allowed.join(' or ')}`);
        else model.set(k, { acked: seen });
      }
      t.same(wrong, [], `round ${round} (${acks} acknowledged operations): every key holds an allowed state`);
      const pointers = await scanRange(level, 'values', {});
      const pointed = pointers.reduce((n, [, p]) => n + entryBytes(decodePointer(p)), 0);
      t.equal(engine.usage().liveBytes, pointed, `round ${round}: the live counts are exactly what is pointed to`);
      await engine.compact();
      const after: string[] = [];
      for (const [k, state] of model) {
        const got = await engine.get('inline', writerKey(k));
        if (state.acked < 0 ? got !== undefined : !got?.equals(valueFor(k, state.acked))) after.push(`key ${k}`);
      }
      t.same(after, [], `round ${round}: a compaction after reopening changes nothing readable`);
      compactions += engine.stats.compactions;
    } finally {
      await engine.close();
    }
  }
  t.ok(compactions > 0, `compactions ran (${compactions} after the reopenings alone)`);
});
