// c4v-media client E2EE: SFrame-style frame encryption with clear codec prefixes, the key
// schedule (ECDH P-256 + HKDF + AES-GCM key wrapping, a key leader, rotation and ratchet) and the
// meeting security code. Runs in browsers and in Node 22 (WebCrypto only).
export { E2eeError, type E2eeErrorCode } from './errors.js';
export {
  FrameCryptor,
  encodeHeader,
  decodeHeader,
  deriveSFrameKey,
  senderBaseKey,
  CIPHER_SUITE,
  type CryptorStats,
  type DecryptResult,
  type DropReason,
  type KeySink,
  type SFrameHeader,
  type SFrameKey,
} from './sframe.js';
export { clearPrefixLength, codecOf, isVp8Keyframe, h264Escape, h264Unescape, h264NalHeaderOffsets, type FrameCodec } from './codecs.js';
export {
  generateKeyPair,
  importPublicKey,
  generateGroupKey,
  ratchetGroupKey,
  wrapGroupKey,
  unwrapGroupKey,
  type ParticipantKeyPair,
  type WrapContext,
  type WrappedKey,
} from './keys.js';
export { encodeKeyMessage, decodeKeyMessage, KEY_MESSAGE_VERSION, type KeyMessage } from './messages.js';
export { securityCode, SECURITY_CODE_GROUPS, type CodeMember } from './securityCode.js';
export {
  createE2eeSession,
  electLeader,
  E2eeSession,
  type E2eeMember,
  type E2eeSessionEvents,
  type E2eeSessionOptions,
  type KeyChangeReason,
} from './session.js';
export { createFrameTransform, type EncodedFrameLike, type FrameDrop, type FrameTransformOptions } from './frameTransform.js';
export {
  createE2eeTransforms,
  detectTransformApi,
  peerConnectionOptions,
  E2eeTransforms,
  type E2eeTransformsHandlers,
  type E2eeTransformsOptions,
  type RtpEndpointLike,
  type TransformApi,
  type WorkerLike,
} from './transform.js';
export {
  createE2eeController,
  e2eeLabel,
  e2eeRefusalText,
  E2eeController,
  type E2eeControllerEvents,
  type E2eeControllerOptions,
  type E2eeLabel,
  type E2eeMode,
  type RosterEntry,
} from './controller.js';
