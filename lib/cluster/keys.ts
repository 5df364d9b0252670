// Redis key and channel names of cluster mode, in one place so that the README's "Where data
// lives" table can be checked against it. Every key carries a TTL (the backstop for purges).

/** The prefix of every key and channel. */
export const PREFIX = 'c4v:';

export const keys = {
  /** Hash: one node's registry entry (region, URLs, load, state); TTL = the heartbeat TTL. */
  node: (id: string) => `${PREFIX}node:${id}`,
  /** Set of node ids that registered (entries whose hash expired are dropped on read). */
  nodes: () => `${PREFIX}nodes`,
  /** Hash: a meeting's placement record (allowed regions, home node, token). */
  meeting: (id: string) => `${PREFIX}meeting:${id}`,
  /** String: `<nodeId>|<token>` while a node holds the home lease (PX = lease TTL). */
  lease: (id: string) => `${PREFIX}meeting:${id}:lease`,
  /** String (JSON): the meeting's policy state, written through by the home (fenced by its token). */
  policy: (id: string) => `${PREFIX}meeting:${id}:policy`,
  /**
   * Hash: what a resume needs at a new home (issue 13b), one field per participant id: a JSON
   * record (identity, display name, role, admission state, media node, SHA-256 of the current
   * resume token; never the token). Written by the home, fenced by its lease token.
   */
  sessions: (id: string) => `${PREFIX}meeting:${id}:sessions`,
  /** Counter: fencing tokens of the meeting's home leases. */
  epoch: (id: string) => `${PREFIX}meeting:${id}:epoch`,
  /** String: the meeting of an (opaque) participant id, so a resume can be routed. */
  participant: (id: string) => `${PREFIX}participant:${id}`,
  // Issue 13c: the operator API's durable definitions (lib/store/RedisDefinitionStore.ts). These
  // are the exception to the TTL rule while a meeting is defined (a meeting scheduled for next
  // month must not expire); at its end its keys get a TTL of its retention plus a day, the
  // backstop of the control-plane adapter's retention purge.
  /** String (JSON): an account (init, created/updated times); no TTL (no personal fields). */
  defAccount: (id: string) => `${PREFIX}def:account:${id}`,
  /** Set of account ids. */
  defAccounts: () => `${PREFIX}def:accounts`,
  /** String (JSON): a meeting definition (host fields, password hash, settings, ended time). */
  defMeeting: (id: string) => `${PREFIX}def:meeting:${id}`,
  /** Sorted set of defined meeting ids, by creation time (ms). */
  defMeetings: () => `${PREFIX}def:meetings`,
  /** Set of the meeting-scoped API key ids of one meeting. */
  defMeetingKeys: (id: string) => `${PREFIX}def:meeting:${id}:keys`,
  /** String (JSON): a meeting-scoped API key (secret, meeting id). */
  defApiKey: (keyId: string) => `${PREFIX}def:apikey:${keyId}`,
  /** List (JSON entries): the operator API's audit of one meeting; `-` for entries naming none. */
  defAudit: (meetingId: string) => `${PREFIX}def:audit:${meetingId}`,
  /** Set of meeting ids that have an audit list. */
  defAuditIndex: () => `${PREFIX}def:audit-index`,
  /** Counter: order of audit entries across nodes. */
  defAuditSeq: () => `${PREFIX}def:audit-seq`,
  /** Pub/sub channel of one node. */
  bus: (nodeId: string) => `${PREFIX}bus:${nodeId}`,
} as const;

/** TTL backstop of meeting records: a meeting whose home never purges is gone after this. */
export const MEETING_RECORD_TTL_S = 24 * 3600;
