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
