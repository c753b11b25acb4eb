// Maps a request (method, bucket, key, sub-resource query) to the S3 operation that serves it.
// Operations Cairn does not implement yet answer a proper 501 NotImplemented S3 error.
import type { ParsedUrlQuery } from 'node:querystring';
import { s3Error } from '../s3/errors.js';
import type { RequestTarget } from '../request-target.js';
import type { OperationHandler } from '../server.js';
import { listBuckets } from './list-buckets.js';
import { createBucket } from './create-bucket.js';
import { headBucket } from './head-bucket.js';
import { deleteBucket } from './delete-bucket.js';
import { getBucketLocation } from './get-bucket-location.js';
import { listObjects, listObjectVersions } from './list-objects.js';
import { putObject } from './put-object.js';
import { getObject } from './get-object.js';
import { deleteObject } from './delete-object.js';
import { copyObject } from './copy-object.js';
import { deleteObjects } from './delete-objects.js';
import { createMultipartUpload } from './create-multipart-upload.js';
import { uploadPartOrCopy } from './upload-part.js';
import { completeMultipartUpload } from './complete-multipart-upload.js';
import { abortMultipartUpload } from './abort-multipart-upload.js';
import { listParts } from './list-parts.js';
import { listMultipartUploads } from './list-multipart-uploads.js';
import { deleteBucketPolicy, getBucketPolicy, putBucketPolicy } from './bucket-policy.js';
import { deleteObjectTagging, getObjectTagging, putObjectTagging } from './object-tagging.js';
import { deleteBucketTagging, getBucketTagging, putBucketTagging } from './bucket-tagging.js';
import { getBucketVersioning } from './get-bucket-versioning.js';
import { getBucketAcl, getObjectAcl, putBucketAcl, putObjectAcl } from './acl.js';

export interface Operation {
  name: string;
  handler: OperationHandler;
}

/** Sub-resources S3 defines on buckets and objects that Cairn does not serve yet. */
const UNSUPPORTED_BUCKET_SUBRESOURCES = [
  'accelerate', 'analytics', 'cors', 'encryption', 'intelligent-tiering', 'inventory', 'lifecycle',
  'logging', 'metrics', 'notification', 'object-lock', 'ownershipControls', 'policyStatus',
  'publicAccessBlock', 'replication', 'requestPayment', 'website',
];
const UNSUPPORTED_OBJECT_SUBRESOURCES = [
  'attributes', 'legal-hold', 'retention', 'torrent', 'restore', 'select',
];

/**
 * What an operation needs, checked once for every request by gateway/authorize.ts before the
 * operation runs (the root credentials may do everything):
 * - service: any signed-in user (not anonymous);
 * - bucket / object: `action` on the bucket's or the object's ARN (owner, unless a policy Deny
 *   matches; anyone else where a policy Allow matches);
 * - keys: DeleteObjects — the operation asks `ctx.state.access` for each key it deletes;
 * - owner: the bucket owner only, whatever the policy says (bucket policy management, so an owner
 *   cannot lock themselves out; and the sub-resources Cairn does not implement).
 * A PutObject or UploadPart with x-amz-copy-source (CopyObject, UploadPartCopy) also needs
 * s3:GetObject on the source object. An operation missing from the table is owner-only.
 */
export type OperationAccess =
  | { readonly scope: 'service' }
  | { readonly scope: 'bucket' | 'object' | 'keys'; readonly action: string }
  | { readonly scope: 'owner' };

