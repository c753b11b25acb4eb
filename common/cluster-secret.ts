// Where a process finds the cluster secret: CAIRN_CLUSTER_SECRET in its environment (never a flag:
// `ps` shows command lines to every user), or, for a local cluster, the file <data-dir>/cluster-secret
// that deploy/cluster.ts writes on first start (mode 0600) and `npm run admin` reads.
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ClusterSecret } from './internal-auth.js';

export const CLUSTER_SECRET_ENV = 'CAIRN_CLUSTER_SECRET';
export const CLUSTER_SECRET_FILE = 'cluster-secret';

/** The secret every service process requires; there is no unauthenticated mode. */
export function clusterSecretFromEnv(env: NodeJS.ProcessEnv = process.env): ClusterSecret {
  const text = env[CLUSTER_SECRET_ENV];
  if (!text) {
    throw new Error(`${CLUSTER_SECRET_ENV} is required: internal requests are signed with the cluster secret ` +
      `(at least 32 bytes; npm start keeps one in <data-dir>/${CLUSTER_SECRET_FILE})`);
  }
  return ClusterSecret.parse(text, CLUSTER_SECRET_ENV);
}

/** The secret stored in `dataDir`, or undefined when there is none. Refuses a file other users may read. */
export async function readSecretFile(dataDir: string): Promise<string | undefined> {
  const file = path.join(dataDir, CLUSTER_SECRET_FILE);
  let mode: number;
  try {
    mode = (await stat(file)).mode;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  if ((mode & 0o077) !== 0) throw new Error(`${file} may be read by other users (mode ${(mode & 0o777).toString(8)}): chmod 600 it`);
  const text = (await readFile(file, 'utf8')).trim();
  ClusterSecret.parse(text, file);
  return text;
}

/** The local cluster's secret: the one stored in `dataDir`, or a new random one stored there (mode 0600). */
export async function loadOrCreateSecretFile(dataDir: string): Promise<string> {
  const existing = await readSecretFile(dataDir);
  if (existing !== undefined) return existing;
  const text = ClusterSecret.generate();
  try {
    await writeFile(path.join(dataDir, CLUSTER_SECRET_FILE), `${text}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    // Another launcher on the same data dir got there first: use its secret.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return (await readSecretFile(dataDir))!;
    throw err;
  }
  return text;
}
