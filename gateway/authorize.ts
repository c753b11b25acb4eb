// Authorization: the one middleware that decides, after authentication and before the operation,
// whether the caller may do what the operation does (its entry in OPERATION_ACCESS,
// operations/index.ts). The root credentials may do everything. Anyone else is judged on the
// bucket's owner and policy (auth/policy.ts): an explicit Deny wins, then the owner, then an Allow.
// Anonymous requests are a principal like any other, which only a policy naming "*" lets in.
import type Koa from 'koa';
import { bucketArn, isAllowed, objectArn, parseBucketPolicy, type BucketPolicy } from './auth/policy.js';
import type { Principal } from './auth/identities.js';
import { parseCopySource } from './copy-source.js';
import { operationAccess } from './operations/index.js';
import { s3Error } from './s3/errors.js';
import type { S3State } from './server.js';
import type { GatewayServices } from './services.js';
import type { BucketRecord } from '../namespace/types.js';

/** What the caller may do on the request's bucket; DeleteObjects asks it for every key. */
export interface Access {
  /** `action` on the bucket (no key) or on one of its objects. */
  allows(action: string, key?: string): boolean;
}

const ALLOW_ALL: Access = { allows: () => true };
const DENY_ALL: Access = { allows: () => false };

/** Object operations that answer NoSuchKey for a missing key: without s3:ListBucket that is AccessDenied. */
const KEY_PROBES = new Set(['GetObject', 'HeadObject', 'GetObjectTagging', 'PutObjectTagging', 'DeleteObjectTagging', 'GetObjectAcl', 'PutObjectAcl']);

/** Parsed policies, by bucket and text: parsing 20 KB of JSON on every request would cost more than the lookup. */
const MAX_PARSED = 256;

/** The Owner element of listings: the caller, as S3 shows the requester's canonical user. */
export function ownerOf(principal: Principal): { id: string; displayName: string } {
  return principal.type === 'anonymous' ? { id: 'anonymous', displayName: 'anonymous' } : { id: principal.userId, displayName: principal.displayName };
}

export function authorize(services: GatewayServices): Koa.Middleware<S3State> {
  const parsed = new Map<string, BucketPolicy | undefined>();

  const policyOf = (record: BucketRecord): BucketPolicy | undefined => {
    if (record.policy === undefined) return undefined;
    const cacheKey = `${record.name}\0${record.policy}`;
    if (parsed.has(cacheKey)) return parsed.get(cacheKey);
    let policy: BucketPolicy | undefined;
    try {
      policy = parseBucketPolicy(record.policy, record.name);
    } catch (err) {
      // Stored policies were checked when they were put; one that no longer parses grants nothing
      // (the owner keeps their own access and can put a new one).
      services.log.warn('stored bucket policy does not parse; it grants nothing', { bucket: record.name, err });
      policy = { statements: [] };
    }
    if (parsed.size >= MAX_PARSED) parsed.delete(parsed.keys().next().value!);
    parsed.set(cacheKey, policy);
    return policy;
  };

  /** The bucket's record; anonymous callers learn nothing about buckets they may not use, not even that one is missing. */
  const bucketFor = async (name: string, principal: Principal): Promise<BucketRecord> => {
    try {
      return await services.buckets.get(name);
    } catch (err) {
      if (principal.type === 'anonymous' && (err as { code?: unknown }).code === 'NoSuchBucket') throw s3Error('AccessDenied');
      throw err;
    }
  };

  const accessTo = (record: BucketRecord, principal: Principal): Access => {
    const parsedPolicy = policyOf(record);
    const policy = parsedPolicy && record.policyPrincipals ? { ...parsedPolicy, pins: record.policyPrincipals } : parsedPolicy;
    const userId = principal.type === 'anonymous' ? undefined : principal.userId;
    const userPin = principal.type === 'user' ? principal.pin : undefined;
    return {
      allows: (action, key) =>
        isAllowed(policy, record.owner, { userId, userPin, action, resource: key === undefined ? bucketArn(record.name) : objectArn(record.name, key) }),
    };
  };

  return async (ctx, next) => {
    const { principal, target, operation } = ctx.state;
    ctx.state.access = DENY_ALL;
    if (principal.type === 'root') {
      ctx.state.access = ALLOW_ALL;
      return next();
    }
    const needs = operationAccess(operation);
    if (needs.scope === 'service' || target.bucket === undefined) {
      if (principal.type === 'anonymous') throw s3Error('AccessDenied');
      return next();
    }
    const record = await bucketFor(target.bucket, principal);
    const access = accessTo(record, principal);
    const allowed =
      needs.scope === 'owner'
        ? principal.type === 'user' && principal.userId === record.owner
        : needs.scope === 'bucket'
          ? access.allows(needs.action)
          : needs.scope === 'object'
            ? target.key !== undefined && access.allows(needs.action, target.key)
            : true; // 'keys': per key, by the operation
    if (!allowed) throw s3Error('AccessDenied');
    // CopyObject and UploadPartCopy read their source: s3:GetObject on it, under its bucket's rules.
    const copySource = ctx.get('x-amz-copy-source');
    if (copySource !== '' && (operation === 'PutObject' || operation === 'UploadPart')) {
      const source = parseCopySource(copySource);
      const sourceRecord = source.bucket === record.name ? record : await bucketFor(source.bucket, principal);
      if (!accessTo(sourceRecord, principal).allows('s3:GetObject', source.key)) throw s3Error('AccessDenied');
    }
    // Tags given with a write are a PutObjectTagging too (S3 asks for both permissions).
    if ((operation === 'PutObject' || operation === 'CreateMultipartUpload') && ctx.get('x-amz-tagging') !== '' && !access.allows('s3:PutObjectTagging', target.key)) {
      throw s3Error('AccessDenied');
    }
    ctx.state.access = access;
    if (!KEY_PROBES.has(operation)) return next();
    try {
      await next();
    } catch (err) {
      // As S3: without s3:ListBucket a missing key is AccessDenied, so absence cannot be probed.
      if ((err as { code?: unknown }).code === 'NoSuchKey' && !access.allows('s3:ListBucket')) throw s3Error('AccessDenied');
      throw err;
    }
  };
}
