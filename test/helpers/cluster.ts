// Test helper: a real local cluster in a temp dir, torn down (processes and files) even on failure.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { startCluster, type Cluster, type ClusterOptions } from '../../deploy/cluster.js';

export const ACCESS_KEY_ID = 'cairn-test-key';
export const SECRET_ACCESS_KEY = 'cairn-test-secret-0123456789';

export interface TestCluster {
  cluster: Cluster;
  dataDir: string;
  s3: S3Client;
  /** Stops the cluster and removes its data dir. */
  destroy(): Promise<void>;
}

export async function startTestCluster(opts: Partial<ClusterOptions> = {}): Promise<TestCluster> {
  const dataDir = opts.dataDir ?? (await mkdtemp(path.join(os.tmpdir(), 'cairn-test-')));
  const cluster = await startCluster({
    dataDir,
    port: 0,
    accessKeyId: ACCESS_KEY_ID,
    secretAccessKey: SECRET_ACCESS_KEY,
    ...opts,
  }).catch(async (err: unknown) => {
    if (!opts.dataDir) await rm(dataDir, { recursive: true, force: true });
    throw err;
  });
  const s3 = s3ClientFor(cluster.endpoint);
  return {
    cluster,
    dataDir,
    s3,
    async destroy() {
      s3.destroy();
      await cluster.stop().catch(() => undefined);
      for (const child of cluster.children) child.kill('SIGKILL');
      if (process.env.CAIRN_KEEP_TEST_DATA) console.error(`# kept test data in ${dataDir}`);
      else if (!opts.dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** An S3 client with the SDK's default settings (checksums, payload signing), path-style. */
export function s3ClientFor(endpoint: string, credentials = { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY }): S3Client {
  return new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials, maxAttempts: 1 });
}

/** A series of the gateway's /-/metrics, by its name and labels as rendered (0 when absent). */
export async function gatewayMetric(endpoint: string, series: string): Promise<number> {
  const text = await (await fetch(`${endpoint}/-/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.split(' ').pop()) : 0;
}
