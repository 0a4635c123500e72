import type { EgressReport } from '../sandbox/egress/proxy.js';

const MAX_LINES = 20;

/**
 * The install step's firewall report for people: each destination it was refused, why,
 * and how often; empty when nothing was refused. Destinations come from repository code,
 * so they are shown as code, never as links or markup.
 */
export function firewallSection(report: EgressReport | undefined): string[] {
  if (!report || report.refused.length === 0) return [];
  const total = report.refused.reduce((n, r) => n + r.count, 0);
  return [
    '### Firewall',
    `The install step was refused ${total} connection${total === 1 ? '' : 's'} (${report.allowed} to allowed registries went through):`,
    '',
    ...report.refused
      .slice(0, MAX_LINES)
      .map(
        (r) =>
          `- install tried \`${r.destination.replace(/[`\r\n]/g, "'")}\` — ${r.reason}${r.count > 1 ? ` (${r.count} times)` : ''}`,
      ),
    ...(report.refused.length > MAX_LINES
      ? [`- and ${report.refused.length - MAX_LINES} more destinations (in the job's trace)`]
      : []),
    '',
  ];
}
