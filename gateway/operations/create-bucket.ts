// CreateBucket: PUT /bucket, with an optional CreateBucketConfiguration body.
import { ownerOf } from '../authorize.js';
import { validateBucketName } from '../request-target.js';
import { parseCreateBucketConfiguration } from '../s3/xml.js';
import { s3Error } from '../s3/errors.js';
import { sendEmpty, type OperationHandler } from '../server.js';
import { readSmallBody } from './body.js';

export const createBucket: OperationHandler = async (ctx, services) => {
  const { namespace, config } = services;
  const bucket = ctx.state.target.bucket!;
  validateBucketName(bucket);
  const body = await readSmallBody(ctx, services, 64 * 1024);
  if (body.length > 0) {
    const location = parseCreateBucketConfiguration(body).locationConstraint ?? '';
    // us-east-1 is the default region and must not be named explicitly, as in AWS.
    if (location !== '' && location !== config.region) {
      throw s3Error('InvalidLocationConstraint', 'The specified location-constraint is not valid', { LocationConstraint: location });
    }
  }
  // The caller's user id (authorize lets only signed-in callers create buckets).
  await namespace.createBucket(bucket, ownerOf(ctx.state.principal).id);
  ctx.set('Location', `/${bucket}`);
  sendEmpty(ctx, 200);
};
