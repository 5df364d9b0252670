// The privacy report: what a data-protection officer asks of the meeting server, answered from the
// control-plane outbox and the audit record. Which events left for which sink (field names, never
// values) and when; where the media ran; which personal data is still held and until when; what
// was purged and when. Built from the store only, so the CLI can print it while the server runs.
import { existsSync } from 'node:fs';
import { C4vError } from '../errors.js';
import type { MessageKind } from '../controlplane/allowList.js';
import type { HeldData } from '../controlplane/sinks.js';
import { ControlPlaneStore, type MeetingHoldings, type StoredDisclosure, type StoredPurge } from '../controlplane/store.js';
import { eventFieldPaths } from './fields.js';
import { isPseudonym } from './pseudonym.js';

const DAY_MS = 86_400_000;

export interface PrivacyReportOptions {
  /** Only this meeting (found by its id also after retention replaced it by its pseudonym). */
  meetingId?: string;
  /** Only what happened at or after this time (disclosures, placements, purges). */
  since?: Date;
  /** The report's "now" (for due dates); default the current time. */
  now?: Date;
  /**
   * Other stores that purge a meeting's data at its retention boundary (the file sink when it
   * opted in, Redis, ...): each is listed as holding the data of meetings within retention.
   */
  purgeTargets?: readonly string[];
  /**
   * Stores that can say what they hold per meeting (the operator API's definition store): each
   * item is listed with its field names and the outbox's due date, instead of a generic line.
   */
  holders?: readonly ReportHolder[];
}

/** A store that lists what it holds (a PurgeTarget with `heldData`). */
export interface ReportHolder {
  readonly name: string;
  heldData(): HeldData[];
}

/** One event that left, or is about to leave, for one sink. */
export interface ReportDisclosure {
  /** The meeting id, or its pseudonym (`pmid-...`) after retention. */
  meetingId: string;
  sink: string;
  kind: MessageKind;
  sequence: number;
  /** Names of the fields it carried (dotted paths), never their values. */
  fields: string[];
  createdAt: Date;
  /** When the sink accepted it; absent for an event still waiting for delivery. */
  deliveredAt?: Date;
  /** Failed attempts so far, for an event still waiting. */
  attempts?: number;
}

/** One item of personal data still held, and when it is due for purge. */
export interface ReportHolding {
  meetingId: string;
  /** Where it is: 'outbox', 'audit', 'meeting-id' or a purge target's name ('file', ...). */
  store: string;
  what: string;
  /** Names of the personal fields held (never their values), where the store lists them. */
  fields?: string[];
  /** How many (events, audit entries, rows); 0 where this process cannot count them (another store). */
  items: number;
  /** When the retention purge removes it; absent while the meeting has not ended. */
  dueAt?: Date;
  /** The due date in words (e.g. after delivery, or N days after the meeting ends). */
  due: string;
}

/** Where a meeting's media ran. */
export interface ReportPlacement {
  meetingId: string;
  region: string;
  workerId: number;
  from: Date;
  to?: Date;
  endReason?: string;
}

export interface PrivacyReport {
  generatedAt: Date;
  outboxPath: string;
  filter: { meetingId?: string; since?: Date };
  /** With a meeting filter: whether its id is still held in clear or only as a pseudonym. */
  meeting?: { meetingId: string; storedAs: string; pseudonymised: boolean };
  disclosures: ReportDisclosure[];
  pending: ReportDisclosure[];
  media: ReportPlacement[];
  held: ReportHolding[];
  purged: StoredPurge[];
}

function disclosure(d: StoredDisclosure): ReportDisclosure {
  return { meetingId: d.meetingId, sink: d.sink, kind: d.kind, sequence: d.sequence, fields: d.fields, createdAt: d.createdAt, deliveredAt: d.deliveredAt };
}

/**
 * Builds the privacy report from a control-plane store (an adapter's `store`, or one opened on
 * an outbox file). Reads only; changes nothing.
 */
