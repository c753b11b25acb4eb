// ListObjectsV2 (GET /bucket?list-type=2), ListObjects v1 (GET /bucket) and ListObjectVersions
// (GET /bucket?versions): one range scan in the namespace per page; the continuation token is the
// namespace's opaque resume point.
import type { ParsedUrlQuery } from 'node:querystring';
import { ownerOf } from '../authorize.js';
import { s3Error } from '../s3/errors.js';
import { listObjectsV1Xml, listObjectsV2Xml, listVersionsXml, type ObjectEntry, type Owner } from '../s3/xml.js';
import type { ListObjectsResponse } from '../../namespace/types.js';
import type { OperationHandler } from '../server.js';

const MAX_KEYS = 1000;

function single(query: ParsedUrlQuery, name: string): string | undefined {
  const value = query[name];
  return Array.isArray(value) ? value[0] : value;
}

function parseMaxKeys(text: string | undefined): number {
  if (text === undefined) return MAX_KEYS;
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n)) {
    throw s3Error('InvalidArgument', 'Provided max-keys not an integer or within integer range', { ArgumentName: 'max-keys', ArgumentValue: text });
  }
  return Math.min(n, MAX_KEYS);
}

function parseEncodingType(query: ParsedUrlQuery): 'url' | undefined {
  const encodingType = single(query, 'encoding-type');
  if (encodingType !== undefined && encodingType !== 'url') {
    throw s3Error('InvalidArgument', 'Invalid Encoding Method specified in Request', { ArgumentName: 'encoding-type', ArgumentValue: encodingType });
  }
  return encodingType;
}

interface ListingQuery {
  prefix: string;
  delimiter: string | undefined;
  maxKeys: number;
  encodingType: 'url' | undefined;
}

/** What every listing document shows of a page: the query, and the entries with their owner. */
function listingOf(bucket: string, query: ListingQuery, page: ListObjectsResponse, owner: Owner | undefined) {
  return {
    name: bucket,
    ...query,
    isTruncated: page.isTruncated,
    // lastModified stays the namespace's ISO string: the XML shows it as is (no Date round trip).
    contents: page.entries.map((e): ObjectEntry => ({ key: e.key, lastModified: e.lastModified, etag: e.etag, size: e.size, owner })),
    commonPrefixes: page.commonPrefixes,
  };
}

export const listObjects: OperationHandler = async (ctx, { namespace }) => {
  const bucket = ctx.state.target.bucket!;
  const q = ctx.query;
  const v2 = single(q, 'list-type') === '2';
  const encodingType = parseEncodingType(q);
  const prefix = single(q, 'prefix') ?? '';
  const delimiter = single(q, 'delimiter') || undefined;
  const maxKeys = parseMaxKeys(single(q, 'max-keys'));
  const continuationToken = v2 ? single(q, 'continuation-token') : undefined;
  if (continuationToken === '') throw s3Error('InvalidArgument', 'The continuation token provided is incorrect', { ArgumentName: 'continuation-token' });
  const startAfter = v2 ? single(q, 'start-after') : single(q, 'marker');

  const page = await namespace.listObjects(bucket, { prefix, delimiter, maxKeys, startAfter, continuation: continuationToken });
  const fetchOwner = v2 ? single(q, 'fetch-owner') === 'true' : true;
  const owner = fetchOwner ? ownerOf(ctx.state.principal) : undefined;
  const common = listingOf(bucket, { prefix, delimiter, maxKeys, encodingType }, page, owner);
  ctx.type = 'application/xml';
  ctx.body = v2
    ? listObjectsV2Xml({
        ...common,
        continuationToken,
        nextContinuationToken: page.isTruncated ? page.nextContinuation : undefined,
        startAfter: single(q, 'start-after'),
      })
    : listObjectsV1Xml({
        ...common,
        marker: startAfter ?? '',
        // v1 reports NextMarker only with a delimiter; without one the client continues from the last key.
        nextMarker: page.isTruncated && delimiter ? page.lastReturned : undefined,
      });
};

/**
 * Cairn keeps one version of each key, S3's version "null", so the versions of a bucket are its
 * objects, each the latest; the markers page by key (a version id marker can only be "null").
 * Tools that empty a bucket (Terraform's force_destroy, boto3's object_versions) list it this way.
 */
export const listObjectVersions: OperationHandler = async (ctx, { namespace }) => {
  const bucket = ctx.state.target.bucket!;
  const q = ctx.query;
  const encodingType = parseEncodingType(q);
  const prefix = single(q, 'prefix') ?? '';
  const delimiter = single(q, 'delimiter') || undefined;
  const maxKeys = parseMaxKeys(single(q, 'max-keys'));
  const keyMarker = single(q, 'key-marker') || undefined;
  const versionIdMarker = single(q, 'version-id-marker') || undefined;
  if (versionIdMarker !== undefined && keyMarker === undefined) {
    throw s3Error('InvalidArgument', 'A version-id marker cannot be specified without a key marker.', { ArgumentName: 'version-id-marker', ArgumentValue: versionIdMarker });
  }
  if (versionIdMarker !== undefined && versionIdMarker !== 'null') {
    throw s3Error('InvalidArgument', 'Invalid version id specified', { ArgumentName: 'version-id-marker', ArgumentValue: versionIdMarker });
  }
  const page = await namespace.listObjects(bucket, { prefix, delimiter, maxKeys, startAfter: keyMarker });
  ctx.type = 'application/xml';
  ctx.body = listVersionsXml({
    ...listingOf(bucket, { prefix, delimiter, maxKeys, encodingType }, page, ownerOf(ctx.state.principal)),
    keyMarker,
    versionIdMarker,
    nextKeyMarker: page.isTruncated ? page.lastReturned : undefined,
  });
};