const OPERATION_ACCESS: Readonly<Record<string, OperationAccess>> = {
  ListBuckets: { scope: 'service' },
  CreateBucket: { scope: 'service' },
  HeadBucket: { scope: 'bucket', action: 's3:ListBucket' },
  DeleteBucket: { scope: 'bucket', action: 's3:DeleteBucket' },
  GetBucketLocation: { scope: 'bucket', action: 's3:GetBucketLocation' },
  ListObjects: { scope: 'bucket', action: 's3:ListBucket' },
  ListObjectsV2: { scope: 'bucket', action: 's3:ListBucket' },
  ListObjectVersions: { scope: 'bucket', action: 's3:ListBucketVersions' },
  ListMultipartUploads: { scope: 'bucket', action: 's3:ListBucketMultipartUploads' },
  DeleteObjects: { scope: 'keys', action: 's3:DeleteObject' },
  GetBucketTagging: { scope: 'bucket', action: 's3:GetBucketTagging' },
  PutBucketTagging: { scope: 'bucket', action: 's3:PutBucketTagging' },
  // As in S3: removing a bucket's tags is putting none.
  DeleteBucketTagging: { scope: 'bucket', action: 's3:PutBucketTagging' },
  GetBucketVersioning: { scope: 'bucket', action: 's3:GetBucketVersioning' },
  GetBucketAcl: { scope: 'bucket', action: 's3:GetBucketAcl' },
  PutBucketAcl: { scope: 'bucket', action: 's3:PutBucketAcl' },
  GetObjectAcl: { scope: 'object', action: 's3:GetObjectAcl' },
  PutObjectAcl: { scope: 'object', action: 's3:PutObjectAcl' },
  GetBucketPolicy: { scope: 'owner' },
  PutBucketPolicy: { scope: 'owner' },
  DeleteBucketPolicy: { scope: 'owner' },
  GetObject: { scope: 'object', action: 's3:GetObject' },
  HeadObject: { scope: 'object', action: 's3:GetObject' },
  PutObject: { scope: 'object', action: 's3:PutObject' },
  DeleteObject: { scope: 'object', action: 's3:DeleteObject' },
  CreateMultipartUpload: { scope: 'object', action: 's3:PutObject' },
  UploadPart: { scope: 'object', action: 's3:PutObject' },
  CompleteMultipartUpload: { scope: 'object', action: 's3:PutObject' },
  AbortMultipartUpload: { scope: 'object', action: 's3:AbortMultipartUpload' },
  ListParts: { scope: 'object', action: 's3:ListMultipartUploadParts' },
  GetObjectTagging: { scope: 'object', action: 's3:GetObjectTagging' },
  PutObjectTagging: { scope: 'object', action: 's3:PutObjectTagging' },
  DeleteObjectTagging: { scope: 'object', action: 's3:DeleteObjectTagging' },
};

export function operationAccess(name: string): OperationAccess {
  return Object.prototype.hasOwnProperty.call(OPERATION_ACCESS, name) ? OPERATION_ACCESS[name]! : { scope: 'owner' };
}

function op(name: string, handler: OperationHandler): Operation {
  return { name, handler };
}

/** CopyObject is a PUT that names a source: the same route, told apart by its header. */
const putOrCopyObject: OperationHandler = async (ctx, services) => {
  if (ctx.req.headers['x-amz-copy-source'] === undefined) return putObject(ctx, services);
  ctx.state.operation = 'CopyObject';
  return copyObject(ctx, services);
};

function notImplemented(name: string): Operation {
  return op(name, async () => {
    throw s3Error('NotImplemented', `${name} is not implemented by Cairn yet.`);
  });
}

function methodNotAllowed(method: string, resourceType: 'SERVICE' | 'BUCKET' | 'OBJECT'): Error {
  return s3Error('MethodNotAllowed', 'The specified method is not allowed against this resource.', { Method: method, ResourceType: resourceType });
}

function firstPresent(query: ParsedUrlQuery, names: string[]): string | undefined {
  return names.find((n) => n in query);
}

export function resolveOperation(method: string, target: RequestTarget, query: ParsedUrlQuery): Operation {
  if (!target.bucket) {
    if (method === 'GET') return op('ListBuckets', listBuckets);
    throw methodNotAllowed(method, 'SERVICE');
  }
  return target.key === undefined ? bucketOperation(method, query) : objectOperation(method, query);
}

