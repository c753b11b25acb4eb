// HeadBucket: HEAD /bucket
import { sendEmpty, type OperationHandler } from '../server.js';

export const headBucket: OperationHandler = async (ctx, { namespace, config }) => {
  await namespace.getBucket(ctx.state.target.bucket!);
  ctx.set('x-amz-bucket-region', config.region);
  sendEmpty(ctx, 200);
};
