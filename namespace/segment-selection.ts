// Cutting an object record down to the segments a read needs (see SegmentSelection): pure, so the
// namespace applies it and tests check it without a store.
import type { ObjectRecord, SegmentSelection } from './types.js';

/**
 * The record with only the segments holding bytes of the selection (a contiguous run, empty ones
 * inside it kept, so indices count on from `segmentSlice.first`), and without its parts unless the
 * selection asks for them. Inline records and reads without a selection come back whole.
 */
export function selectSegments(record: ObjectRecord, select: SegmentSelection | undefined): ObjectRecord {
  if (select === undefined || record.inline) return record;
  const [from, to] = selectedBytes(select, record.size);
  let first = -1;
  let last = -1;
  let firstOffset = record.size;
  let offset = 0;
  for (const [i, segment] of record.segments.entries()) {
    if (offset > to || from > to) break;
    if (segment.size > 0 && offset + segment.size - 1 >= from) {
      if (first < 0) [first, firstOffset] = [i, offset];
      last = i;
    }
    offset += segment.size;
  }
  const segments = first < 0 ? [] : record.segments.slice(first, last + 1);
  const { parts, ...rest } = record;
  const slice = { segments, segmentSlice: { first: first < 0 ? record.segments.length : first, offset: firstOffset } };
  return select.parts && parts !== undefined ? { ...rest, parts, ...slice } : { ...rest, ...slice };
}

/** Object bytes [from, to] the selection names; from > to when none. */
function selectedBytes(select: SegmentSelection, size: number): [number, number] {
  if ('none' in select) return [1, 0];
  if ('suffix' in select) return [Math.max(0, size - select.suffix), size - 1];
  return [select.start, Math.min(select.end ?? size - 1, size - 1)];
}
