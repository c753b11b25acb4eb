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

export interface Operation {
  name: string;
  handler: OperationHandler;
}

/** Sub-resources S3 defines on buckets and objects that Cairn does not serve yet. */
const UNSUPPORTED_BUCKET_SUBRESOURCES = [
  'accelerate', 'acl', 'analytics', 'cors', 'delete', 'encryption', 'intelligent-tiering', 'inventory', 'lifecycle',
  'logging', 'metrics', 'notification', 'object-lock', 'ownershipControls', 'policy', 'policyStatus',
  'publicAccessBlock', 'replication', 'requestPayment', 'tagging', 'uploads', 'versioning', 'versions', 'website',
];
const UNSUPPORTED_OBJECT_SUBRESOURCES = [
  'acl', 'attributes', 'legal-hold', 'retention', 'tagging', 'torrent', 'restore', 'select', 'uploads', 'uploadId', 'partNumber', 'versionId',
];

function op(name: string, handler: OperationHandler): Operation {
  return { name, handler };
}

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

function objectOperation(method: string, query: ParsedUrlQuery): Operation {
  const sub = firstPresent(query, UNSUPPORTED_OBJECT_SUBRESOURCES);
  if (sub) return notImplemented(`${method} object ?${sub}`);
  switch (method) {
    case 'GET':
      return op('GetObject', getObject);
    case 'HEAD':
      return op('HeadObject', getObject);
    case 'PUT':
      return op('PutObject', putObject);
    case 'DELETE':
      return op('DeleteObject', deleteObject);
    case 'POST':
      return notImplemented('POST object');
    default:
      throw s3Error('MethodNotAllowed', 'The specified method is not allowed against this resource.', { Method: method, ResourceType: 'OBJECT' });
  }
}
