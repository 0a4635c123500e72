import type { Plan } from '../agent/tools/submit-plan.js';
import type { CheckResult, ValidationReport } from '../stages/validate.js';
import { firewallSection } from './firewall.js';
import { cell, inlineCode } from './status.js';

function resultLine(r: CheckResult): string {
  const verdict = r.ok ? '✅ passed' : r.timedOut ? '⏱️ timed out' : `❌ failed (exit ${r.exitCode})`;
  // The command is the repository's text: a code span it cannot close, in a cell it cannot end.
  return `| ${cell(inlineCode(r.command, 1000))} | ${verdict} | ${(r.durationMs / 1000).toFixed(1)} s |`;
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
  /** The image the commands ran on, when the repository names one. */
  environment?: PrEnvironment;
  baseline?: ValidationReport;
  final: ValidationReport;
  diffStat: string;
  spend: string;
  /** One line per tool: calls, right first try, recovered, failed. */
  toolCalls?: string[];
  rounds: number;
}

export interface PrEnvironment {
  /** As the repository wrote it, and pinned by the digest the job ran on. */
  image: string;
  pinned: string;
  /** The file that named it. */
  from: string;
  /** Setup commands that ran in this job (none when the set-up environment was reused). */
  setup: CheckResult[];
  /** Set up by an earlier job with the same image, commands and manifests. */
  reused: boolean;
  /** Devcontainer settings that were not applied. */
  ignored: string[];
}

function environmentSection(e: PrEnvironment | undefined): string[] {
  if (!e) return [];
  const lines = [
    '### Environment',
    `${inlineCode(e.image, 300)} from ${inlineCode(e.from)}, run as ${inlineCode(e.pinned, 300)}`,
  ];
  if (e.reused)
    lines.push('', 'Its setup was reused from an earlier job (same image, setup commands and dependency manifests).');
  if (e.ignored.length)
    lines.push('', `Not applied from the devcontainer: ${e.ignored.map((k) => `\`${k}\``).join(', ')}.`);
  return [...lines, ''];
}

/** The pull request body: summary, plan, checks with results, spend, and the closing keyword. */
export function prBody(p: PrBodyInput): string {
  const before = p.baseline?.results ?? [];
  const rows = p.final.results.map((r) => {
    const b = before.find((x) => x.name === r.name);
    return `${resultLine(r)} ${b ? (b.ok ? 'passed' : 'failed') : '—'} |`;
  });
  if (p.install)
    rows.unshift(
      `${resultLine(p.install)} (install${p.install.reused ? ', reused from an earlier job' : p.install.egress ? ', registries only' : ''}) |`,
    );
  rows.unshift(...(p.environment?.setup ?? []).map((r) => `${resultLine(r)} (setup) |`));
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
    ...environmentSection(p.environment),
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
