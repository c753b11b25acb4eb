// The bench's split of where small PUTs wait (bench/put-waits.ts): the arithmetic on made-up
// counts, and the series names against a real cluster's metrics, so a renamed metric shows here
// rather than as a silent "n/a" in a bench run.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { CreateBucketCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { addCounts, countsBetween, describePutWaits, parseSeries, putWaitCounts, putWaits, PUT_WAIT_SERIES, type PutWaitCounts } from '../bench/put-waits.js';
import { startTestCluster } from './helpers/cluster.js';

const zero: PutWaitCounts = putWaitCounts(new Map(), new Map());

t.test('parseSeries keeps each series by its name and labels, skipping comments', async (t) => {
  const series = parseSeries('# HELP x y\n# TYPE x gauge\nx{kind="a",to="b"} 1.5\nx{kind="c",to="b"} 2\nplain 7\n\nbroken line\n');
  t.same([...series], [['x{kind="a",to="b"}', 1.5], ['x{kind="c",to="b"}', 2], ['plain', 7]]);
});

t.test('averages per PUT, per commit and per group; n/a where nothing was counted', async (t) => {
  const before = { ...zero, puts: 10, putSeconds: 1 };
  const after: PutWaitCounts = {
    putSeconds: 1.2,
    puts: 30,
    commitRequests: 5,
    commitItems: 20,
    commitQueuedSeconds: 0.02,
    commitRequestSeconds: 0.05,
    storeBatches: 20,
    storeWrites: 4,
    storeWaitSeconds: 0.08,
    storePrepareSeconds: 0.008,
    storeWriteSeconds: 0.006,
  };
  const phase = countsBetween(before, after);
  t.equal(phase.puts, 20);
  const w = putWaits(phase);
  t.equal(w.putMs!.toFixed(3), '10.000', 'the PUTs: 0.2 s over 20');
  t.equal(w.commitQueuedMs, 1, 'queued per commit');
  t.equal(w.commitRoundTripMs, 10, 'round trip per request');
  t.equal(w.commitsPerRequest, 4);
  t.equal(w.storeWaitMs, 4, 'store wait per commit');
  t.equal(w.appendMs, 2, 'append per group');
  t.equal(w.writeMs!.toFixed(3), '1.500', 'write per group');
  t.equal(w.commitsPerWrite, 5);
  t.same(addCounts(phase, phase).puts, 40, 'two halves add up');
  t.equal(describePutWaits(putWaits(zero)), undefined, 'no PUT, no line');
  t.match(describePutWaits(putWaits({ ...zero, puts: 1, putSeconds: 0.003 })), /PutObject 3\.0 ms in the gateway; its commit queued n\/a/);
});

t.test("a real cluster's metrics carry every series the split reads", async (t) => {
  const tc = await startTestCluster({ repair: { interval: '1h' } });
  t.teardown(() => tc.destroy());
  const text = async (url: string): Promise<string> => (await fetch(url)).text();
  const readings = async (): Promise<{ gateway: Map<string, number>; namespace: Map<string, number> }> => ({
    gateway: parseSeries(await text(`${tc.cluster.endpoint}/-/metrics`)),
    namespace: parseSeries(await text(`${tc.cluster.namespaceUrl}/metrics`)),
  });
  const read = async (): Promise<PutWaitCounts> => {
    const { gateway, namespace } = await readings();
    return putWaitCounts(gateway, namespace);
  };
  await tc.s3.send(new CreateBucketCommand({ Bucket: 'waits' }));
  const before = await read();
  await Promise.all(Array.from({ length: 8 }, (_, i) => tc.s3.send(new PutObjectCommand({ Bucket: 'waits', Key: `k${i}`, Body: randomBytes(4096) }))));
  // Read as 0 when absent, so each must be seen served (the PUT histogram's from its first PUT on).
  const served = await readings();
  for (const [key, [source, series]] of Object.entries(PUT_WAIT_SERIES)) t.ok(served[source].has(series), `${key}: ${source} serves ${series}`);
  const phase = countsBetween(before, putWaitCounts(served.gateway, served.namespace));
  t.equal(phase.puts, 8, 'the PUTs');
  t.equal(phase.commitItems, 8, 'their commits');
  t.ok(phase.commitRequests >= 1 && phase.commitRequests <= 8, `${phase.commitRequests} commit requests`);
  t.ok(phase.storeBatches >= 8, `store batches (${phase.storeBatches})`);
  t.ok(phase.storeWrites >= 1, `store writes (${phase.storeWrites})`);
  for (const key of ['putSeconds', 'commitRequestSeconds', 'storeWaitSeconds', 'storePrepareSeconds', 'storeWriteSeconds'] as const) {
    t.ok(phase[key] > 0, `${key} counted (${phase[key].toFixed(4)})`);
  }
  t.notMatch(describePutWaits(putWaits(phase)) ?? 'none', /n\/a|none/, 'every figure of the line is there');
});
