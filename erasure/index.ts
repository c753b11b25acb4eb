// Public API of the erasure coding core: geometry, framing, the stripe codec and the streaming transforms.
export {
  type Layout,
  DEFAULT_LAYOUT,
  CRC_BYTES,
  MAX_K,
  MAX_M,
  validateLayout,
  stripeDataSize,
  roundUp8,
  stripeCount,
  stripeDataLength,
  blockLengthFor,
  stripeBlockLength,
  shardDataLength,
  shardFramedLength,
  stripesForRange,
} from './layout.js';
export {
  type Frame,
  type FrameCheck,
  crcBytes,
  blockCrc,
  verifyFrame,
  FrameParser,
  CorruptFrameError,
  TruncatedFrameError,
} from './frames.js';
export { StripeCodec } from './codec.js';
export { ExactReader, UnexpectedEndError } from './exact-reader.js';
export {
  type EncodedStripe,
  type StripeSpan,
  type StripeBudget,
  encodeStripes,
  shardFrame,
  decodeStripes,
  NotEnoughShardsError,
  ShardSourceError,
} from './stream.js';
export { rebuildFramed, type RebuiltBlocks, type OpenShard } from './rebuild.js';
