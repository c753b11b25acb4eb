// DeleteBucket: DELETE /bucket — only an empty bucket (no objects, no multipart uploads in progress).
import { sendEmpty, type OperationHandler } from '../server.js';

export const deleteBucket: OperationHandler = async (ctx, { namespace, buckets }) => {
  buckets.forget(ctx.state.target.bucket!);
  await namespace.deleteBucket(ctx.state.target.bucket!);
  sendEmpty(ctx, 204);
};
