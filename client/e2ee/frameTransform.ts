// The per-frame step of the encoded transform: a TransformStream that encrypts outgoing or
// decrypts incoming encoded frames with a FrameCryptor. Used by the E2EE worker for both browser
// APIs (RTCRtpScriptTransform and createEncodedStreams); written against the few frame members
// it needs so that it runs (and is tested) in Node as well.
import { ArgumentError } from '../../lib/errors.js';
import type { DropReason, FrameCryptor } from './sframe.js';

/** The members of RTCEncodedVideoFrame / RTCEncodedAudioFrame this transform uses. */
export interface EncodedFrameLike {
  data: ArrayBuffer;
  /** Video only: 'key', 'delta' or 'empty'. */
  readonly type?: string;
  getMetadata?(): { mimeType?: string };
}

/** What a transform does, and for which participant's frames. */
export interface FrameTransformOptions {
  /** 'send': encrypt this participant's frames; 'receive': decrypt `participantId`'s. */
  direction: 'send' | 'receive';
  /** Receive only: whose frames (the producer's participant). */
  participantId?: string;
  /** The codec's mime type when a frame's metadata does not say (older browsers). */
  mimeType?: string;
}

/** A dropped incoming frame, reported so that a missing key can be requested. */
export interface FrameDrop {
  participantId: string;
  reason: DropReason;
  kid?: number;
}

/**
 * A TransformStream over encoded frames. Outgoing frames without a key are dropped (never sent
 * in the clear); incoming frames that do not decrypt are dropped and reported through `onDrop`.
 * Empty frames pass as they are (there is nothing to hide, and the packetizer expects them).
 */
export function createFrameTransform<F extends EncodedFrameLike>(
  cryptor: FrameCryptor,
  options: FrameTransformOptions,
  onDrop?: (drop: FrameDrop) => void,
): TransformStream<F, F> {
  if (options.direction !== 'send' && options.direction !== 'receive') throw new ArgumentError("direction must be 'send' or 'receive'");
  const from = options.participantId;
  if (options.direction === 'receive' && (typeof from !== 'string' || from === '')) throw new ArgumentError('a receive transform needs the participantId of the sender');
  return new TransformStream<F, F>({
    async transform(frame, controller) {
      if (frame.data.byteLength === 0) {
        controller.enqueue(frame);
        return;
      }
      const mimeType = frame.getMetadata?.().mimeType ?? options.mimeType ?? '';
      const data = new Uint8Array(frame.data);
      if (options.direction === 'send') {
        const enc = await cryptor.encrypt(mimeType, data);
        if (!enc) return;
        frame.data = exactBuffer(enc);
        controller.enqueue(frame);
        return;
      }
      const r = await cryptor.decrypt(from!, mimeType, data);
      if (r.ok) {
        frame.data = exactBuffer(r.data);
        controller.enqueue(frame);
      } else {
        onDrop?.(r.kid === undefined ? { participantId: from!, reason: r.reason } : { participantId: from!, reason: r.reason, kid: r.kid });
      }
    },
  });
}

/** The bytes as an ArrayBuffer of exactly their length (what `frame.data` must be). */
function exactBuffer(b: Uint8Array): ArrayBuffer {
  return b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? (b.buffer as ArrayBuffer) : (b.slice().buffer as ArrayBuffer);
}
