// `npm run admin -- <command>`: operator commands against a running cluster.
//   status                 nodes (state, mode, usage) and the repair service's workers
//   drain <node> [--wait]  mark a node draining: repair moves every shard off it
//   undrain <node>         back to normal (shards already moved stay where they are)
//   pause|resume <worker>  pause or resume a repair worker ('all' for every one)
//   rate <rate>            change the repair byte-rate limit, e.g. 50MB
//   user create <id> [--display-name N] | user list | user disable|enable|delete <id>
//   key create <user> | key list [user] | key disable|enable|delete <access key id>
//                          S3 users and their access keys (a new key's secret is printed once)
// Services are found with --namespace URL / --repair URL, or from a local cluster's data dir
// (--data-dir, default ./data), where the launcher writes cluster.json. Requests are signed with
// the cluster secret: CAIRN_CLUSTER_SECRET, else the data dir's cluster-secret file.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { CLUSTER_SECRET_ENV, CLUSTER_SECRET_FILE, readSecretFile } from '../common/cluster-secret.js';
import { ClusterSecret } from '../common/internal-auth.js';
import { NamespaceClient } from '../namespace/client.js';
import type { AccessKeyRecord, CreatedAccessKey, NodeRecord, UserRecord } from '../namespace/types.js';
import { RepairClient, type RepairStatus, type WorkerStatus } from './client.js';

interface Endpoints {
  namespace: string;
  repair?: string;
  secret: ClusterSecret;
}

