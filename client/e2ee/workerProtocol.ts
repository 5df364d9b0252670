// Messages between the page (E2eeTransforms) and the E2EE worker (worker.ts).
import type { CryptorStats } from './sframe.js';
import type { FrameTransformOptions } from './frameTransform.js';

/** Page -> worker. */
export type ToWorker =
  | { op: 'init'; selfId: string }
  | { op: 'setKey'; kid: number; key: Uint8Array }
  | { op: 'useKey'; kid: number }
  | { op: 'retainKeys'; kids: number[] }
  | { op: 'stats'; id: number }
  /** createEncodedStreams: the streams are transferred here and piped through a transform. */
  | { op: 'stream'; readable: ReadableStream; writable: WritableStream; options: FrameTransformOptions };

/** Worker -> page. */
export type FromWorker =
  | { op: 'stats'; id: number; stats: CryptorStats }
  | { op: 'keymissing'; participantId: string; kid: number }
  | { op: 'error'; message: string };
