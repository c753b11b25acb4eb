// The floor: the least work a server of Cairn's shape does, measured in the same run as Cairn and
// s3rver, so that a target can be read against what the shape allows on this machine. Three
// processes, as Cairn runs them: a front (front.ts), an index on LevelDB (index-store.ts) and six
// shard sinks in one process (sinks.ts). Per object it does what any erasure-coded store with a
// separate metadata service must: MD5 for the ETag, 1.5× the bytes (k=4, m=2) over loopback to
// sinks that make them durable (fdatasync) before answering, one durable record; a GET reads
// the record and the k data shards. It skips everything else Cairn does: authentication, the RS
// arithmetic, checksums, S3 semantics and errors, placement, repair.
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { entryArgs } from '../../common/source-tree.js';
import { spawnReady } from '../child.js';
import { onCleanup, trackDir } from '../cleanup.js';
import type { Credentials } from '../s3/sigv4.js';
import { benchTempDir, REGION, type System } from '../systems.js';

const STARTUP_TIMEOUT_MS = 30_000;
const ENTRY = entryArgs('bench/floor/main.ts');

type Started = { ports: number[] };

export class FloorSystem implements System {
  readonly name = 'floor' as const;
  /** Never checked: the floor does not authenticate. */
  readonly creds: Credentials = { accessKeyId: 'floor', secretAccessKey: 'floor', region: REGION };

  private constructor(
    readonly endpoint: string,
    readonly dataDir: string,
    private readonly children: { front: ChildProcess; index: ChildProcess; sinks: ChildProcess },
    private readonly stopAll: () => Promise<void>,
  ) {}

  static async start(log: (line: string) => void): Promise<FloorSystem> {
    const dataDir = await benchTempDir('floor');
    const removeDir = onCleanup(`remove ${dataDir}`, trackDir(dataDir));
    const stops: (() => Promise<void>)[] = [];
    const stopAll = async (): Promise<void> => {
      for (const stop of stops.splice(0).reverse()) await stop();
      await removeDir();
    };
    try {
      const spawn = async (role: string, args: string[]): Promise<{ child: ChildProcess; ports: number[] }> => {
        const started = await spawnReady<Started>(`floor ${role}`, [...ENTRY, role, ...args], 'FLOOR_READY', STARTUP_TIMEOUT_MS);
        stops.push(started.unregister);
        return { child: started.child, ports: started.ready.ports };
      };
      // Both settle before a failure is thrown, so that stopAll knows every process that started.
      const [sinks, index] = await settledOrThrow([spawn('sinks', [path.join(dataDir, 'sinks')]), spawn('index', [path.join(dataDir, 'index')])]);
      const front = await spawn('front', [sinks.ports.join(','), String(index.ports[0])]);
      const endpoint = `http://127.0.0.1:${front.ports[0]}`;
      log(`floor up at ${endpoint} (front, index, ${sinks.ports.length} sinks), data ${dataDir}`);
      return new FloorSystem(endpoint, dataDir, { front: front.child, index: index.child, sinks: sinks.child }, stopAll);
    } catch (err) {
      await stopAll();
      throw err;
    }
  }

  frontPid(): number {
    return this.children.front.pid!;
  }

  pids(): number[] {
    return [this.children.front.pid!, this.children.index.pid!, this.children.sinks.pid!];
  }

  writerPids(): number[] {
    return [this.children.index.pid!, this.children.sinks.pid!];
  }

  stop(): Promise<void> {
    return this.stopAll();
  }
}

async function settledOrThrow<T>(work: Promise<T>[]): Promise<T[]> {
  const settled = await Promise.allSettled(work);
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((r) => (r as PromiseFulfilledResult<T>).value);
}