function bucketOperation(method: string, query: ParsedUrlQuery): Operation {
  if (method === 'GET' && 'location' in query) return op('GetBucketLocation', getBucketLocation);
  if (method === 'POST' && 'delete' in query) return op('DeleteObjects', deleteObjects);
  if ('uploads' in query) {
    if (method === 'GET') return op('ListMultipartUploads', listMultipartUploads);
    throw methodNotAllowed(method, 'BUCKET');
  }
  if ('policy' in query) {
    if (method === 'GET') return op('GetBucketPolicy', getBucketPolicy);
    if (method === 'PUT') return op('PutBucketPolicy', putBucketPolicy);
    if (method === 'DELETE') return op('DeleteBucketPolicy', deleteBucketPolicy);
    throw methodNotAllowed(method, 'BUCKET');
  }
  if ('tagging' in query) {
    if (method === 'GET') return op('GetBucketTagging', getBucketTagging);
    if (method === 'PUT') return op('PutBucketTagging', putBucketTagging);
    if (method === 'DELETE') return op('DeleteBucketTagging', deleteBucketTagging);
    throw methodNotAllowed(method, 'BUCKET');
  }
  if ('acl' in query) {
    if (method === 'GET') return op('GetBucketAcl', getBucketAcl);
    if (method === 'PUT') return op('PutBucketAcl', putBucketAcl);
    throw methodNotAllowed(method, 'BUCKET');
  }
  if ('versions' in query) {
    if (method === 'GET') return op('ListObjectVersions', listObjectVersions);
    throw methodNotAllowed(method, 'BUCKET');
  }
  if ('versioning' in query) return method === 'GET' ? op('GetBucketVersioning', getBucketVersioning) : notImplemented(`${method} bucket ?versioning`);
  const sub = firstPresent(query, UNSUPPORTED_BUCKET_SUBRESOURCES);
  if (sub) return notImplemented(`${method} bucket ?${sub}`);
  switch (method) {
    case 'GET':
      return op(query['list-type'] === '2' ? 'ListObjectsV2' : 'ListObjects', listObjects);
    case 'PUT':
      return op('CreateBucket', createBucket);
    case 'HEAD':
      return op('HeadBucket', headBucket);
    case 'DELETE':
      return op('DeleteBucket', deleteBucket);
    default:
      throw methodNotAllowed(method, 'BUCKET');
  }
}

/** ?uploads and ?uploadId (with partNumber on PUT); GET/HEAD ?partNumber is GetObject reading one part. */
function multipartOperation(method: string, query: ParsedUrlQuery): Operation | undefined {
  if (method === 'POST' && 'uploads' in query) return op('CreateMultipartUpload', createMultipartUpload);
  if (!('uploadId' in query)) return undefined;
  switch (method) {
    case 'POST':
      return op('CompleteMultipartUpload', completeMultipartUpload);
    case 'PUT':
      return op('UploadPart', uploadPartOrCopy);
    case 'GET':
      return op('ListParts', listParts);
    case 'DELETE':
      return op('AbortMultipartUpload', abortMultipartUpload);
    default:
      return undefined;
  }
}

function objectOperation(method: string, query: ParsedUrlQuery): Operation {
  const operation = currentVersionOperation(method, query);
  return 'versionId' in query ? onlyNullVersion(operation, query['versionId']) : operation;
}

/**
 * Cairn keeps one version of each key, which S3 calls version "null": `versionId=null` names it,
 * and any other id is refused (after authorization, like any error of the operation).
 */
function onlyNullVersion(operation: Operation, versionId: string | string[] | undefined): Operation {
  return op(operation.name, async (ctx, services) => {
    if (versionId !== 'null') throw s3Error('InvalidArgument', 'Invalid version id specified', { ArgumentName: 'versionId', ArgumentValue: String(versionId ?? '') });
    ctx.set('x-amz-version-id', 'null');
    return operation.handler(ctx, services);
  });
}

function currentVersionOperation(method: string, query: ParsedUrlQuery): Operation {
  const multipart = multipartOperation(method, query);
  if (multipart) return multipart;
  const sub = firstPresent(query, UNSUPPORTED_OBJECT_SUBRESOURCES);
  if (sub) return notImplemented(`${method} object ?${sub}`);
  if ('acl' in query) {
    if (method === 'GET') return op('GetObjectAcl', getObjectAcl);
    if (method === 'PUT') return op('PutObjectAcl', putObjectAcl);
    throw methodNotAllowed(method, 'OBJECT');
  }
  if ('tagging' in query) {
    if (method === 'GET') return op('GetObjectTagging', getObjectTagging);
    if (method === 'PUT') return op('PutObjectTagging', putObjectTagging);
    if (method === 'DELETE') return op('DeleteObjectTagging', deleteObjectTagging);
    throw methodNotAllowed(method, 'OBJECT');
  }
  switch (method) {
    case 'GET':
      return op('GetObject', getObject);
    case 'HEAD':
      return op('HeadObject', getObject);
    case 'PUT':
      return op('PutObject', putOrCopyObject);
    case 'DELETE':
      return op('DeleteObject', deleteObject);
    case 'POST':
      return notImplemented('POST object');
    default:
      throw methodNotAllowed(method, 'OBJECT');
  }
}
