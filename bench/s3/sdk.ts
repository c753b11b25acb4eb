// The AWS SDK v3 client the large-object workloads use, set up so the client side stays cheap and
// identical for both systems: enough sockets for every stream, no retries, and checksums only
// when an operation requires them (stream bodies then go out plain with Content-Length and
// UNSIGNED-PAYLOAD instead of aws-chunked, which s3rver cannot decode; see /work/shared/PACKAGES.md §7).
import http from 'node:http';
import { S3Client } from '@aws-sdk/client-s3';
import type { Credentials } from './sigv4.js';

export function sdkClient(endpoint: string, creds: Credentials, maxSockets: number): S3Client {
  return new S3Client({
    endpoint,
    region: creds.region,
    forcePathStyle: true,
    credentials: { accessKeyId: creds.accessKeyId, secretAccessKey: creds.secretAccessKey },
    maxAttempts: 1,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: {
      httpAgent: new http.Agent({ keepAlive: true, maxSockets }),
      requestTimeout: 300_000,
      connectionTimeout: 10_000,
    },
  });
}
