// ListBuckets: GET / — the caller's own buckets, as in AWS; the root credentials see every bucket
// (the administrator's view, which also shows buckets made before buckets had user owners).
import { ownerOf } from '../authorize.js';
import { listAllMyBucketsXml } from '../s3/xml.js';
import type { OperationHandler } from '../server.js';

export const listBuckets: OperationHandler = async (ctx, { namespace }) => {
  const { principal } = ctx.state;
  const buckets = await namespace.listBuckets(principal.type === 'root' ? undefined : ownerOf(principal).id);
  ctx.type = 'application/xml';
  ctx.body = listAllMyBucketsXml({
    owner: ownerOf(principal),
    buckets: buckets.map((b) => ({ name: b.name, creationDate: new Date(b.createdAt) })),
  });
};
