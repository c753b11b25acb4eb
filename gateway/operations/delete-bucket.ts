// DeleteBucket: DELETE /bucket — only an empty bucket (no objects, no multipart uploads in progress).
import { sendEmpty, type OperationHandler } from '../server.js';

export const deleteBucket: OperationHandler = async (ctx, { namespace, buckets }) => {
  try {
    await namespace.deleteBucket(ctx.state.target.bucket!);
  } finally {
    buckets.forget(ctx.state.target.bucket!); // after: a lookup racing the delete must not be kept
  }
  sendEmpty(ctx, 204);
};
