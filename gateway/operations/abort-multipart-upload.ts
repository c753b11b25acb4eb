// AbortMultipartUpload: DELETE /bucket/key?uploadId=X → 204. The namespace forgets the upload and
// queues every shard of its parts for garbage collection in the same transaction; a part upload
// still in flight fails its commit (NoSuchUpload) and discards what it wrote.
import { asUploadError, requireUpload, uploadIdFrom } from '../multipart.js';
import { sendEmpty, type OperationHandler } from '../server.js';

export const abortMultipartUpload: OperationHandler = async (ctx, services) => {
  const { bucket, key } = ctx.state.target as { bucket: string; key: string };
  const uploadId = uploadIdFrom(ctx.query);
  await requireUpload(services, bucket, key, uploadId);
  try {
    await services.namespace.abortUpload(uploadId);
  } catch (err) {
    throw asUploadError(err, uploadId);
  }
  sendEmpty(ctx, 204);
};
