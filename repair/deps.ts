// What the repair service needs from the namespace and the storage nodes, spelled out as the exact
// methods it calls: NamespaceClient and StorageNodePool satisfy these structurally, and a test or a
// future transport can substitute anything that does.
import type * as T from '../namespace/types.js';
import type { DataRange } from '../storage-node/client.js';
import type { PutShardResponse, RebuildShardRequest, ScrubRequest, ScrubResponse, ShardInfo, ShardListPage, VerifyShardResponse } from '../storage-node/types.js';

export interface RepairNamespace {
  listNodes(): Promise<T.NodeRecord[]>;
  getObjectOrNull(bucket: string, key: string): Promise<T.ObjectRecord | null>;
  place(request: T.PlacementRequest): Promise<T.PlacementResponse>;
  shardsOnNode(nodeId: string, after?: string, limit?: number): Promise<T.ShardRefPage>;
  garbage(before: Date, limit?: number): Promise<T.GarbageEntry[]>;
  ackGarbage(ids: string[]): Promise<number>;
  reportDamage(reports: T.DamageReport[]): Promise<void>;
  repairTasks(after?: string, limit?: number): Promise<T.RepairTaskPage>;
  ackRepairs(ids: string[]): Promise<number>;
  replaceShards(bucket: string, key: string, request: T.ReplaceShardsRequest): Promise<T.ReplaceShardsResponse>;
  getPartOrNull(uploadId: string, partNumber: number): Promise<T.PartRecord | null>;
  replacePartShards(uploadId: string, partNumber: number, request: T.ReplaceShardsRequest): Promise<T.ReplacePartShardsResponse>;
  lookupShardRefs(nodeId: string, shardIds: string[]): Promise<T.ShardRef[]>;
  setNodeMode(nodeId: string, mode: T.NodeMode): Promise<T.NodeRecord>;
}

export interface RepairNodeClient {
  putShard(id: string, blockSize: number, body: NodeJS.ReadableStream, signal?: AbortSignal, framedLength?: number): Promise<PutShardResponse>;
  streamShard(id: string, range?: DataRange, signal?: AbortSignal): Promise<AsyncIterable<Buffer>>;
  rebuildShard(id: string, request: RebuildShardRequest, signal?: AbortSignal, onProgress?: (bytes: number) => void): Promise<PutShardResponse>;
  headShard(id: string): Promise<ShardInfo | null>;
  deleteShard(id: string): Promise<void>;
  listShards(after?: string, limit?: number): Promise<ShardListPage>;
  verifyShard(id: string): Promise<VerifyShardResponse>;
  scrub(request: ScrubRequest): Promise<ScrubResponse>;
}

export interface RepairNodePool {
  get(baseUrl: string): RepairNodeClient;
}

/** Namespace page sizes the API accepts at most. */
export const NAMESPACE_PAGE = 1000;
