// ListBuckets: GET /
import { listAllMyBucketsXml } from '../s3/xml.js';
import type { OperationHandler } from '../server.js';

export const listBuckets: OperationHandler = async (ctx, { namespace }) => {
  const buckets = await namespace.listBuckets();
  ctx.type = 'application/xml';
  ctx.body = listAllMyBucketsXml({
    owner: { id: ctx.state.auth.accessKeyId, displayName: ctx.state.auth.accessKeyId },
    buckets: buckets.map((b) => ({ name: b.name, creationDate: new Date(b.createdAt) })),
  });
};
