import * as assert from 'uvu/assert';
import { Assertion } from 'uvu/assert';
import { toErrorPayload, createMediaCore, createMetricsRegistry, type JoinRequest, type MediaCore, type MediaCoreOptions } from '../../lib/index.js';
import { TEST_MEDIA_CODECS } from './weriftPeer.js';
import { silentLogger } from './util.js';

/** A media core with real workers (default one in de-fra) and the codecs the werift peers send. */
export async function testCore(options: Partial<MediaCoreOptions> = {}): Promise<MediaCore> {
  return createMediaCore({
    logger: options.logger ?? silentLogger(),
    registry: createMetricsRegistry(),
    workers: options.workers ?? { workers: 1, region: 'de-fra' },
    media: { mediaCodecs: TEST_MEDIA_CODECS, ...options.media },
    ...(options.passwordAttempts ? { passwordAttempts: options.passwordAttempts } : {}),
  });
}

/** A join request for a signed-in user (override any field). */
export function user(identity: string, extra: Partial<JoinRequest> = {}): JoinRequest {
  return { identity, displayName: identity.split('@')[0]!, authenticated: true, e2eeCapable: true, ...extra };
}

/** The host's join request for a meeting whose hostIdentity is `identity`. */
export function hostOf(identity: string, extra: Partial<JoinRequest> = {}): JoinRequest {
  return user(identity, { asHost: true, ...extra });
}

/** The coded error a promise (or function) rejects with; fails the test when nothing throws. */
export async function codeOf(fn: () => unknown): Promise<string> {
  try {
    await fn();
    assert.unreachable('expected a coded error, but the call succeeded');
  } catch (error) {
    if (error instanceof Assertion) throw error;
    return toErrorPayload(error).code;
  }
  return 'unreachable';
}
