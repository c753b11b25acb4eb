// CreateMultipartUpload: POST /bucket/key?uploads. Records what the finished object will carry
// (content type, x-amz-meta-*, stored headers, x-amz-tagging) and the checksum its parts must bring; nothing is
// visible under the key until CompleteMultipartUpload.
import { s3Error } from '../s3/errors.js';
import { parseChecksumAlgorithm, type ChecksumAlgorithm } from '../s3/checksums.js';
import { defaultChecksumType, parseChecksumType, supportsChecksumType, type ChecksumType } from '../s3/multipart-checksums.js';
import { initiateMultipartUploadXml } from '../s3/xml.js';
import { parseTaggingHeader } from '../s3/tagging.js';
import { objectHeadersFrom } from '../metadata.js';
import type { CreateUploadRequest } from '../../namespace/types.js';
import type { OperationHandler, S3Context } from '../server.js';

export const createMultipartUpload: OperationHandler = async (ctx, services) => {
  const { bucket, key } = ctx.state.target as { bucket: string; key: string };
  const meta = objectHeadersFrom(ctx.req.headers);
  const checksum = requestedChecksum(ctx);
  const tags = parseTaggingHeader(ctx.req.headers['x-amz-tagging']);
  const request: CreateUploadRequest = { bucket, key, ...meta };
  if (tags.length > 0) request.tags = [...tags];
  if (checksum) {
    request.checksumAlgorithm = checksum.algorithm;
    request.checksumType = checksum.type;
  }
  const upload = await services.namespace.createUpload(request);
  if (checksum) {
    ctx.set('x-amz-checksum-algorithm', checksum.algorithm);
    ctx.set('x-amz-checksum-type', checksum.type);
  }
  ctx.type = 'application/xml';
  ctx.body = initiateMultipartUploadXml({ bucket, key, uploadId: upload.uploadId });
};

function requestedChecksum(ctx: S3Context): { algorithm: ChecksumAlgorithm; type: ChecksumType } | undefined {
  const algorithmText = ctx.get('x-amz-checksum-algorithm');
  const typeText = ctx.get('x-amz-checksum-type');
  if (algorithmText === '') {
    if (typeText !== '') {
      throw s3Error('InvalidRequest', 'The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.');
    }
    return undefined;
  }
  const algorithm = parseChecksumAlgorithm(algorithmText);
  if (algorithm === undefined) {
    throw s3Error(
      'InvalidRequest',
      'Checksum algorithm provided is unsupported. Please try again with any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]',
    );
  }
  if (typeText === '') return { algorithm, type: defaultChecksumType(algorithm) };
  const type = parseChecksumType(typeText);
  if (type === undefined) throw s3Error('InvalidRequest', 'Value for x-amz-checksum-type header is invalid.');
  if (!supportsChecksumType(algorithm, type)) {
    throw s3Error('InvalidRequest', `The ${type} checksum type cannot be used with the ${algorithm.toLowerCase()} checksum algorithm.`);
  }
  return { algorithm, type };
}
