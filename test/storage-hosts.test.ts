// Storage processes that serve several disks (nodesPerProcess), as one process per machine does:
// every disk is a node of its own to the namespace, placement and reads; one disk can go down
// while its process keeps serving the others.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { NamespaceClient } from '../namespace/client.js';
import { startTestCluster } from './helpers/cluster.js';
import { waitFor } from './helpers/wait.js';

const MiB = 1024 * 1024;
const BUCKET = 'hosts';

t.test('six nodes in two storage processes: spread, degraded reads after one disk goes down, and back', async (t) => {
  const env = await startTestCluster({ nodes: 6, nodesPerProcess: 3, k: 4, m: 2, downAfter: '2s' });
  t.teardown(() => env.destroy());
  const { cluster, s3 } = env;
  const ns = new NamespaceClient(cluster.namespaceUrl, { secret: cluster.clusterSecret });
  t.teardown(() => ns.close());

  t.same([...cluster.services.keys()].filter((n) => cluster.isStorageService(n)).sort(), ['storage-1', 'storage-2'], 'two processes, named for the group');
  t.equal(cluster.storageServiceOf('node-2'), 'storage-1');
  t.equal(cluster.storageServiceOf('node-5'), 'storage-2');
  const nodes = await waitFor('six nodes up', async () => {
    const list = await ns.listNodes();
    return list.filter((n) => n.state === 'up').length === 6 ? list : undefined;
  }, 10_000);
  t.equal(new Set(nodes.map((n) => n.url)).size, 6, 'six nodes up, each with its own URL');

  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  const objects = new Map([['big', randomBytes(5 * MiB + 11)], ['mid', randomBytes(300_000)]]);
  for (const [key, body] of objects) await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));
  const read = async (key: string): Promise<Buffer> => Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }))).Body!.transformToByteArray());
  for (const [key, body] of objects) t.ok((await read(key)).equals(body), `${key} reads back`);
  for (const id of cluster.nodeIds) {
    const fans = await readdir(path.join(cluster.nodeDataDir(id), 'shards')).catch(() => []);
    t.ok(fans.length > 0, `${id}'s own disk holds shards`);
  }

  const pidBefore = cluster.services.get('storage-1')!.ready.pid;
  await cluster.killNode('node-2');
  t.not(cluster.services.get('storage-1')!.ready.pid, pidBefore, 'the shared process came back');
  t.equal(cluster.storageServiceOf('node-2'), undefined, 'without node-2');
  t.equal(cluster.storageServiceOf('node-1'), 'storage-1');
  await waitFor('node-2 down, node-1 and node-3 up', async () => {
    const list = await ns.listNodes();
    const state = (id: string): string | undefined => list.find((n) => n.id === id)?.state;
    return state('node-2') === 'down' && ['node-1', 'node-3'].every((id) => state(id) === 'up');
  }, 15_000);
  t.pass('node-2 is declared down; its process neighbours stay up');
  for (const [key, body] of objects) t.ok((await read(key)).equals(body), `${key} reads back with node-2 down`);
  const late = randomBytes(2 * MiB);
  await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'late', Body: late }));
  t.ok((await read('late')).equals(late), 'writes go on with one disk down');

  await cluster.startNode('node-2');
  t.equal(cluster.storageServiceOf('node-2'), 'node-2', 'back in a process of its own');
  await waitFor('node-2 up again', async () => (await ns.listNodes()).find((n) => n.id === 'node-2')?.state === 'up', 15_000);
  await t.rejects(cluster.killNode('node-9'), /not running/);
});

t.test('a disk lost in a shared process is rebuilt onto a new disk of that process from its neighbours\' stores, not over HTTP', async (t) => {
  const env = await startTestCluster({ nodes: 6, nodesPerProcess: 6, k: 4, m: 2, downAfter: '2s', repair: { workers: 2, rate: 'unlimited', interval: '300ms' } });
  t.teardown(() => env.destroy());
  const { cluster, s3 } = env;
  const ns = new NamespaceClient(cluster.namespaceUrl, { secret: cluster.clusterSecret });
  t.teardown(() => ns.close());
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  const objects = new Map([0, 1, 2].map((i) => [`obj-${i}`, randomBytes(3 * MiB + i * 1001)]));
  for (const [key, body] of objects) await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));

  await cluster.addNodeBeside('node-7', 'node-2');
  t.equal(cluster.storageServiceOf('node-7'), 'storage-1', 'the new disk is served by the process of the others');
  await waitFor('node-7 up', async () => (await ns.listNodes()).find((n) => n.id === 'node-7')?.state === 'up', 15_000);
  await cluster.killNode('node-1');
  // Full redundancy: every segment on k+m distinct nodes that are up, none on node-1.
  await waitFor('every segment whole again without node-1', async () => {
    const up = new Set((await ns.listNodes()).filter((n) => n.state === 'up').map((n) => n.id));
    const records = await Promise.all([...objects.keys()].map((key) => ns.getObject(BUCKET, key)));
    return records.every((r) => r.segments.every((s) => s.placements.length === 6 && s.placements.every((p) => p.nodeId !== null && p.nodeId !== 'node-1' && up.has(p.nodeId))));
  }, 40_000);

  const spare = (await ns.listNodes()).find((n) => n.id === 'node-7')!;
  const metrics = await (await fetch(`${spare.url}/metrics`)).text();
  const series = (source: string): number => Number(metrics.match(new RegExp(`^cairn_storage_rebuild_source_bytes_total\\{source="${source}"\\} (\\d+)`, 'm'))?.[1] ?? 0);
  const lost = [...objects.values()].reduce((sum, body) => sum + body.length, 0) / 4;
  t.ok(series('local') >= 4 * lost * 0.9, `node-7 read its sources from its neighbours' stores (${series('local')} bytes for ~${Math.round(lost)} rebuilt)`);
  t.equal(series('remote'), 0, 'nothing over HTTP');
  for (const [key, body] of objects) {
    const back = Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }))).Body!.transformToByteArray());
    t.ok(back.equals(body), `${key} reads back with node-1 gone`);
  }
});
