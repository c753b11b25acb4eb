// The floor's namespace: object records in LevelDB, each request's records written as one batch,
// durable (sync) before it answers, concurrent batches sharing one fsync. Two routes, JSON lines
// both ways: POST /put (one {key, record} per line; answers "ok" per line) and POST /get (one key
// per line as a JSON string; answers the record or null per line).
import type http from 'node:http';
import { Level } from 'level';
import { GroupSync } from '../../common/group-sync.js';
import { listenLoopback, readAll, serverOf, type Listening } from './http.js';

export async function startIndex(dir: string): Promise<Listening> {
  const db = new Level<string, string>(dir, { valueEncoding: 'utf8', writeBufferSize: 32 << 20 });
  await db.open();
  let pending: { type: 'put'; key: string; value: string }[] = [];
  // The ops of every request waiting for this flush go down together, synced.
  const group = new GroupSync(async () => {
    const ops = pending;
    pending = [];
    await db.batch(ops, { sync: true });
  });
  async function serve(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const lines = (await readAll(req)).toString('utf8').split('\n').filter(Boolean);
    if (req.url === '/put') {
      for (const line of lines) {
        const { key, record } = JSON.parse(line) as { key: string; record: unknown };
        pending.push({ type: 'put', key, value: JSON.stringify(record) });
      }
      await group.sync();
      res.end(lines.map(() => '"ok"').join('\n'));
    } else {
      const values = await db.getMany(lines.map((l) => JSON.parse(l) as string));
      res.end(values.map((v) => v ?? 'null').join('\n'));
    }
  }
  return listenLoopback(serverOf(serve), () => db.close());
}
