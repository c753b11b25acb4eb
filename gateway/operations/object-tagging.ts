// GetObjectTagging, PutObjectTagging, DeleteObjectTagging: GET|PUT|DELETE /bucket/key?tagging.
// Tags live on the object's namespace record and change in place: the object keeps its version,
// ETag and Last-Modified, as in S3 (namespace setObjectTags).
import { checkTags } from '../s3/tagging.js';
import { parseTagging, taggingXml } from '../s3/xml.js';
import { sendEmpty, type OperationHandler } from '../server.js';
import { readDocument, requireIntegrityHeader } from './body.js';

/** Ten tags of 128 + 256 characters, escaped, fit many times over. */
const MAX_TAGGING_BYTES = 64 * 1024;

export const getObjectTagging: OperationHandler = async (ctx, { namespace }) => {
  const { bucket, key } = ctx.state.target as { bucket: string; key: string };
  const record = await namespace.getObject(bucket, key, { none: true });
  ctx.type = 'application/xml';
  ctx.body = taggingXml(record.tags ?? []);
};

export const putObjectTagging: OperationHandler = async (ctx, services) => {
  const { bucket, key } = ctx.state.target as { bucket: string; key: string };
  requireIntegrityHeader(ctx.req.headers);
  const tags = checkTags(parseTagging(await readDocument(ctx, services, MAX_TAGGING_BYTES, 'MalformedXML')));
  await services.namespace.setObjectTags(bucket, key, { tags: [...tags] });
  sendEmpty(ctx, 200);
};

export const deleteObjectTagging: OperationHandler = async (ctx, { namespace }) => {
  const { bucket, key } = ctx.state.target as { bucket: string; key: string };
  await namespace.setObjectTags(bucket, key, { tags: [] });
  sendEmpty(ctx, 204);
};
