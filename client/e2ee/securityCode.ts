// The meeting security code: what participants read to each other to check that everyone sees
// the same set of public keys, i.e. that no one (the server included) swapped a key in between.
import { ArgumentError } from '../../lib/errors.js';
import { concat, field, utf8 } from './bytes.js';

/** Groups of digits in a code. 6 groups of 4 digits: about 80 bits. */
export const SECURITY_CODE_GROUPS = 6;

/** One participant as the security code sees it. */
export interface CodeMember {
  participantId: string;
  publicKey: Uint8Array;
}

/**
 * The security code of a meeting: SHA-256 over the meeting id and every participant's id and
 * public key (sorted by id, each length-prefixed, so the order of joining does not matter and no
 * two sets encode alike), shown as 6 groups of 4 digits, each group from 40 bits of the hash
 * (mod 10000: a bias below 1e-8). Everyone with the same view gets the same code; a join, a leave
 * or a swapped key changes it.
 */
export async function securityCode(meetingId: string, members: readonly CodeMember[]): Promise<string> {
  if (typeof meetingId !== 'string' || meetingId === '') throw new ArgumentError('securityCode needs the meeting id');
  const sorted = [...members].sort((a, b) => (a.participantId < b.participantId ? -1 : a.participantId > b.participantId ? 1 : 0));
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.participantId === sorted[i - 1]!.participantId) throw new ArgumentError(`participant ${sorted[i]!.participantId} is listed twice`);
  }
  const input = concat(
    utf8('c4v-media security code v1'),
    field(utf8(meetingId)),
    ...sorted.flatMap((m) => [field(utf8(m.participantId)), field(m.publicKey)]),
  );
  const hash = new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', input));
  const groups: string[] = [];
  for (let g = 0; g < SECURITY_CODE_GROUPS; g++) {
    let n = 0;
    for (let i = 0; i < 5; i++) n = n * 256 + hash[g * 5 + i]!;
    groups.push(String(n % 10000).padStart(4, '0'));
  }
  return groups.join(' ');
}
