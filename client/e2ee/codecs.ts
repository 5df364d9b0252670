// Which bytes of an encoded frame stay in the clear, per codec.
//
// The SFU and the browsers' packetizers read the first bytes of a frame: mediasoup tells a VP8
// keyframe by the P bit of the frame tag (lib's simulcast layer switching waits for one), and a
// browser's H264 packetizer splits the frame at Annex B start codes and reads each NAL unit
// header. Like LiveKit and Jitsi (JFrame) we leave exactly those bytes unencrypted and
// authenticate them as AAD, so that the SFU can read but not alter them.

/** Codecs with a dedicated clear-prefix rule; anything else is encrypted from its first byte. */
export type FrameCodec = 'vp8' | 'h264' | 'opus' | 'other';

/** Maps a mime type (`video/VP8`, `audio/opus`, or a bare `vp8`) to a FrameCodec. */
export function codecOf(mimeType: string | undefined): FrameCodec {
  const name = (mimeType ?? '').toLowerCase().replace(/^(audio|video)\//, '');
  if (name === 'vp8' || name === 'h264' || name === 'opus') return name;
  return 'other';
}

/** VP8 (RFC 6386 §9.1): a 3-byte frame tag; a keyframe adds the start code 9d 01 2a and 4 bytes of dimensions. */
export const VP8_KEYFRAME_CLEAR = 10;
/** VP8 delta frame: the 3-byte frame tag. */
export const VP8_DELTA_CLEAR = 3;
/** Opus (RFC 6716 §3.1): the TOC byte (mode, bandwidth, frame count). */
export const OPUS_CLEAR = 1;

/** Whether a VP8 frame is a keyframe: the P bit (bit 0 of the first byte) is 0. */
export function isVp8Keyframe(frame: Uint8Array): boolean {
  return frame.byteLength > 0 && (frame[0]! & 0x01) === 0;
}

/** H264 NAL unit types that carry a coded slice (non-IDR and IDR). */
const H264_SLICE_TYPES = new Set([1, 5]);

/**
 * Offsets of the NAL unit header bytes in an Annex B H264 frame (the byte after each
 * `00 00 01` start code; a 4-byte start code contains a 3-byte one).
 */
export function h264NalHeaderOffsets(frame: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i + 2 < frame.byteLength; i++) {
    if (frame[i] === 0 && frame[i + 1] === 0 && frame[i + 2] === 1) {
      if (i + 3 < frame.byteLength) out.push(i + 3);
      i += 2;
    }
  }
  return out;
}

/**
 * How many leading bytes of `frame` stay in the clear. Computed from the clear bytes alone, so a
 * receiver finds the same number on the encrypted frame:
 * - VP8: 10 for a keyframe, 3 for a delta frame;
 * - H264: everything up to and including the first coded slice's NAL header and the byte after
 *   it (parameter sets and SEI before it stay readable, as in LiveKit); without a slice, the
 *   first NAL header; without a start code, nothing;
 * - opus: the TOC byte; other codecs: nothing.
 * Never more than the frame's length.
 */
export function clearPrefixLength(codec: FrameCodec, frame: Uint8Array): number {
  let n = 0;
  switch (codec) {
    case 'vp8':
      n = frame.byteLength === 0 ? 0 : isVp8Keyframe(frame) ? VP8_KEYFRAME_CLEAR : VP8_DELTA_CLEAR;
      break;
    case 'opus':
      n = OPUS_CLEAR;
      break;
    case 'h264': {
      const nals = h264NalHeaderOffsets(frame);
      const slice = nals.find((h) => H264_SLICE_TYPES.has(frame[h]! & 0x1f));
      n = slice !== undefined ? slice + 2 : nals.length > 0 ? nals[0]! + 1 : 0;
      break;
    }
    case 'other':
      n = 0;
      break;
  }
  return Math.min(n, frame.byteLength);
}

/**
 * The part of the clear prefix that is authenticated (AAD). VP8 and opus: all of it; the
 * receiving browser hands those bytes over as they were sent. H264: only the last two bytes (the
 * slice's NAL header and the byte after it), because the receiver's depacketizer rebuilds the
 * bytes before them: it writes every start code as 00 00 00 01 and may put SPS and PPS it saw
 * earlier in front of an IDR slice, so those bytes can differ from what the sender had.
 */
export function authenticatedPrefix(codec: FrameCodec, prefix: Uint8Array): Uint8Array {
  return codec === 'h264' ? prefix.subarray(Math.max(0, prefix.byteLength - 2)) : prefix;
}

/** Trailing zero bytes of `bytes`, at most 2: the state an emulation-prevention pass starts in. */
function trailingZeros(bytes: Uint8Array): number {
  let z = 0;
  for (let i = bytes.byteLength - 1; i >= 0 && z < 2 && bytes[i] === 0; i--) z++;
  return z;
}

/**
 * H264 emulation prevention (ITU-T H.264 §7.4.1): inserts 0x03 after two zero bytes that would
 * be followed by 0x00-0x03, so ciphertext can never contain a start code that would make the
 * packetizer cut the frame. `before` is the clear prefix the result will follow: its trailing
 * zeros count, so no start code forms across the boundary either.
 */
export function h264Escape(data: Uint8Array, before: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.byteLength + Math.ceil(data.byteLength / 2) + 1);
  let o = 0;
  let zeros = trailingZeros(before);
  for (const b of data) {
    if (zeros >= 2 && b <= 3) {
      out[o++] = 3;
      zeros = 0;
    }
    out[o++] = b;
    zeros = b === 0 ? zeros + 1 : 0;
  }
  return out.subarray(0, o);
}

/** Reverses h264Escape (with the same `before`). */
export function h264Unescape(data: Uint8Array, before: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.byteLength);
  let o = 0;
  let zeros = trailingZeros(before);
  for (const b of data) {
    if (zeros >= 2 && b === 3) {
      zeros = 0;
      continue;
    }
    out[o++] = b;
    zeros = b === 0 ? zeros + 1 : 0;
  }
  return out.subarray(0, o);
}

/**
 * The byte that ends the escaped part of an encrypted H264 frame. An escaped buffer may end in
 * 0x00, which a packetizer can take for the start of a start code; a fixed non-zero last byte
 * (like the RBSP stop bit) rules that out and is checked on receipt.
 */
export const H264_TRAILER = 0x80;
