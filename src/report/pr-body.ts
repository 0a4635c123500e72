import type { Plan } from '../agent/tools/submit-plan.js';
import type { CheckResult, ValidationReport } from '../stages/validate.js';
import { firewallSection } from './firewall.js';

function resultLine(r: CheckResult): string {
  const verdict = r.ok ? '✅ passed' : r.timedOut ? '⏱️ timed out' : `❌ failed (exit ${r.exitCode})`;
  return `| \`${r.command.replace(/\|/g, '\\|')}\` | ${verdict} | ${(r.durationMs / 1000).toFixed(1)} s |`;
}

export interface PrBodyInput {
  /** The GitHub issue the PR closes; none for a local task. */
  closes?: number;
  summary: string;
  acceptanceCriteria?: string[];
  plan: Plan;
  /** Files edited beyond the plan, with the reason given for each. */
  scopeRequests?: Array<{ path: string; reason: string }>;
  install?: CheckResult;
  baseline?: ValidationReport;
  final: ValidationReport;
  diffStat: string;
  spend: string;
  /** One line per tool: calls, right first try, recovered, failed. */
  toolCalls?: string[];
  rounds: number;
}

/** The pull request body: summary, plan, checks with results, spend, and the closing keyword. */
export function prBody(p: PrBodyInput): string {
  const before = p.baseline?.results ?? [];
  const rows = p.final.results.map((r) => {
    const b = before.find((x) => x.name === r.name);
    return `${resultLine(r)} ${b ? (b.ok ? 'passed' : 'failed') : '—'} |`;
  });
  if (p.install) rows.unshift(`${resultLine(p.install)} (install${p.install.egress ? ', registries only' : ''}) |`);
  return [
    p.summary,
    '',
    ...(p.closes !== undefined ? [`Closes #${p.closes}`, ''] : []),
    ...(p.acceptanceCriteria?.length
      ? ['### Acceptance criteria', ...p.acceptanceCriteria.map((c) => `- ${c}`), '']
      : []),
    '### Plan',
    p.plan.summary,
    '',
    ...p.plan.steps.map((s, i) => `${i + 1}. ${s}`),
    '',
    `Files: ${p.plan.files_to_change.map((f) => `\`${f}\``).join(', ')}`,
    '',
    ...(p.scopeRequests?.length
      ? ['Scope widened during the change:', ...p.scopeRequests.map((r) => `- \`${r.path}\`: ${r.reason}`), '']
      : []),
    '### Validation',
    `Run in a sandbox without network after ${p.rounds} round${p.rounds === 1 ? '' : 's'}:`,
    '',
    '| command | result | time | before the change |',
    '| --- | --- | --- | --- |',
    ...rows,
    '',
    ...firewallSection(p.install?.egress),
    '### Change',
    '```',
    p.diffStat.trim() || '(no files)',
    '```',
    '',
    ...(p.toolCalls?.length
      ? ['<details><summary>Tool calls</summary>', '', ...p.toolCalls.map((l) => `- ${l}`), '', '</details>', '']
      : []),
    `<sub>issue-agent · spend: ${p.spend}</sub>`,
  ].join('\n');
}