export function privacyReport(store: ControlPlaneStore, options: PrivacyReportOptions = {}): PrivacyReport {
  if (options.meetingId !== undefined && (typeof options.meetingId !== 'string' || options.meetingId === '')) {
    throw new TypeError('meetingId must be a non-empty string');
  }
  for (const name of ['since', 'now'] as const) {
    const d = options[name];
    if (d !== undefined && (!(d instanceof Date) || Number.isNaN(d.getTime()))) throw new TypeError(`${name} must be a valid Date`);
  }
  const now = (options.now ?? new Date()).getTime();
  const since = options.since?.getTime();
  const filter = {
    ...(options.meetingId === undefined ? {} : { meetingId: options.meetingId }),
    ...(since === undefined ? {} : { since }),
  };
  const report: PrivacyReport = {
    generatedAt: new Date(now),
    outboxPath: store.path,
    filter: {
      ...(options.meetingId === undefined ? {} : { meetingId: options.meetingId }),
      ...(options.since ? { since: options.since } : {}),
    },
    disclosures: store.disclosures(filter).map(disclosure),
    pending: store.undelivered(filter).map((u) => ({
      meetingId: u.meetingId,
      sink: u.sink,
      kind: u.kind,
      sequence: u.sequence,
      fields: eventFieldPaths(u.payload),
      createdAt: u.createdAt,
      attempts: u.attempts,
    })),
    media: store.allPlacements(filter).map((p) => ({
      meetingId: p.meetingId,
      region: p.region,
      workerId: p.workerId,
      from: p.from,
      ...(p.to ? { to: p.to } : {}),
      ...(p.endReason ? { endReason: p.endReason } : {}),
    })),
    held: [],
    purged: store.purges(filter),
  };
  if (options.meetingId !== undefined) {
    const storedAs = store.storedIdOf(options.meetingId);
    report.meeting = { meetingId: options.meetingId, storedAs, pseudonymised: storedAs !== options.meetingId };
  }

  const dueOf = (m: MeetingHoldings): { at: { dueAt?: Date }; due: string } => {
    const dueAt = m.endedAt ? new Date(m.endedAt.getTime() + m.retentionDays * DAY_MS) : undefined;
    const days = `${m.retentionDays} day${m.retentionDays === 1 ? '' : 's'}`;
    const due = dueAt
      ? dueAt.getTime() <= now
        ? 'due now (purged by the next run)'
        : `${days} after the meeting ended`
      : `${days} after the meeting ends`;
    return { at: dueAt ? { dueAt } : {}, due };
  };
  const holderNames = new Set((options.holders ?? []).map((h) => h.name));
  const clear = new Map<string, MeetingHoldings>();
  for (const m of store.holdings(options.meetingId === undefined ? {} : { meetingId: options.meetingId })) {
    // A pseudonymised meeting holds nothing personal any more (counts, times and regions only).
    if (isPseudonym(m.meetingId)) continue;
    clear.set(m.meetingId, m);
    const { at, due } = dueOf(m);
    if (m.events > 0) {
      report.held.push({
        meetingId: m.meetingId,
        store: 'outbox',
        what: `events (${m.kinds.join(', ')})`,
        items: m.events,
        ...at,
        due: m.undelivered > 0 ? `${m.undelivered} undelivered: after delivery, and not before ${at.dueAt ? 'the due date' : 'the end'}` : due,
      });
    }
    if (m.auditIdentities > 0) {
      report.held.push({ meetingId: m.meetingId, store: 'audit', what: 'actor and target identities of host actions', items: m.auditIdentities, ...at, due });
    }
    report.held.push({
      meetingId: m.meetingId,
      store: 'meeting-id',
      what: 'meeting id in the meetings, audit and placements tables (then replaced by its pseudonym)',
      items: 1 + m.placements,
      ...at,
      due: m.undelivered > 0 ? 'once every event is delivered and purged' : due,
    });
    for (const target of options.purgeTargets ?? []) {
      if (holderNames.has(target)) continue;
      report.held.push({ meetingId: m.meetingId, store: target, what: 'what this store received of the meeting', items: 0, ...at, due });
    }
  }
  // Stores that list their holdings: each item with its field names, due when the outbox's
  // retention rule says (the one rule for every store).
  for (const holder of options.holders ?? []) {
    for (const h of holder.heldData()) {
      if (options.meetingId !== undefined && h.meetingId !== options.meetingId) continue;
      const m = clear.get(h.meetingId);
      const { at, due } = m
        ? dueOf(m)
        : store.isPseudonymised(h.meetingId)
          ? { at: {}, due: 'overdue: the outbox purged the meeting; this store is purged when the adapter starts or runs next' }
          : { at: {}, due: 'not in the outbox (the meeting never ran here): no retention date' };
      report.held.push({ meetingId: h.meetingId, store: holder.name, what: h.what, fields: [...h.fields], items: h.items, ...at, due });
    }
  }
  // Purges the other stores have not confirmed yet: the clear id is held for them.
  for (const q of store.queuedPurges()) {
    if (options.meetingId !== undefined && q.meetingId !== options.meetingId) continue;
    report.held.push({
      meetingId: q.meetingId,
      store: q.target,
      what: `the meeting's data at ${q.target}, and its id in the purge queue`,
      items: 1,
      dueAt: q.queuedAt,
      due: q.attempts > 0 ? `overdue: ${q.attempts} failed attempt(s) (${q.lastError ?? 'no reason'}), retried by the next run` : 'purge running',
    });
  }
  return report;
}

