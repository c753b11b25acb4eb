// WriteCondition semantics, shared by commits, deletes and multipart completion. Called with the
// object key locked, so the check and the write that follows are atomic.
import { preconditionFailed } from './errors.js';
import type { ObjectRecord, WriteCondition } from './types.js';

export function checkCondition(condition: WriteCondition | undefined, current: ObjectRecord | undefined): void {
  if (!condition) return;
  if (condition.ifNoneMatch && current) throw preconditionFailed('an object already exists under this key');
  if (condition.ifVersionId !== undefined && current?.versionId !== condition.ifVersionId) {
    throw preconditionFailed(`the current version is not ${condition.ifVersionId}`);
  }
  if (condition.ifEtag !== undefined && current?.etag !== condition.ifEtag) throw preconditionFailed(`the current ETag is not ${condition.ifEtag}`);
}
