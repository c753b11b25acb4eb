// PutBucketPolicy, GetBucketPolicy, DeleteBucketPolicy: PUT|GET|DELETE /bucket?policy. Only the
// bucket owner (or root) gets here (authorize.ts). The policy is checked in full before it is
// stored (auth/policy.ts) and kept as sent, on the bucket's namespace record.
import { MAX_POLICY_BYTES, namedPrincipals, parseBucketPolicy } from '../auth/policy.js';
import { ROOT_USER_ID, userPin } from '../auth/identities.js';
import { s3Error } from '../s3/errors.js';
import { sendEmpty, type OperationHandler } from '../server.js';
import { readDocument } from './body.js';

export const putBucketPolicy: OperationHandler = async (ctx, services) => {
  const bucket = ctx.state.target.bucket!;
  const body = await readDocument(ctx, services, MAX_POLICY_BYTES, 'PolicyTooLarge');
  const text = body.toString('utf8');
  if (!Buffer.from(text, 'utf8').equals(body)) throw s3Error('MalformedPolicy', 'Policies must be valid UTF-8');
  const policy = parseBucketPolicy(text, bucket);
  // Principals must be users that exist, as AWS refuses unknown ones: a user created later under
  // a name the policy already mentions would otherwise inherit its grants unnoticed. For the same
  // reason each is pinned to who they are now: deleted and made again, a name is someone else.
  const named = namedPrincipals(policy).filter((id) => id !== ROOT_USER_ID);
  let pins: Record<string, string> | undefined;
  if (named.length > 0) {
    const users = new Map((await services.namespace.listUsers()).map((u) => [u.id, u]));
    if (named.some((id) => !users.has(id))) throw s3Error('MalformedPolicy', 'Invalid principal in policy');
    pins = Object.fromEntries(named.map((id) => [id, userPin(users.get(id)!)]));
  }
  services.buckets.remember(await services.namespace.setBucketPolicy(bucket, text, pins));
  sendEmpty(ctx, 204);
};

export const getBucketPolicy: OperationHandler = async (ctx, { namespace }) => {
  const record = await namespace.getBucket(ctx.state.target.bucket!);
  if (record.policy === undefined) throw s3Error('NoSuchBucketPolicy', undefined, { BucketName: record.name });
  ctx.type = 'application/json';
  ctx.body = record.policy;
};

export const deleteBucketPolicy: OperationHandler = async (ctx, { namespace, buckets }) => {
  buckets.remember(await namespace.setBucketPolicy(ctx.state.target.bucket!, null));
  sendEmpty(ctx, 204);
};
