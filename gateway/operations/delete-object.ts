// DeleteObject: DELETE /bucket/key — deleting a key that does not exist succeeds, as in S3.
import { sendEmpty, type OperationHandler } from '../server.js';

export const deleteObject: OperationHandler = async (ctx, { namespace }) => {
  const { bucket, key } = ctx.state.target;
  await namespace.deleteObject(bucket!, key!);
  sendEmpty(ctx, 204);
};
