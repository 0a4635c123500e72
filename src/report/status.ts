import type { Plan } from '../agent/tools/submit-plan.js';
/** Marks the app's status comment so it can be found and edited in place. */
export const STATUS_MARKER = '<!-- issue-agent:status -->';

export type StatusPhase = 'queued' | 'scoping' | 'planning' | 'coding' | 'validating' | 'delivering' | 'done' | 'stuck';

export interface StatusState {
  phase: StatusPhase;
  /** For `stuck`: the working phase the job was in when it stopped. */
  stoppedAt?: StatusPhase;
  round?: { n: number; of: number };
  planSummary?: string;
  pullUrl?: string;
  /** For `stuck`: why, and the failing command when there is one. */
  reason?: string;
  failingCommand?: string;
  failureExcerpt?: string;
  spend?: string;
}

const ORDER: StatusPhase[] = ['scoping', 'planning', 'coding', 'validating', 'delivering'];
const LABEL: Record<StatusPhase, string> = {
  queued: 'queued',
  scoping: 'scoping',
  planning: 'planning',
  coding: 'coding',
  validating: 'validating',
  delivering: 'delivering',
  done: 'done',
  stuck: 'stopped',
};

/** A code fence long enough that the text's own backticks cannot close it. */
export function fence(text: string): string {
  const longest = Math.max(2, ...[...text.matchAll(/`+/g)].map((m) => m[0].length));
  const ticks = '`'.repeat(longest + 1);
  return `${ticks}\n${text}\n${ticks}`;
}

/** The one status comment of a job, rendered from its state. */
export function statusComment(s: StatusState): string {
  const head =
    s.phase === 'done'
      ? `✅ done: ${s.pullUrl ? `opened ${s.pullUrl}` : 'finished'}`
      : s.phase === 'stuck'
        ? `⚠️ stopped without a pull request: ${s.reason ?? 'see below'}`
        : s.phase === 'queued'
          ? '👀 queued: a worker will pick this up shortly'
          : `⏳ working on it: ${LABEL[s.phase]}${s.phase === 'validating' && s.round ? ` (round ${s.round.n}/${s.round.of})` : ''}…`;
  const stopped = s.phase === 'stuck' ? ORDER.indexOf(s.stoppedAt ?? 'planning') : -1;
  const current = s.phase === 'stuck' ? stopped : ORDER.indexOf(s.phase);
  const checklist = ORDER.map((p, i) => {
    const doneMark = s.phase === 'done' || (current >= 0 && i < current);
    const label = p === 'validating' && s.round ? `${p} (round ${s.round.n}/${s.round.of})` : p;
    const marker = i !== current ? '' : s.phase === 'stuck' ? ' ✗ stopped here' : ' ← now';
    return `- [${doneMark ? 'x' : ' '}] ${label}${marker}`;
  });
  const parts = [STATUS_MARKER, `**issue-agent** ${head}`, '', ...checklist];
  if (s.planSummary) parts.push('', `**Plan:** ${s.planSummary}`);
  if (s.phase === 'stuck' && s.failingCommand) parts.push('', `**Failing command:** \`${s.failingCommand}\``);
  if (s.phase === 'stuck' && s.failureExcerpt) parts.push('', fence(s.failureExcerpt));
  if (s.phase === 'stuck') parts.push('', 'No pull request was opened. A maintainer can fix what is described above, clarify the issue, and re-add the `agent` label to try again.');
  if (s.spend) parts.push('', `<sub>spend: ${s.spend}</sub>`);
  return parts.join('\n');
}

/** The questions that would make a vague issue a bounded task: the job's one comment. */
export function questionsComment(questions: string[], author: string): string {
  return [
    STATUS_MARKER,
    '**issue-agent** ❓ needs more information before it can start',
    '',
    `@${author}, this issue is not yet a task with a clear, checkable outcome. Answers to these would make it one:`,
    '',
    ...questions.map((q, i) => `${i + 1}. ${q}`),
    '',
    'Reply in a comment; then someone with write access re-adds the `agent` label and the job starts with your answers.',
  ].join('\n');
}

/** A plan that waits for a writer's go: what would change and why. */
export function checkpointComment(plan: Plan, reasons: string[], spend: string): string {
  return [
    STATUS_MARKER,
    '**issue-agent** ✋ stopped after planning: here is what I would change and why',
    '',
    `It stopped because ${reasons.join('; ')}.`,
    '',
    `**Plan:** ${plan.summary}`,
    '',
    ...plan.steps.map((s, i) => `${i + 1}. ${s}`),
    '',
    `Files: ${plan.files_to_change.map((f) => `\`${f}\``).join(', ')} (about ${plan.estimated_changed_lines} changed lines, confidence ${plan.confidence})`,
    '',
    `Verification: ${plan.verification}`,
    '',
    'To go ahead with this plan, someone with write access re-adds the `agent` label; the job then starts from this plan. To change course, say so in a comment first.',
    '',
    `<sub>spend: ${spend}</sub>`,
  ].join('\n');
}
