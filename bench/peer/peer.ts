// Lifecycle of the baseline peer: s3rver (npm) in its own process on loopback, data in a temp dir.
// s3rver writes objects with plain fs streams (no fsync) and keeps no index: it is the "plain
// filesystem-backed S3 server" every Cairn number is divided by.
import type { ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { entryArgs } from '../../common/source-tree.js';
import { spawnReady } from '../child.js';
import { onCleanup, trackDir } from '../cleanup.js';
import type { Credentials } from '../s3/sigv4.js';
import { benchTempDir, REGION, type System } from '../systems.js';

const STARTUP_TIMEOUT_MS = 30_000;

export const S3RVER_VERSION = (createRequire(import.meta.url)('s3rver/package.json') as { version: string }).version;

interface Running {
  child: ChildProcess;
  url: string;
  unregister: () => Promise<void>;
}

export class PeerSystem implements System {
  readonly name = 's3rver' as const;
  /** s3rver's built-in account. */
  readonly creds: Credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER', region: REGION };
  private removeDir: (() => Promise<void>) | undefined;

  private constructor(readonly dataDir: string, private running: Running | undefined) {}

  static async start(log: (line: string) => void): Promise<PeerSystem> {
    const dataDir = await benchTempDir('s3rver');
    const removeDir = onCleanup(`remove ${dataDir}`, trackDir(dataDir));
    let running: Running;
    try {
      running = await spawnPeer(dataDir);
    } catch (err) {
      await removeDir();
      throw err;
    }
    const peer = new PeerSystem(dataDir, running);
    peer.removeDir = removeDir;
    log(`peer s3rver ${S3RVER_VERSION} up at ${running.url}, data ${dataDir}`);
    return peer;
  }

  get endpoint(): string {
    return this.require().url;
  }

  /** A fresh process on the same data (new port), e.g. for a clean peak-RSS baseline. */
  async restart(): Promise<void> {
    await this.running?.unregister();
    this.running = undefined;
    this.running = await spawnPeer(this.dataDir);
  }

  frontPid(): number {
    return this.require().child.pid!;
  }

  pids(): number[] {
    return [this.frontPid()];
  }

  writerPids(): number[] {
    return [this.frontPid()];
  }

  async stop(): Promise<void> {
    await this.running?.unregister();
    this.running = undefined;
    await this.removeDir?.();
    this.removeDir = undefined;
  }

  private require(): Running {
    if (!this.running) throw new Error('s3rver is not running');
    return this.running;
  }
}

async function spawnPeer(dataDir: string): Promise<Running> {
  // s3rver makes ListObjectsV2 continuation tokens with DES, which OpenSSL 3 keeps in its legacy
  // provider: without it every listing that has a next page answers 500 (ERR_OSSL_EVP_UNSUPPORTED).
  const args = ['--openssl-legacy-provider', ...entryArgs('bench/peer/s3rver-main.ts'), dataDir];
  const { child, ready, unregister } = await spawnReady<{ url: string }>(`s3rver ${S3RVER_VERSION}`, args, 'PEER_READY', STARTUP_TIMEOUT_MS);
  return { child, url: ready.url, unregister };
}
