// GetBucketAcl, PutBucketAcl, GetObjectAcl, PutObjectAcl: ?acl on a bucket or an object. Cairn has
// no ACLs: who may do what is the bucket owner's and the bucket policy's (authorize.ts), as in an S3
// bucket whose Object Ownership is "bucket owner enforced" (S3's default for new buckets). So Cairn
// answers as S3 does there: an ACL reads as the bucket owner with full control, and setting one is
// accepted only when it says just that (the private or bucket-owner-full-control canned ACL, or a
// document granting the owner FULL_CONTROL and nothing else); anything else is 400
// AccessControlListNotSupported, nothing changed. Tools read ACLs to show them (s3cmd info,
// Cyberduck) and copy them when they copy objects.
import { ROOT_USER_ID } from '../auth/identities.js';
import { s3Error } from '../s3/errors.js';
import { ownerOnlyAclXml, parseAccessControlPolicy } from '../s3/xml.js';
import { sendEmpty, type OperationHandler, type S3Context } from '../server.js';
import type { GatewayServices } from '../services.js';
import { readSmallBody } from './body.js';

/** A long owner-only ACL document fits many times over. */
const MAX_ACL_BYTES = 64 * 1024;
/** Canned ACLs that say "the bucket owner has full control" and no more. */
const OWNER_ONLY_CANNED = new Set(['private', 'bucket-owner-full-control']);

export const getBucketAcl: OperationHandler = async (ctx, services) => {
  const record = await services.namespace.getBucket(ctx.state.target.bucket!);
  sendAcl(ctx, await ownerIdentity(services, record.owner));
};

export const getObjectAcl: OperationHandler = async (ctx, services) => {
  const { bucket, key } = ctx.state.target as { bucket: string; key: string };
  const record = await services.namespace.getBucket(bucket);
  await services.namespace.getObject(bucket, key, { none: true }); // NoSuchKey
  sendAcl(ctx, await ownerIdentity(services, record.owner));
};

export const putBucketAcl: OperationHandler = async (ctx, services) => {
  const record = await services.namespace.getBucket(ctx.state.target.bucket!);
  await checkOwnerOnlyAcl(ctx, services, record.owner);
  sendEmpty(ctx, 200);
};

export const putObjectAcl: OperationHandler = async (ctx, services) => {
  const { bucket, key } = ctx.state.target as { bucket: string; key: string };
  const record = await services.namespace.getBucket(bucket);
  await services.namespace.getObject(bucket, key, { none: true }); // NoSuchKey
  await checkOwnerOnlyAcl(ctx, services, record.owner);
  sendEmpty(ctx, 200);
};

function sendAcl(ctx: S3Context, owner: { id: string; displayName: string }): void {
  ctx.type = 'application/xml';
  ctx.body = ownerOnlyAclXml(owner);
}

/** The owner as ListBuckets shows a user; a bucket made before users had owners names an access key id, shown as is. */
async function ownerIdentity(services: GatewayServices, ownerId: string): Promise<{ id: string; displayName: string }> {
  if (ownerId === ROOT_USER_ID) return { id: ownerId, displayName: ownerId };
  const user = await services.namespace.getUserOrNull(ownerId);
  return { id: ownerId, displayName: user?.displayName ?? ownerId };
}

/** Passes only an ACL that grants the bucket owner full control and nobody anything; see the top of the file. */
async function checkOwnerOnlyAcl(ctx: S3Context, services: GatewayServices, ownerId: string): Promise<void> {
  const canned = ctx.get('x-amz-acl');
  const grantHeaders = Object.keys(ctx.req.headers).some((name) => name.startsWith('x-amz-grant-'));
  const body = await readSmallBody(ctx, services, MAX_ACL_BYTES);
  if (canned !== '' || grantHeaders) {
    if (OWNER_ONLY_CANNED.has(canned.trim()) && !grantHeaders && body.length === 0) return;
    throw s3Error('AccessControlListNotSupported');
  }
  if (body.length === 0) throw s3Error('MalformedACLError');
  const grants = parseAccessControlPolicy(body);
  const [only] = grants;
  const ownerOnly =
    grants.length === 1 && only!.granteeId === ownerId && only!.granteeUri === undefined && only!.granteeEmail === undefined && only!.permission === 'FULL_CONTROL';
  if (!ownerOnly) throw s3Error('AccessControlListNotSupported');
}
