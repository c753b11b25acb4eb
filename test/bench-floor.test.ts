// The bench's floor (bench/floor): its three processes on loopback serve what the bench's clients
// send: objects inline in the index (≤ 16 KiB), erasure-shaped across the six sinks (larger, with
// a short last stripe), byte-exact on GET with the MD5 ETag, durable on disk, 404 for a missing
// key; a client that drops a PUT or a GET halfway does not take it down; and stop() leaves no
// process and no directory behind.
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { FloorSystem } from '../bench/floor/floor.js';

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

t.test('the floor stores and returns objects of every size class, then stops clean', async (t) => {
  const floor = await FloorSystem.start(() => undefined);
  t.teardown(() => floor.stop());
  const [frontPid, indexPid, sinksPid] = floor.pids();
  t.same(floor.writerPids(), [indexPid, sinksPid]);
  t.equal(floor.frontPid(), frontPid);
  const dataDir = floor.dataDir;

  t.equal((await fetch(`${floor.endpoint}/bench`, { method: 'PUT' })).status, 200, 'a bucket PUT is answered');
  // Inline, one short stripe, one full stripe (4 × 256 KiB), several stripes with a short last one.
  for (const size of [1, 4096, 16 * 1024, 16 * 1024 + 1, 64 * 1024, 1 << 20, 3 * (1 << 20) + 12345]) {
    const body = randomBytes(size);
    const put = await fetch(`${floor.endpoint}/bench/obj-${size}`, { method: 'PUT', body });
    t.equal(put.status, 200, `PUT ${size} B`);
    t.equal(put.headers.get('etag'), `"${createHash('md5').update(body).digest('hex')}"`, `ETag of ${size} B is its MD5`);
    const got = await fetch(`${floor.endpoint}/bench/obj-${size}`);
    t.equal(got.status, 200);
    t.ok(Buffer.from(await got.arrayBuffer()).equals(body), `GET ${size} B returns the bytes`);
  }
  t.equal((await fetch(`${floor.endpoint}/bench/missing`)).status, 404, 'a missing key is 404');

  // A PUT cut off after 1 of its 3 MiB, and a GET whose client goes away after its first chunk.
  await new Promise<void>((resolve) => {
    const req = http.request(`${floor.endpoint}/bench/cut`, { method: 'PUT', headers: { 'content-length': 3 << 20 } });
    req.on('error', () => resolve());
    req.write(randomBytes(1 << 20), () => setTimeout(() => (req.destroy(), resolve()), 100));
  });
  await new Promise<void>((resolve) => {
    http.get(`${floor.endpoint}/bench/obj-${3 * (1 << 20) + 12345}`, (res) => res.once('data', () => (res.destroy(), resolve()))).on('error', () => resolve());
  });
  const after = randomBytes(100_000);
  t.equal((await fetch(`${floor.endpoint}/bench/after`, { method: 'PUT', body: after })).status, 200, 'a PUT after both is served');
  t.ok(Buffer.from(await (await fetch(`${floor.endpoint}/bench/after`)).arrayBuffer()).equals(after), 'and read back');
  for (const pid of floor.pids()) t.ok(alive(pid), `process ${pid} still runs`);

  // 1.5× the bytes of the erasure-coded objects reached the sinks' disks (six shards of a quarter each).
  const sinkBytes = readdirSync(path.join(dataDir, 'sinks')).reduce((sum, sink) => sum + dirBytes(path.join(dataDir, 'sinks', sink)), 0);
  const coded = [16 * 1024 + 1, 64 * 1024, 1 << 20, 3 * (1 << 20) + 12345, 100_000].reduce((a, s) => a + s, 0);
  t.ok(sinkBytes >= coded * 1.5 && sinkBytes < coded * 1.5 + 6 * 4 * 256 * 1024, `sinks hold ${sinkBytes} B for ${coded} B of coded objects`);

  await floor.stop();
  t.notOk(existsSync(dataDir), 'the data dir is gone');
  for (const pid of floor.pids()) t.notOk(alive(pid), `process ${pid} exited`);
});

function dirBytes(dir: string): number {
  return readdirSync(dir).reduce((sum, name) => sum + statSync(path.join(dir, name)).size, 0);
}
