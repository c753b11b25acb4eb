// A child process for test/value-log-crash.test.ts: writes and deletes small values through the
// namespace's engine stack (group commit over the value log over LevelDB) until it is killed, with
// tiny segments so that compactions run all the time. It prints each operation before it is
// submitted ("W key version") and once it is acknowledged ("A key version"); version -1 is a
// delete. Each of its workers owns its own keys, so a key has at most one operation in flight.
// Usage: value-log-writer.ts DIR FIRST_VERSION
import path from 'node:path';
import { GroupCommitEngine } from '../../namespace/group-commit.js';
import { LevelEngine } from '../../namespace/engine.js';
import { ValueLogEngine } from '../../namespace/value-log-engine.js';
import { onShutdown } from '../../common/process.js';
import { createLogger } from '../../common/log.js';
import { valueFor, writerKey, WRITER_KEYS, WRITER_ROLL_BYTES } from './value-log-values.js';

const [dir, first] = process.argv.slice(2);
if (!dir || first === undefined) throw new Error('usage: value-log-writer.ts DIR FIRST_VERSION');
const level = await LevelEngine.open(path.join(dir, 'meta'));
const engine = new GroupCommitEngine(await ValueLogEngine.open(level, path.join(dir, 'values'), { rollBytes: WRITER_ROLL_BYTES }));
// Stops (closing the engine) on SIGTERM or when the test process is gone, as the services do.
onShutdown(createLogger('value-log-writer'), () => engine.close());
const WORKERS = 4;
let version = Number(first);
process.stdout.write('READY\n');

await Promise.all(
  Array.from({ length: WORKERS }, async (_, w) => {
    for (let i = 0; ; i++) {
      const k = w + WORKERS * ((i * 7) % (WRITER_KEYS / WORKERS));
      const v = (i + w) % 3 === 2 ? -1 : version++;
      process.stdout.write(`W ${k} ${v}\n`);
      const key = writerKey(k);
      await engine.batch([v < 0 ? { type: 'del', space: 'inline', key } : { type: 'put', space: 'inline', key, value: valueFor(k, v) }], { sync: true });
      process.stdout.write(`A ${k} ${v}\n`);
    }
  }),
);
