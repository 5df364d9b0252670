// Which fields a stored control-plane event carries: dotted names only, never values. The privacy
// report lists these for every event that left.
import { renderEvent } from '../controlplane/allowList.js';

/**
 * The dotted paths of the set fields of a ControlPlaneEvent (`participantJoined.email`,
 * `pollResults.answers.displayName`, ...), in declaration order. proto3 leaves unset and empty
 * fields out of the encoding, so a path here means the event really carried a value there.
 */
export function eventFieldPaths(payload: Uint8Array): string[] {
  const out = new Set<string>();
  walk(renderEvent(payload), '', out);
  return [...out];
}

function walk(value: unknown, prefix: string, out: Set<string>): void {
  if (Array.isArray(value)) {
    for (const v of value) walk(v, prefix, out);
    if (value.length > 0 && value.every((v) => typeof v !== 'object' || v === null)) out.add(prefix);
    return;
  }
  if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) walk(v, prefix ? `${prefix}.${k}` : k, out);
    return;
  }
  if (prefix) out.add(prefix);
}
