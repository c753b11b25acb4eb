// The LevelDB engine: batches write every space's keys through the root database, and what they
// write must be exactly what each space's reads (point, multi-key, cursor) see, in that space only.
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { LevelEngine, SPACES, scanRange, type KvOp } from '../namespace/engine.js';

const key = (s: string): Buffer => Buffer.from(s);

t.test('a batch across spaces reads back in each space and in no other', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-kv-'));
  let engine: LevelEngine | undefined;
  t.teardown(async () => {
    await engine?.close();
    await rm(dir, { recursive: true, force: true });
  });
  engine = await LevelEngine.open(path.join(dir, 'meta'));

  // The same key in every space, each with its own value; 'uploads' and 'upload-keys' share a stem.
  const ops: KvOp[] = SPACES.flatMap((space) => [
    { type: 'put', space, key: key('k1'), value: key(`${space}:1`) },
    { type: 'put', space, key: key('k2'), value: key(`${space}:2`) },
  ]);
  await engine.batch(ops, { sync: true });
  await engine.batch([{ type: 'del', space: 'uploads', key: key('k1') }], { sync: false });

  for (const space of SPACES) {
    const expected1 = space === 'uploads' ? undefined : `${space}:1`;
    t.equal((await engine.get(space, key('k1')))?.toString(), expected1, `${space}: point read`);
    const many = await engine.getMany(space, [key('k2'), key('k1'), key('k3')]);
    t.same(many.map((v) => v?.toString()), [`${space}:2`, expected1, undefined], `${space}: multi-key read`);
    const rows = await scanRange(engine, space, {});
    t.same(rows.map(([k, v]) => `${k.toString()}=${v.toString()}`), [...(expected1 ? [`k1=${expected1}`] : []), `k2=${space}:2`], `${space}: a full scan sees its own keys only`);
  }
});
