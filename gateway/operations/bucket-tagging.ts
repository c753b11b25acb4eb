// GetBucketTagging, PutBucketTagging, DeleteBucketTagging: GET|PUT|DELETE /bucket?tagging. The tags
// (at most 50, S3's rules: s3/tagging.ts) live on the bucket's namespace record.
import { s3Error } from '../s3/errors.js';
import { checkTags } from '../s3/tagging.js';
import { parseTagging, taggingXml } from '../s3/xml.js';
import { sendEmpty, type OperationHandler } from '../server.js';
import { readDocument, requireIntegrityHeader } from './body.js';

/** Fifty tags of 128 + 256 characters, escaped, fit. */
const MAX_TAGGING_BYTES = 256 * 1024;

export const getBucketTagging: OperationHandler = async (ctx, { namespace }) => {
  const record = await namespace.getBucket(ctx.state.target.bucket!);
  if (record.tags === undefined || record.tags.length === 0) throw s3Error('NoSuchTagSet', undefined, { BucketName: record.name });
  ctx.type = 'application/xml';
  ctx.body = taggingXml(record.tags);
};

export const putBucketTagging: OperationHandler = async (ctx, services) => {
  requireIntegrityHeader(ctx.req.headers);
  const tags = checkTags(parseTagging(await readDocument(ctx, services, MAX_TAGGING_BYTES, 'MalformedXML')), 'bucket');
  services.buckets.remember(await services.namespace.setBucketTags(ctx.state.target.bucket!, [...tags]));
  sendEmpty(ctx, 204);
};

export const deleteBucketTagging: OperationHandler = async (ctx, { namespace, buckets }) => {
  buckets.remember(await namespace.setBucketTags(ctx.state.target.bucket!, []));
  sendEmpty(ctx, 204);
};
