// The inventory audit against fakes of the namespace and the nodes: how often it calls them when a
// node cannot be reached. (Finding lost shards on live nodes is tested on a real cluster in
// repair.test.ts.)
import t from 'tap';
import { createLogger } from '../common/log.js';
import { Registry } from '../common/metrics.js';
import type { NodeRecord, ShardRefPage } from '../namespace/types.js';
import { NodeView } from '../repair/cluster-view.js';
import type { RepairNamespace, RepairNodeClient, RepairNodePool } from '../repair/deps.js';
import { InventoryAuditor, RETRY_AFTER_FAILURE_MS } from '../repair/inventory.js';
import { WorkerStats, workerMetrics } from '../repair/worker.js';

function node(id: string, bootId: string): NodeRecord {
  const now = new Date().toISOString();
  return { id, url: `http://${id}.invalid`, capacityBytes: 1e12, usedBytes: 0, freeBytes: 1e12, firstSeen: now, lastHeartbeat: now, bootId, state: 'up' };
}

t.test('a node whose audit fails is not retried at once, but is when it comes back with a new boot id', async (t) => {
  const nodes = [node('alive', 'a1'), node('dead', 'd1')];
  const calls = { shardsOnNode: new Map<string, number>(), listShards: new Map<string, number>() };
  const bump = (m: Map<string, number>, id: string): void => void m.set(id, (m.get(id) ?? 0) + 1);
  const namespace = {
    listNodes: async () => nodes,
    shardsOnNode: async (id: string): Promise<ShardRefPage> => {
      bump(calls.shardsOnNode, id);
      return { refs: [{ shardId: `${id}-s1`, bucket: 'b', key: 'k', versionId: 'v', segment: 0, index: 0 }] } as ShardRefPage;
    },
    reportDamage: async () => undefined,
  } as unknown as RepairNamespace;
  const pool: RepairNodePool = {
    get: (url: string) =>
      ({
        listShards: async () => {
          const id = new URL(url).hostname.replace('.invalid', '');
          bump(calls.listShards, id);
          if (id === 'dead') throw new Error('connect ECONNREFUSED');
          return { shards: [{ id: `${id}-s1`, size: 1 }] };
        },
      }) as unknown as RepairNodeClient,
  };
  const auditor = new InventoryAuditor(namespace, new NodeView(namespace, pool), new WorkerStats('audit', workerMetrics(new Registry('test'))), createLogger('test', 'error'), 3_600_000);

  for (let i = 0; i < 20; i++) await auditor.tick();
  t.equal(calls.listShards.get('dead'), 1, 'twenty ticks tried the unreachable node once');
  t.equal(calls.listShards.get('alive'), 1, 'the live node was audited once');
  const progress = auditor.progress().progress.nodes as Record<string, { bootId?: string }>;
  t.equal(progress.alive?.bootId, 'a1', 'the finished audit names the boot it covered');
  t.notOk(progress.dead, 'the failed audit did not finish');
  t.ok(RETRY_AFTER_FAILURE_MS >= 1000, 'retries wait at least a second');

  nodes[1] = node('dead', 'd2');
  await auditor.tick();
  t.equal(calls.listShards.get('dead'), 2, 'a new boot id is audited at once, failure or not');
});
