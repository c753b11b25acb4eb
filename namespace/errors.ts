// One error type for the namespace, thrown alike by the in-process store and by the HTTP client,
// so callers handle a missing key or a lost race the same way whichever side they talk to.
import { HttpError } from '../common/http.js';

export class NamespaceError extends HttpError {
  constructor(status: number, code: string, message: string, details?: Record<string, unknown>) {
    super(status, code, message, details);
    this.name = 'NamespaceError';
  }
}

export const noSuchBucket = (bucket: string): NamespaceError =>
  new NamespaceError(404, 'NoSuchBucket', `bucket ${JSON.stringify(bucket)} does not exist`);

export const noSuchKey = (bucket: string, key: string): NamespaceError =>
  new NamespaceError(404, 'NoSuchKey', `no object ${JSON.stringify(key)} in bucket ${JSON.stringify(bucket)}`);

export const noSuchUpload = (uploadId: string): NamespaceError =>
  new NamespaceError(404, 'NoSuchUpload', `multipart upload ${JSON.stringify(uploadId)} does not exist`);

export const noSuchPart = (uploadId: string, partNumber: number): NamespaceError =>
  new NamespaceError(404, 'NoSuchPart', `multipart upload ${JSON.stringify(uploadId)} has no part ${partNumber}`);

export const noSuchNode = (nodeId: string): NamespaceError =>
  new NamespaceError(404, 'NoSuchNode', `node ${JSON.stringify(nodeId)} is not registered`);

export const preconditionFailed = (why: string): NamespaceError => new NamespaceError(412, 'PreconditionFailed', why);

export const invalidArgument = (why: string): NamespaceError => new NamespaceError(400, 'InvalidArgument', why);

export const conflict = (code: 'BucketNotEmpty' | 'BucketAlreadyExists' | 'BucketAlreadyOwnedByYou', why: string): NamespaceError =>
  new NamespaceError(409, code, why);

/** The bucket name was deleted by another owner a moment ago and is still held (see BUCKET_NAME_HOLD_MS). */
export const operationAborted = (why: string): NamespaceError => new NamespaceError(409, 'OperationAborted', why);

/** A compare-and-swap on placements lost: the object moved on (overwritten, or its placements changed). Re-read and retry. */
export const placementConflict = (why: string): NamespaceError => new NamespaceError(409, 'PlacementConflict', why);

// Users and access keys take IAM's error codes (they are not S3 codes: the gateway never passes them on).
export const noSuchEntity = (what: string): NamespaceError => new NamespaceError(404, 'NoSuchEntity', `${what} does not exist`);

export const entityAlreadyExists = (what: string): NamespaceError => new NamespaceError(409, 'EntityAlreadyExists', `${what} already exists`);

export const deleteConflict = (why: string): NamespaceError => new NamespaceError(409, 'DeleteConflict', why);

/** The store found itself inconsistent (e.g. a record without the bytes it says it holds): a 500, never a guess. */
export const internal = (why: string): NamespaceError => new NamespaceError(500, 'InternalError', why);
