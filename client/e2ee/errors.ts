// The E2EE core's one error class. It extends the library's coded error so that an application
// (and the gateway's `toErrorPayload`) sees the same `{ code, message }` shape everywhere; the
// codes are listed in lib/errors.ts under "Issue 12".
import { C4vError, type ErrorCode } from '../../lib/errors.js';

/** E2EE codes: a malformed key message, an unusable key, or a browser without encoded transforms. */
export type E2eeErrorCode = Extract<ErrorCode, 'E2EE_MESSAGE_INVALID' | 'E2EE_KEY_INVALID' | 'E2EE_NOT_SUPPORTED'>;

/** Thrown by the E2EE core for bad key messages, unusable keys and missing browser support. */
export class E2eeError extends C4vError {
  constructor(code: E2eeErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'E2eeError';
  }
}
