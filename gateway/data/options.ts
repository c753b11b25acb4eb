// How operations call the data path: one place that turns the gateway's services and config into
// the reader's dependencies and the writer's options, so every operation reads and writes alike.
import type { GatewayServices } from '../services.js';
import type { ReaderDeps } from './reader.js';
import type { WriteOptions } from './writer.js';

export function readerDeps(services: GatewayServices): ReaderDeps {
  return {
    nodes: services.nodes,
    directory: services.directory,
    codec: services.codec,
    log: services.log,
    readTimeoutMs: services.config.shardTimeoutMs,
    onShardFailure: (failure) => {
      services.metrics.shardReadFailures.inc({ code: failure.code });
      services.damage.report(failure);
    },
    onDegradedRead: () => services.metrics.degradedReads.inc(),
    downloadBudget: services.downloadBudget,
  };
}

/** What a write knows of its source: `signal` is the client's (clientGoneSignal); `expectedSize` its declared size. */
export type SourceHints = Pick<WriteOptions, 'signal' | 'expectedSize'>;

/** Options for writing a new object, part or copy: `versionId` must be fresh (see newVersionId). */
export function writeOptions(services: GatewayServices, versionId: string, hints: SourceHints = {}): WriteOptions {
  const { config } = services;
  return {
    layout: config.layout,
    segmentSize: config.segmentSize,
    versionId,
    writeQuorum: config.writeQuorum,
    stallTimeoutMs: config.shardTimeoutMs,
    ...hints,
  };
}
