// GetBucketLocation: GET /bucket?location — us-east-1 is reported as an empty constraint, as AWS does.
import { locationConstraintXml } from '../s3/xml.js';
import type { OperationHandler } from '../server.js';

export const getBucketLocation: OperationHandler = async (ctx, { namespace, config }) => {
  await namespace.getBucket(ctx.state.target.bucket!);
  ctx.type = 'application/xml';
  ctx.body = locationConstraintXml(config.region);
};
