import { existsSync } from 'node:fs';
import { loadConfig } from '../../gateway/config.js';
import { openDefinitionStore } from '../../lib/store/DefinitionStore.js';
import { formatPrivacyReport, privacyReportOf } from '../../lib/privacy/report.js';
import { UsageError, type CliCommand } from './types.js';

export const privacy: CliCommand = {
  name: 'privacy',
  summary: 'privacy report: what left for which sink, where media ran, what is held and purged',
  usage: `usage: c4v-media privacy report [--meeting ID] [--since DATE] [--json] [--outbox FILE] [--config FILE]

Reads the control-plane outbox and audit record (also while the server runs) and prints, for a data
protection officer: which events left for which sink (field names only, never values) and when;
where the media ran (regions, workers); which personal data is still held and when each item is due
for purge; what was purged and when.

  --meeting ID    only this meeting (found also after retention replaced its id by a pseudonym)
  --since DATE    only what happened at or after DATE (ISO 8601, e.g. 2026-12-01 or 2026-12-01T09:00Z)
  --json          the full report as JSON (every event), instead of tables
  --outbox FILE   the outbox (default: controlPlane.outboxPath of the configuration)
  --config FILE   YAML or JSON configuration (default: $C4V_CONFIG, else the embedded defaults)`,

  async run(args) {
    if (args[0] !== 'report') throw new UsageError(args[0] === undefined ? 'missing subcommand: report' : `unknown subcommand ${args[0]}`);
    let file = process.env.C4V_CONFIG || undefined;
    let outbox: string | undefined;
    let meetingId: string | undefined;
    let since: Date | undefined;
    let json = false;
    const value = (i: number, flag: string): string => {
      const v = args[i];
      if (v === undefined || v.startsWith('--')) throw new UsageError(`${flag} needs a value`);
      return v;
    };
    for (let i = 1; i < args.length; i++) {
      const a = args[i]!;
      const [flag, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
      const take = (): string => inline ?? value(++i, flag);
      if (flag === '--json' && inline === undefined) json = true;
      else if (flag === '--meeting') meetingId = take();
      else if (flag === '--outbox') outbox = take();
      else if (flag === '--config') file = take();
      else if (flag === '--since') {
        const text = take();
        const d = new Date(text);
        if (!/^\d{4}-\d{2}-\d{2}/.test(text) || Number.isNaN(d.getTime())) throw new UsageError(`--since: expected an ISO 8601 date, got ${JSON.stringify(text)}`);
        since = d;
      } else throw new UsageError(`unknown argument ${a}`);
    }
    const config = outbox ? undefined : loadConfig({ ...(file ? { file } : {}), env: process.env });
    const cp = config?.controlPlane;
    const outboxPath = outbox ?? cp!.outboxPath;
    // The operator API's definition store (by default in the outbox file itself) is listed too:
    // what it holds per meeting (field names) and, in the purge record, what was purged there.
    const definitionsPath = config ? (config.api.enabled ? config.api.storePath || outboxPath : undefined) : outboxPath;
    const definitions = definitionsPath && existsSync(definitionsPath) && existsSync(outboxPath) ? openDefinitionStore(definitionsPath) : undefined;
    try {
      const report = privacyReportOf(outboxPath, {
        ...(meetingId === undefined ? {} : { meetingId }),
        ...(since ? { since } : {}),
        ...(cp?.pseudonymKeyPath ? { pseudonymKeyPath: cp.pseudonymKeyPath } : {}),
        ...(cp?.purgeFile && cp.filePath ? { purgeTargets: ['file'] } : {}),
        ...(definitions ? { holders: [definitions] } : {}),
      });
      process.stdout.write(json ? JSON.stringify(report, null, 2) + '\n' : formatPrivacyReport(report));
    } finally {
      definitions?.close();
    }
    return 0;
  },
};
