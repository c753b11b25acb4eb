// DeleteObject: DELETE /bucket/key — deleting a key that does not exist succeeds, as in S3.
import type { OperationHandler } from '../server.js';

export const deleteObject: OperationHandler = async (ctx, { namespace }) => {
  const { bucket, key } = ctx.state.target;
  await namespace.deleteObject(bucket!, key!);
  ctx.status = 204;
  ctx.body = null;
};
