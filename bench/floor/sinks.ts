// The floor's storage nodes: `count` HTTP listeners in one process (as Cairn runs its six disks in
// one storage process), each with a directory. PUT /<name> stores a shard durably before it answers:
// a shard up to SMALL_SHARD is appended to the sink's log file (concurrent appends share one
// fdatasync), a larger one streams into its own file and is fdatasynced. GET /<name> returns it.
// Where each logged shard lies is kept in memory only: a floor lives for one bench run.
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import type http from 'node:http';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { GroupSync } from '../../common/group-sync.js';
import { listenLoopback, readAll, serverOf, type Listening } from './http.js';

const SMALL_SHARD = 1 << 20;

export async function startSinks(dir: string, count: number): Promise<Listening[]> {
  return Promise.all(Array.from({ length: count }, (_, i) => startSink(path.join(dir, `sink-${i + 1}`))));
}

async function startSink(dir: string): Promise<Listening> {
  await mkdir(dir, { recursive: true });
  const log = await open(path.join(dir, 'log'), 'w+');
  let logEnd = 0;
  const logSync = new GroupSync(() => log.datasync());
  const inLog = new Map<string, { at: number; length: number }>();
  async function serve(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const name = encodeURIComponent(req.url ?? '/');
    const file = path.join(dir, name);
    if (req.method === 'PUT') {
      const length = Number(req.headers['content-length']);
      if (length <= SMALL_SHARD) {
        const body = await readAll(req);
        const at = logEnd;
        logEnd += body.length;
        await log.write(body, 0, body.length, at);
        await logSync.sync();
        inLog.set(name, { at, length: body.length });
      } else {
        await pipeline(req, createWriteStream(file));
        await syncFile(file);
      }
      res.end();
      return;
    }
    const logged = inLog.get(name);
    if (logged) {
      const buf = Buffer.allocUnsafe(logged.length);
      await log.read(buf, 0, logged.length, logged.at);
      res.setHeader('content-length', logged.length);
      res.end(buf);
    } else {
      await pipeline(createReadStream(file, { highWaterMark: 256 * 1024 }), res);
    }
  }
  return listenLoopback(serverOf(serve), () => log.close());
}

async function syncFile(file: string): Promise<void> {
  const fd: FileHandle = await open(file, 'r+');
  try {
    await fd.datasync();
  } finally {
    await fd.close();
  }
}
