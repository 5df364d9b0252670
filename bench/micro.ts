// Control-plane micro-benchmarks (tinybench): the admission decision, protobuf encode/decode of
// the signalling envelope, and the metadata event export. Parts from other layers are loaded at
// run time; one that is not built (yet) is skipped with a note instead of failing the run.
import { existsSync } from 'node:fs';
import { Bench } from 'tinybench';
import { decideAdmission, type AdmissionInput } from '../lib/model/admission.js';

export interface MicroTask {
  name: string;
  opsPerSecond: number;
  meanNs: number;
  p99Ns: number;
  samples: number;
}

export interface MicroResult {
  tasks: MicroTask[];
  skipped: string[];
}

type Encodable = { encode(m: unknown): { finish(): Uint8Array }; decode(b: Uint8Array): unknown; fromObject?(o: unknown): unknown };

async function optionalImport(relative: string): Promise<Record<string, unknown> | undefined> {
  const url = new URL(relative, import.meta.url);
  if (!existsSync(url)) return undefined;
  return (await import(url.href)) as Record<string, unknown>;
}

/** Finds a generated message type by its dotted path in a pbjs static module. */
function messageType(mod: Record<string, unknown> | undefined, path: string): Encodable | undefined {
  let cur: unknown = mod?.[path.split('.')[0]!] ?? (mod?.default as Record<string, unknown> | undefined)?.[path.split('.')[0]!];
  for (const part of path.split('.').slice(1)) cur = (cur as Record<string, unknown> | undefined)?.[part];
  return typeof (cur as Encodable | undefined)?.encode === 'function' ? (cur as Encodable) : undefined;
}

export async function runMicro(quick: boolean): Promise<MicroResult> {
  const bench = new Bench({ time: quick ? 100 : 1000, warmupTime: quick ? 20 : 200 });
  const skipped: string[] = [];

  const input: AdmissionInput = {
    settings: { waitingRoom: true, maxParticipants: 100, e2ee: 'optional', allowGuests: true },
    ended: false,
    banned: false,
    authenticated: true,
    password: 'ok',
    locked: false,
    admittedCount: 42,
    e2eeCapable: true,
    isHost: false,
    isCoHost: false,
    awaitingHost: false,
  };
  let sink: unknown;
  bench.add('admission decision', () => {
    sink = decideAdmission(input);
  });

  const signalling = await optionalImport('../proto/gen/signalling.js');
  const Envelope = messageType(signalling, 'c4v.signalling.v1.Envelope');
  if (Envelope) {
    const msg = {
      id: 17,
      request: { join: { meetingId: '3f1c2a9e-1b7d-4c55-9a6e-0d4f2b8c7e11', displayName: 'Dr. Erika Mustermann', password: '', joinToken: 'x'.repeat(220), e2eeCapable: true } },
    };
    const bytes = Envelope.encode(msg).finish();
    bench.add('signalling envelope encode (join)', () => {
      sink = Envelope.encode(msg).finish();
    });
    bench.add('signalling envelope decode (join)', () => {
      sink = Envelope.decode(bytes);
    });
    const roster = await optionalImport('../gateway/rosterEncoding.js');
    const encodeParticipantList = roster?.encodeParticipantList as ((id: number, p: unknown[], pr: unknown[], d: unknown[], speaker: string, meeting?: object) => Uint8Array) | undefined;
    // Issue 14: the hot path of get_participants, piece by piece (the load test in
    // bench/signalling.ts measures the whole request, socket and event loop included).
    const getReq = Envelope.encode({ id: 123456, request: { getParticipants: {} } }).finish();
    bench.add('get_participants: request decode', () => {
      sink = Envelope.decode(getReq);
    });
    for (const roster of [10, 50]) {
      const participants = Array.from({ length: roster }, (_, i) => ({ participantId: `3f1c2a9e-1b7d-4c55-9a6e-0d4f2b8c${String(i).padStart(4, '0')}`, displayName: `Teilnehmerin ${i}`, role: 3, state: 3, e2eeCapable: true }));
      const producers = Array.from({ length: Math.min(roster, 13) }, (_, i) => ({ id: `7a1c2a9e-1b7d-4c55-9a6e-0d4f2b8c${String(i).padStart(4, '0')}`, participantId: participants[i]!.participantId, source: 1, kind: 1, paused: false }));
      const resp = { id: 123456, response: { participants: { participants, producers, dataProducers: [], activeSpeakerId: '' } } };
      bench.add(`get_participants: response encode (${roster}-person roster)`, () => {
        sink = Envelope.encode(resp).finish();
      });
      // The gateway's own path since issue 14: cached entries, hand-framed envelope.
      if (encodeParticipantList) {
        const people = participants.map((p) => ({ id: p.participantId, displayName: p.displayName, role: 'participant', state: 'admitted', e2eeCapable: true }));
        const prods = producers.map((p) => ({ id: p.id, participantId: p.participantId, source: 'microphone', kind: 'audio', paused: false }));
        bench.add(`get_participants: response encode, cached entries (${roster}-person roster)`, () => {
          sink = encodeParticipantList(123456, people, prods, [], '');
        });
        // Issue 14b: the roster part shared per meeting (what the gateway does now).
        const meeting = {};
        bench.add(`get_participants: response encode, shared per meeting (${roster}-person roster)`, () => {
          sink = encodeParticipantList(123456, people, prods, [], '', meeting);
        });
      }
    }
  } else {
    skipped.push('signalling envelope encode/decode: proto/gen/signalling.js is not built on this branch (issue 4)');
  }

  const mapping = await optionalImport('../lib/controlplane/mapping.js');
  const controlplane = await optionalImport('../proto/gen/controlplane.js');
  const Joined = messageType(controlplane, 'c4v.controlplane.v1.ParticipantJoined');
  const participantJoined = mapping?.participantJoined as ((m: unknown, p: unknown) => unknown) | undefined;
  if (participantJoined && Joined) {
    const p = { id: 'p1', identity: 'erika@klinik.example', displayName: 'Dr. Erika Mustermann', authenticated: true, email: 'erika@klinik.example', address: '192.0.2.7' };
    const m = { id: 'm1', accountId: 'a1', title: 'Fallbesprechung', settings: {}, host: p, participants: Array.from({ length: 20 }, (_, i) => ({ ...p, id: `p${i}` })) };
    bench.add('metadata export: participant joined (map + encode)', () => {
      sink = Joined.encode(participantJoined(m, p)).finish();
    });
  } else {
    skipped.push('metadata event export: lib/controlplane/mapping.js or proto/gen/controlplane.js is not built on this branch (issue 5)');
  }

  await bench.run();
  void sink;
  const tasks: MicroTask[] = bench.tasks.map((t) => {
    const r = t.result as unknown as { throughput?: { mean: number }; latency?: { mean: number; p99: number; samplesCount?: number; samples?: number[] } } | undefined;
    const latency = r?.latency;
    return {
      name: t.name,
      opsPerSecond: r?.throughput?.mean ?? NaN,
      meanNs: (latency?.mean ?? NaN) * 1e6,
      p99Ns: (latency?.p99 ?? NaN) * 1e6,
      samples: latency?.samplesCount ?? latency?.samples?.length ?? 0,
    };
  });
  return { tasks, skipped };
}
