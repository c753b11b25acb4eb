// HeadBucket: HEAD /bucket
import type { OperationHandler } from '../server.js';

export const headBucket: OperationHandler = async (ctx, { namespace, config }) => {
  await namespace.getBucket(ctx.state.target.bucket!);
  ctx.set('x-amz-bucket-region', config.region);
  ctx.status = 200;
  ctx.body = null;
};
