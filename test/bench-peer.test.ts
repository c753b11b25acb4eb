// The bench's baseline peer (bench/peer): s3rver in its own process serves signed S3 requests from
// the bench's client, and stop() leaves no process and no directory behind.
import t from 'tap';
import { existsSync } from 'node:fs';
import { Pattern } from '../bench/data.js';
import { PeerSystem } from '../bench/peer/peer.js';
import { RawS3 } from '../bench/s3/raw.js';

t.test('s3rver starts, serves a PUT and a GET, and stops clean', async (t) => {
  const peer = await PeerSystem.start(() => undefined);
  t.teardown(() => peer.stop());
  const client = new RawS3(peer.endpoint, peer.creds, { connections: 2 });
  t.teardown(() => client.close());
  await client.createBucket('bench');
  const pattern = new Pattern();
  await client.put('bench', 'some/key', pattern.slice('some/key', 0, 70_000));
  const verifier = pattern.verifier('some/key');
  t.equal(await client.get('bench', 'some/key', verifier), 70_000);
  t.doesNotThrow(() => verifier.check(70_000, 'GET some/key'), 'the bytes come back');
  const [pid] = peer.pids();
  await client.close();
  await peer.stop();
  t.notOk(existsSync(peer.dataDir), 'the data dir is gone');
  t.throws(() => process.kill(pid!, 0), 'the process exited');
});
