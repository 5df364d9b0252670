/**
 * Every error the library throws on purpose carries a stable `code`. Codes are part of the public
 * contract (the gateway maps them to the wire, the README lists them); messages are for humans and
 * may change.
 */
export const ErrorCodes = [
  // Set-up and media plane.
  'WORKER_BINARY_MISSING',
  'WORKER_BINARY_NOT_EXECUTABLE',
  'WORKER_DIED',
  'NO_WORKER_AVAILABLE',
  'REGION_UNAVAILABLE',
  'ENCRYPTION_REQUIRED',
  // State and arguments.
  'INVALID_STATE',
  'INVALID_ARGUMENT',
  'NOT_FOUND',
  'CLOSED',
  // Policy (admission and permissions).
  'NOT_PERMITTED',
  'NOT_ADMITTED',
  'MEETING_ENDED',
  'MEETING_LOCKED',
  'MEETING_FULL',
  'BANNED',
  'PASSWORD_REQUIRED',
  'WRONG_PASSWORD',
  'TOO_MANY_ATTEMPTS',
  'E2EE_REQUIRED',
  'GUESTS_NOT_ALLOWED',
  'SETTING_LOCKED',
  'CHAT_DISABLED',
  'SCREEN_SHARE_DISABLED',
  'ALREADY_ANSWERED',
  // Wire (gateway).
  'PROTOCOL_ERROR',
  'UNSUPPORTED_VERSION',
  'MESSAGE_TOO_LARGE',
  'RATE_LIMITED',
  'INVALID_TOKEN',
  'TOKEN_EXPIRED',
  // Control plane.
  'FIELD_NOT_ALLOWED',
  'CONTROL_PLANE_UNREACHABLE',
  // Native packet engine.
  'NATIVE_BAD_ADDRESS',
  'NATIVE_PACKET_TOO_LARGE',
  'NATIVE_BAD_SRTP_KEY',
  'INTERNAL',
  // Demo server / gateway configuration.
  'CONFIG_INVALID',
  // Issue 9: install and the npm package.
  'NODE_VERSION_UNSUPPORTED',
  'WORKER_BUILD_FAILED',
  // Issue 16: data protection.
  'INSECURE_PERMISSIONS',
  // Issue 11: client SDK and protocol additions.
  /** A media parameter the server does not carry (e.g. `encodings[].active = false`). */
  'UNSUPPORTED_PARAMETER',
  // Issue 13: cluster mode (Redis registry, home placement, bus).
  'CLUSTER_UNAVAILABLE',
  'CLUSTER_TIMEOUT',
  'NODE_DRAINING',
  'HOME_LOST',
  // Issue 13c: Redis connection checks at start (TLS, and a server that drops the connection).
  /** The TLS handshake with Redis failed: its certificate is not trusted (cluster.redisTlsCaFile), or the name does not match. */
  'CLUSTER_TLS_FAILED',
  /** Redis refused this node at start: the connection dropped before any answer (a plain redis:// to a TLS port), AUTH refused, or no answer in time. */
  'CLUSTER_REDIS_REFUSED',
  // Issue 12: end-to-end encryption in the client SDK (client/e2ee/).
  'E2EE_MESSAGE_INVALID',
  'E2EE_KEY_INVALID',
  'E2EE_NOT_SUPPORTED',
  // Issue 13b (wave 3): sessions survive a home takeover.
  /** A resume waited for the meeting's new home (a takeover under way) and none served it in time; resume again. */
  'HOME_UNAVAILABLE',
] as const;

export type ErrorCode = (typeof ErrorCodes)[number];

/** Base class of every coded error of this library. */
export class C4vError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'C4vError';
    this.code = code;
  }
}

/** The object is closed or not in the state the call needs (e.g. produce while waiting). */
export class InvalidStateError extends C4vError {
  constructor(message: string, code: ErrorCode = 'INVALID_STATE') {
    super(code, message);
    this.name = 'InvalidStateError';
  }
}

/** A meeting rule refused the request (admission, permissions, settings). */
export class PolicyError extends C4vError {
  constructor(code: ErrorCode, message: string) {
    super(code, message);
    this.name = 'PolicyError';
  }
}

/** The media plane (mediasoup workers, regions, encryption) cannot serve the request. */
export class MediaError extends C4vError {
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'MediaError';
  }
}

/** A client sent something the signalling protocol does not allow. */
export class ProtocolError extends C4vError {
  constructor(code: ErrorCode, message: string) {
    super(code, message);
    this.name = 'ProtocolError';
  }
}

/** The set-up is incomplete (a missing worker binary, a bad config file). */
export class SetupError extends C4vError {
  constructor(code: ErrorCode, message: string) {
    super(code, message);
    this.name = 'SetupError';
  }
}

// Issue 10: deliberate argument errors vs. bugs.

/**
 * A value was refused on purpose (an empty display name, a control character, a missing target).
 * It is a TypeError, so `instanceof TypeError` keeps working for callers, and carries the code
 * INVALID_ARGUMENT. A plain TypeError, by contrast, is a bug (e.g. reading a property of
 * undefined) and reaches clients only as INTERNAL.
 */
export class ArgumentError extends TypeError {
  readonly code = 'INVALID_ARGUMENT' as const;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ArgumentError';
  }
}

/**
 * Runs a mediasoup call that validates client-supplied parameters (RTP parameters, DTLS
 * parameters, SCTP stream parameters): mediasoup refuses bad ones with a TypeError or its
 * UnsupportedError, which are the client's fault, so they become ArgumentError. Wrap only the
 * mediasoup call itself, so that a bug of our own around it still surfaces as INTERNAL.
 */
export async function mediasoupArgument<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof ArgumentError || error instanceof C4vError) throw error;
    if (error instanceof TypeError || (error instanceof Error && error.name === 'UnsupportedError')) {
      throw new ArgumentError(error.message, { cause: error });
    }
    throw error;
  }
}

/** Whether `error` is something the library did not throw on purpose (a bug, a crashed worker). */
export function isUnexpectedError(error: unknown): boolean {
  return toErrorPayload(error).code === 'INTERNAL' && !(error instanceof C4vError);
}

/**
 * Maps any thrown value to a `{ code, reason }` pair safe to send to a client: coded errors keep
 * their code and message, a deliberate ArgumentError is INVALID_ARGUMENT, and anything else (a
 * bug's TypeError included) becomes INTERNAL with the generic reason "internal error", so that
 * internals (messages, paths, stack traces) never reach the wire. The one place that does this
 * mapping; callers log unexpected errors at error level with their stack.
 */
export function toErrorPayload(error: unknown): { code: ErrorCode; reason: string } {
  if (error instanceof C4vError) return { code: error.code, reason: error.message };
  if (error instanceof ArgumentError) return { code: 'INVALID_ARGUMENT', reason: error.message };
  return { code: 'INTERNAL', reason: 'internal error' };
}