const USAGE = `usage: npm run admin -- <command> [--namespace URL] [--repair URL] [--data-dir DIR] [--json]
commands: status | drain <node> [--wait] [--timeout 10m] | undrain <node> | pause <worker> | resume <worker> | rate <e.g. 100MB>
          user create <id> [--display-name NAME] | user list | user disable|enable|delete <id>
          key create <user> | key list [user] | key disable|enable|delete <access key id>`;

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    args: process.argv.slice(2),
    allowPositionals: true,
    options: {
      namespace: { type: 'string' },
      repair: { type: 'string' },
      'data-dir': { type: 'string' },
      json: { type: 'boolean' },
      wait: { type: 'boolean' },
      timeout: { type: 'string' },
      'display-name': { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  const [command, arg, target] = positionals;
  if (!command || values.help) return usage(values.help ? 0 : 2);
  const endpoints = await findEndpoints(values.namespace, values.repair, values['data-dir']);
  const namespace = new NamespaceClient(endpoints.namespace, { secret: endpoints.secret });
  try {
    switch (command) {
      case 'status':
        return await status(namespace, endpoints, values.json ?? false);
      case 'drain':
        return await drain(namespace, endpoints, required(arg, 'node id'), values.wait ?? false, values.timeout);
      case 'undrain':
        await namespace.setNodeMode(required(arg, 'node id'), 'normal');
        return console.log(`${arg} is back to normal: it gets new placements again`);
      case 'pause':
      case 'resume':
        return await pauseResume(endpoints, command, required(arg, 'worker name'));
      case 'rate':
        return console.log(`repair rate is now ${await repairClient(endpoints).setRate(required(arg, 'rate'))}`);
      case 'user':
        return await userCommand(namespace, required(arg, 'user command'), target, values['display-name'], values.json ?? false);
      case 'key':
        return await keyCommand(namespace, required(arg, 'key command'), target, values.json ?? false);
      default:
        return usage(2);
    }
  } finally {
    await namespace.close();
  }
}

function usage(code: number): void {
  (code === 0 ? console.log : console.error)(USAGE);
  process.exitCode = code;
}

function required(value: string | undefined, what: string): string {
  if (!value) throw new Error(`missing ${what}\n${USAGE}`);
  return value;
}

async function findEndpoints(namespace?: string, repair?: string, dataDir?: string): Promise<Endpoints> {
  namespace ??= process.env.CAIRN_NAMESPACE_URL;
  repair ??= process.env.CAIRN_REPAIR_URL;
  const dir = path.resolve(dataDir ?? process.env.CAIRN_DATA_DIR ?? './data');
  const secret = await findSecret(dir);
  if (namespace && repair) return { namespace, repair, secret };
  let services: Record<string, { url: string }> = {};
  try {
    services = (JSON.parse(await readFile(path.join(dir, 'cluster.json'), 'utf8')) as { services: typeof services }).services;
  } catch {
    if (!namespace) throw new Error(`no --namespace given and no running cluster found in ${dir} (cluster.json)`);
  }
  return { namespace: namespace ?? services.namespace.url, repair: repair ?? services.repair?.url, secret };
}

async function findSecret(dataDir: string): Promise<ClusterSecret> {
  const text = process.env[CLUSTER_SECRET_ENV];
  if (text) return ClusterSecret.parse(text, CLUSTER_SECRET_ENV);
  const stored = await readSecretFile(dataDir);
  if (stored === undefined) throw new Error(`no cluster secret: set ${CLUSTER_SECRET_ENV}, or pass the --data-dir holding ${CLUSTER_SECRET_FILE}`);
  return ClusterSecret.parse(stored);
}

function repairClient(endpoints: Endpoints): RepairClient {
  if (!endpoints.repair) throw new Error('the repair service URL is unknown: pass --repair URL');
  return new RepairClient(endpoints.repair, endpoints.secret);
}

async function status(namespace: NamespaceClient, endpoints: Endpoints, json: boolean): Promise<void> {
  const nodes = await namespace.listNodes();
  const repair = endpoints.repair ? await repairClient(endpoints).status().catch((err: unknown) => errorText(err)) : 'repair URL unknown';
  if (json) return console.log(JSON.stringify({ nodes, repair }, null, 2));
  printNodes(nodes);
  console.log('');
  if (typeof repair === 'string') return console.log(`repair service: ${repair}`);
  printRepair(repair);
}

function printNodes(nodes: NodeRecord[]): void {
  console.log(table(['node', 'state', 'mode', 'zone', 'used', 'capacity', 'url'], nodes.map((n) => [
    n.id, n.state, n.mode ?? 'normal', n.zone ?? '-', bytes(n.usedBytes), bytes(n.capacityBytes), n.url,
  ])));
}

function printRepair(s: RepairStatus): void {
  const r = s.repair;
  console.log(`repair: ${r.segmentsRepaired} segments repaired (${r.shardsRebuilt} shards rebuilt, ${r.shardsCopied} copied, ${bytes(Number(r.bytesWritten))}), ` +
    `${r.queued} queued, ${r.inProgress} in progress, ${r.conflicts} lost to concurrent writes, ${r.unrecoverable} unrecoverable`);
  for (const [node, d] of Object.entries(s.drains)) {
    const left = d.shardsLeft === null ? 'counting' : `${d.shardsLeft} shards left` + (d.uploadShardsLeft ? ` (+${d.uploadShardsLeft} of unfinished uploads)` : '');
    console.log(`drain ${node}: ${d.drained ? 'DRAINED — it may leave the cluster' : left}`);
  }
  console.log('');
  console.log(table(['worker', 'state', 'queued', 'done', 'failed', 'bytes', 'eta', 'last error'], s.workers.map(workerRow)));
}

function workerRow(w: WorkerStatus): string[] {
  return [w.name, w.state, String(w.queued), String(w.done), String(w.failed), bytes(w.bytes), w.eta === null ? '-' : `${w.eta}s`, w.lastError ?? ''];
}

async function drain(namespace: NamespaceClient, endpoints: Endpoints, nodeId: string, wait: boolean, timeout = '1h'): Promise<void> {
  await namespace.setNodeMode(nodeId, 'draining');
  console.log(`${nodeId} is draining: the repair service moves its shards to other nodes (progress: npm run admin -- status)`);
  if (!wait) return;
  const deadline = Date.now() + parseTimeout(timeout);
  const client = repairClient(endpoints);
  for (;;) {
    const progress = (await client.status()).drains[nodeId];
    if (progress?.drained) return console.log(`${nodeId} is drained: it holds no referenced shards and may leave the cluster`);
    if (Date.now() > deadline) throw new Error(`${nodeId} is not drained after ${timeout}`);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

function parseTimeout(text: string): number {
  const match = /^(\d+)(s|m|h)$/.exec(text);
  if (!match) throw new Error(`--timeout must look like 90s, 10m or 1h, got "${text}"`);
  return Number(match[1]) * { s: 1000, m: 60_000, h: 3_600_000 }[match[2] as 's' | 'm' | 'h'];
}

async function pauseResume(endpoints: Endpoints, action: 'pause' | 'resume', worker: string): Promise<void> {
  const client = repairClient(endpoints);
  const workers = action === 'pause' ? await client.pause(worker) : await client.resume(worker);
  for (const w of workers) console.log(`${w.name}: ${w.state}`);
}

async function userCommand(namespace: NamespaceClient, action: string, id: string | undefined, displayName: string | undefined, json: boolean): Promise<void> {
  const print = (user: UserRecord, what: string): void => (json ? console.log(JSON.stringify(user, null, 2)) : console.log(`user ${user.id} ${what}`));
  switch (action) {
    case 'create':
      return print(await namespace.createUser(required(id, 'user id'), displayName), `created (display name ${JSON.stringify((displayName ?? id)!)})`);
    case 'list': {
      const users = await namespace.listUsers();
      if (json) return console.log(JSON.stringify(users, null, 2));
      return console.log(table(['user', 'display name', 'status', 'created', 'unique id'], users.map((u) => [u.id, u.displayName, u.status, u.createdAt, u.uniqueId ?? '-'])));
    }
    case 'disable':
    case 'enable':
      return print(await namespace.setUserStatus(required(id, 'user id'), action === 'disable' ? 'disabled' : 'active'), `is ${action}d: ${action === 'disable' ? 'none of its keys work' : 'its active keys work again'}`);
    case 'delete':
      return print(await namespace.deleteUser(required(id, 'user id')), 'deleted, with all its access keys');
    default:
      throw new Error(`unknown user command "${action}"\n${USAGE}`);
  }
}

async function keyCommand(namespace: NamespaceClient, action: string, id: string | undefined, json: boolean): Promise<void> {
  const print = (key: AccessKeyRecord, what: string): void => (json ? console.log(JSON.stringify(key, null, 2)) : console.log(`access key ${key.accessKeyId} ${what}`));
  switch (action) {
    case 'create':
      return printNewKey(await namespace.createAccessKey(required(id, 'user id')), json);
    case 'list': {
      const keys = await namespace.listAccessKeys(id);
      if (json) return console.log(JSON.stringify(keys, null, 2));
      return console.log(table(['access key id', 'user', 'status', 'created'], keys.map((k) => [k.accessKeyId, k.userId, k.status, k.createdAt])));
    }
    case 'disable':
    case 'enable':
      return print(await namespace.setAccessKeyStatus(required(id, 'access key id'), action === 'disable' ? 'disabled' : 'active'), `is ${action}d (gateways notice within 2 s)`);
    case 'delete':
      return print(await namespace.deleteAccessKey(required(id, 'access key id')), 'deleted (gateways notice within 2 s)');
    default:
      throw new Error(`unknown key command "${action}"\n${USAGE}`);
  }
}

/** The one time a secret is shown: to the operator's terminal, never to a log. */
function printNewKey(key: CreatedAccessKey, json: boolean): void {
  if (json) return console.log(JSON.stringify(key, null, 2));
  console.log(`Access key id:      ${key.accessKeyId}`);
  console.log(`Secret access key:  ${key.secretAccessKey}`);
  console.log(`User:               ${key.userId}`);
  console.log('The secret is shown only now: store it safely.');
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  return [header, ...rows].map((r) => r.map((cell, i) => cell.padEnd(widths[i])).join('  ').trimEnd()).join('\n');
}

function bytes(n: number): string {
  if (!Number.isFinite(n)) return '-';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)}${units[i]}`;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

main().catch((err: unknown) => {
  console.error(`cairn admin: ${errorText(err)}`);
  process.exitCode = 1;
});
