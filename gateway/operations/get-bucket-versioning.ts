// GetBucketVersioning: GET /bucket?versioning. Cairn keeps one version of each object, so a bucket
// is never versioned, and S3 answers that state with a configuration without a Status. Tools read it
// before they copy or sync (Terraform, Cyberduck, mc); PutBucketVersioning stays 501 NotImplemented.
import { unversionedConfigurationXml } from '../s3/xml.js';
import type { OperationHandler } from '../server.js';

export const getBucketVersioning: OperationHandler = async (ctx, { namespace }) => {
  await namespace.getBucket(ctx.state.target.bucket!); // NoSuchBucket
  ctx.type = 'application/xml';
  ctx.body = unversionedConfigurationXml();
};
