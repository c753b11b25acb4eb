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
import { listObjects } from './list-objects.js';
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

export interface Operation {
  name: string;
  handler: OperationHandler;
}

/** Sub-resources S3 defines on buckets and objects that Cairn does not serve yet. */
const UNSUPPORTED_BUCKET_SUBRESOURCES = [
  'accelerate', 'acl', 'analytics', 'cors', 'encryption', 'intelligent-tiering', 'inventory', 'lifecycle',
  'logging', 'metrics', 'notification', 'object-lock', 'ownershipControls', 'policy', 'policyStatus',
  'publicAccessBlock', 'replication', 'requestPayment', 'tagging', 'versioning', 'versions', 'website',
];
const UNSUPPORTED_OBJECT_SUBRESOURCES = [
  'acl', 'attributes', 'legal-hold', 'retention', 'tagging', 'torrent', 'restore', 'select', 'versionId',
];

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

function firstPresent(query: ParsedUrlQuery, names: string[]): string | undefined {
  return names.find((n) => n in query);
}

export function resolveOperation(method: string, target: RequestTarget, query: ParsedUrlQuery): Operation {
  if (!target.bucket) {
    if (method === 'GET') return op('ListBuckets', listBuckets);
    throw s3Error('MethodNotAllowed', 'The specified method is not allowed against this resource.', { Method: method, ResourceType: 'SERVICE' });
  }
  return target.key === undefined ? bucketOperation(method, query) : objectOperation(method, query);
}

function bucketOperation(method: string, query: ParsedUrlQuery): Operation {
  if (method === 'GET' && 'location' in query) return op('GetBucketLocation', getBucketLocation);
  if (method === 'POST' && 'delete' in query) return op('DeleteObjects', deleteObjects);
  if ('uploads' in query) {
    if (method === 'GET') return op('ListMultipartUploads', listMultipartUploads);
    throw s3Error('MethodNotAllowed', 'The specified method is not allowed against this resource.', { Method: method, ResourceType: 'BUCKET' });
  }
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
      throw s3Error('MethodNotAllowed', 'The specified method is not allowed against this resource.', { Method: method, ResourceType: 'BUCKET' });
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
  const multipart = multipartOperation(method, query);
  if (multipart) return multipart;
  const sub = firstPresent(query, UNSUPPORTED_OBJECT_SUBRESOURCES);
  if (sub) return notImplemented(`${method} object ?${sub}`);
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
      throw s3Error('MethodNotAllowed', 'The specified method is not allowed against this resource.', { Method: method, ResourceType: 'OBJECT' });
  }
}