/**
 * Opens the outbox at `outboxPath` (it must exist: a report never creates one), builds the report
 * and closes it again.
 */
export function privacyReportOf(outboxPath: string, options: PrivacyReportOptions & { pseudonymKeyPath?: string } = {}): PrivacyReport {
  if (!existsSync(outboxPath)) throw new C4vError('NOT_FOUND', `no control-plane outbox at ${outboxPath}`);
  const store = new ControlPlaneStore(outboxPath, options.pseudonymKeyPath ? { pseudonymKeyPath: options.pseudonymKeyPath } : {});
  try {
    return privacyReport(store, options);
  } finally {
    store.close();
  }
}

// ------------------------------------------------------------------------------------------------
// The terminal rendering

const iso = (d: Date | undefined): string => (d ? d.toISOString().replace('.000Z', 'Z') : '-');

function table(headers: string[], rows: string[][]): string {
  if (rows.length === 0) return '  (none)\n';
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => '  ' + cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ') + '\n';
  return line(headers) + line(widths.map((w) => '-'.repeat(w))) + rows.map(line).join('');
}

/**
 * The report as text tables for a terminal. Disclosures are grouped by meeting, sink and message
 * kind (how many, first and last delivery, every field name that occurred); `--json` has each one.
 */
export function formatPrivacyReport(report: PrivacyReport): string {
  const groups = new Map<string, { d: ReportDisclosure; n: number; first: Date; last: Date; fields: Set<string> }>();
  for (const d of report.disclosures) {
    const key = `${d.meetingId}\0${d.sink}\0${d.kind}`;
    const g = groups.get(key);
    if (!g) groups.set(key, { d, n: 1, first: d.deliveredAt!, last: d.deliveredAt!, fields: new Set(d.fields) });
    else {
      g.n += 1;
      g.last = d.deliveredAt!;
      for (const f of d.fields) g.fields.add(f);
    }
  }
  const filter = [
    report.filter.meetingId ? `meeting ${report.filter.meetingId}` : 'all meetings',
    report.filter.since ? `since ${iso(report.filter.since)}` : '',
  ].filter(Boolean);
  let out = `Privacy report, ${iso(report.generatedAt)} (${filter.join(', ')})\nOutbox: ${report.outboxPath}\n`;
  if (report.meeting) {
    out += report.meeting.pseudonymised
      ? `Meeting ${report.meeting.meetingId}: past retention, kept only as ${report.meeting.storedAs}\n`
      : `Meeting ${report.meeting.meetingId}: within retention (held in clear)\n`;
  }
  out += '\nWhat left for which sink (field names only, never values)\n';
  out += table(
    ['meeting', 'sink', 'message', 'events', 'first delivered', 'last delivered', 'fields'],
    [...groups.values()].map((g) => [g.d.meetingId, g.d.sink, g.d.kind, String(g.n), iso(g.first), iso(g.last), [...g.fields].join(', ')]),
  );
  out += '\nWaiting to leave\n';
  out += table(
    ['meeting', 'sink', 'message', 'seq', 'stored', 'attempts', 'fields'],
    report.pending.map((p) => [p.meetingId, p.sink, p.kind, String(p.sequence), iso(p.createdAt), String(p.attempts ?? 0), p.fields.join(', ')]),
  );
  out += '\nWhere the media ran\n';
  out += table(
    ['meeting', 'region', 'worker', 'from', 'to', 'ended because'],
    report.media.map((m) => [m.meetingId, m.region, String(m.workerId), iso(m.from), iso(m.to), m.endReason ?? (m.to ? '-' : 'running')]),
  );
  out += '\nPersonal data still held\n';
  out += table(
    ['meeting', 'store', 'items', 'due for purge', 'rule', 'what'],
    report.held.map((h) => [h.meetingId, h.store, h.items > 0 ? String(h.items) : '-', h.dueAt ? iso(h.dueAt) : '-', h.due, h.fields ? `${h.what}: ${h.fields.join(', ')}` : h.what]),
  );
  out += '\nPurged\n';
  out += table(
    ['meeting', 'store', 'at', 'items', 'what'],
    report.purged.map((p) => [p.meetingId, p.store, iso(p.at), String(p.items), p.detail]),
  );
  return out;
}
