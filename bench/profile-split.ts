// Splits a V8 CPU profile of the signalling server (SignallingTarget.profile() in
// bench/signalling.ts, or any `node --cpu-prof` profile) into the parts of a request's hot path (issue 14): receiving (socket read,
// WebSocket frame parsing), decoding, handling (dispatch, rate limits, metrics, the model call),
// encoding, sending (WebSocket framing, socket write), garbage collection, the rest
// of the event loop, and idle.
//
//   node dist/bench/profile-split.js DIR/CPU.*.cpuprofile
//
// Samples before the first decoded request (start-up, set-up) are left out. Each sample is given to the part of the innermost frame on its stack that names one, so a
// protobufjs call made while decoding counts as decoding and one made while encoding as encoding.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export const PARTS = ['receive', 'decode', 'handling', 'encode', 'send', 'gc', 'event loop', 'idle'] as const;
export type Part = (typeof PARTS)[number];

/** The part a frame names, or undefined (look further out on the stack). */
function partOf(f: ProfileNode['callFrame']): Part | undefined {
  const { functionName: fn, url } = f;
  if (fn === '(idle)') return 'idle';
  if (fn === '(garbage collector)') return 'gc';
  if (fn === 'decodeRequest' || fn === 'hasUnknownFields') return 'decode';
  if (fn === 'encodeParticipantList' || fn === 'encodeEnvelope') return 'encode';
  if (fn === '#sendBytes' || fn === 'flushCorked' || url.includes('/ws/lib/sender.js')) return 'send';
  if (url.includes('/ws/lib/receiver.js') || fn === 'onStreamRead') return 'receive';
  if (url.includes('/gateway/') || url.includes('/lib/model/') || url.includes('/lib/media/') || url.includes('prom-client')) return 'handling';
  if (fn === 'writevGeneric' || fn === 'writeGeneric' || fn === 'handleWriteReq' || fn === 'afterWriteDispatched') return 'send';
  return undefined;
}

export interface ProfileSplit {
  /** Milliseconds profiled (idle included). */
  total: number;
  /** Milliseconds per part. */
  parts: Record<Part, number>;
}

/** Milliseconds per part (and the total) of one profile. */
export function splitProfile(p: Profile): ProfileSplit {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const memo = new Map<number, Part>();
  const classify = (id: number): Part => {
    const hit = memo.get(id);
    if (hit) return hit;
    let part: Part = 'event loop';
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const found = partOf(byId.get(at)!.callFrame);
      if (found) {
        part = found;
        break;
      }
    }
    memo.set(id, part);
    return part;
  };
  const parts = Object.fromEntries(PARTS.map((k) => [k, 0])) as Record<Part, number>;
  let total = 0;
  // From the first request on: start-up (module loading, the joins) is not the hot path.
  const first = p.samples.findIndex((id) => classify(id) === 'decode');
  p.samples.forEach((id, i) => {
    if (i < first) return;
    const ms = (p.timeDeltas[i] ?? 0) / 1000;
    parts[classify(id)] += ms;
    total += ms;
  });
  return { total, parts };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  for (const file of process.argv.slice(2)) {
    const { total, parts } = splitProfile(JSON.parse(readFileSync(file, 'utf8')) as Profile);
    const busy = total - parts.idle;
    console.log(`${file}: ${busy.toFixed(0)} ms busy of ${total.toFixed(0)} ms`);
    for (const k of PARTS) if (k !== 'idle') console.log(`  ${k.padEnd(10)} ${parts[k].toFixed(0).padStart(7)} ms  ${((parts[k] / busy) * 100).toFixed(1).padStart(5)}% of busy`);
  }
}
