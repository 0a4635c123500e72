import type { ValidationReport } from '../stages/validate.js';
import type { Plan } from '../agent/tools/submit-plan.js';
import { fence } from '../util/fence.js';
import { sanitise } from '../util/sanitise.js';

/** Marks the app's status comment so it can be found and edited in place. */
export const STATUS_MARKER = '<!-- issue-agent:status -->';

export type StatusPhase =
  | 'queued'
  | 'scoping'
  | 'planning'
  | 'coding'
  | 'validating'
  | 'delivering'
  | 'done'
  | 'stuck'
  /** A person ran `/agent stop`. */
  | 'stopped'
  /** Scope asked questions; the job waits for answers. */
  | 'needs-info';

/** Phases after which the comment no longer changes: write these at once (`StatusWriter.flush`). */
export const TERMINAL_PHASES: ReadonlySet<StatusPhase> = new Set<StatusPhase>([
  'done',
  'stuck',
  'stopped',
  'needs-info',
]);

export function isTerminal(phase: StatusPhase): boolean {
  return TERMINAL_PHASES.has(phase);
}

/** One validation command's result: before the change (the baseline) and after it. */
export interface StatusCheck {
  command: string;
  before?: boolean;
  after?: boolean;
}

export interface StatusState {
  phase: StatusPhase;
  /**
   * `revise`: review feedback on the app's own PR; the checklist is then code, validate, push.
   * `ci-fix`: failing checks on the app's own PR; the comment is the PR's one CI comment.
   */
  kind?: 'issue' | 'revise' | 'ci-fix';
  /** For `ci-fix`: the PR's CI as the app last saw it. */
  ci?: CiStatus;
  /** For `revise`: how many reviews the job addresses. */
  reviewCount?: number;
  /** For `stuck`, `stopped` and `needs-info`: the working phase the job was in when it ended. */
  stoppedAt?: StatusPhase;
  /** For `stopped`: the login of who ran `/agent stop`. */
  stoppedBy?: string;
  round?: { n: number; of: number };
  planSummary?: string;
  /** The latest validation results. */
  checks?: StatusCheck[];
  /** The PR: opened (issue jobs, when done) or being revised. */
  pullUrl?: string;
  /** For `stuck` (and optionally `needs-info`): why, and the failing command when there is one. */
  reason?: string;
  failingCommand?: string;
  failureExcerpt?: string;
  /** The escalation or questions, when they are a separate comment. */
  escalationUrl?: string;
  /** Where the commands run, when the repository names an image: the image and what is being done with it. */
  environment?: { image: string; state: 'pulling' | 'setting up' | 'ready'; cached?: boolean };
  spend?: string;
}

/** A pull request's CI, as its CI comment shows it. */
export interface CiStatus {
  /** The head commit the comment is about. */
  sha: string;
  /** The checks that failed on it. */
  failing: string[];
  /** What the app does about them: reads them, re-runs jobs that failed on a runner error, or fixes the code. */
  action?: 'reading' | 'rerunning' | 'fixing';
  /** The fix attempt of this job, of the PR's bound. */
  attempt?: { n: number; of: number };
  /** The jobs re-run. */
  rerun?: string[];
  /** The commit pushed to fix them. */
  pushed?: string;
  /** A newer commit became the head before the job could act. */
  superseded?: boolean;
  /** Why the job pushed nothing after all (the watch was stopped, the checks passed meanwhile). */
  halted?: string;
  /** Every check passed: how many, and the fixes and CI-fix jobs it took since it was last green. */
  green?: { passed: number; fixes: number; rounds: number };
}

type Stage = 'scoping' | 'planning' | 'coding' | 'validating' | 'delivering';
const ISSUE_STAGES: Stage[] = ['scoping', 'planning', 'coding', 'validating', 'delivering'];
const REVISE_STAGES: Stage[] = ['coding', 'validating', 'delivering'];
const STAGE_LABEL: Record<Stage, string> = {
  scoping: 'scope',
  planning: 'plan',
  coding: 'code',
  validating: 'validate',
  delivering: 'deliver',
};

// Bounds that keep the comment readable on a phone, whatever the model or a person wrote.
const MAX_SUMMARY = 280;
const MAX_REASON = 300;
const MAX_COMMAND = 80;
const MAX_CHECKS = 8;
const MAX_EXCERPT_LINES = 20;

// Invisible and bidi characters could make rendered text read differently from what it is.
const INVISIBLE = /[\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/g;

/**
 * One line of text: secrets redacted first (escaping would hide them from the sanitiser's
 * patterns), whitespace and control characters collapsed, cut to `max` characters.
 */
function oneLine(text: string, max: number): string {
  const flat = sanitise(text)
    .replace(INVISIBLE, '')
    .replace(/[\s\u0000-\u001f\u007f]+/g, ' ')
    .trim();
  const chars = [...flat];
  return chars.length <= max
    ? flat
    : `${chars
        .slice(0, max - 1)
        .join('')
        .trimEnd()}…`;
}

/**
 * Text from a person or a model as one line of inert markdown: no HTML, links, emphasis,
 * code spans or table cells can start inside it. Safe in a table cell as it is.
 */
export function plain(text: string, max = MAX_REASON): string {
  return oneLine(text, max).replace(/[\\`*_[\]<>|~&]/g, '\\$&');
}

/** Inline code whose backtick run is longer than any inside, so the text cannot close it. */
export function inlineCode(text: string, max = MAX_COMMAND): string {
  const flat = oneLine(text, max);
  const longest = Math.max(0, ...[...flat.matchAll(/`+/g)].map((m) => m[0].length));
  const ticks = '`'.repeat(longest + 1);
  // A leading or trailing backtick would join the delimiter; CommonMark strips one space each side.
  const pad = flat === '' || flat.startsWith('`') || flat.endsWith('`') ? ' ' : '';
  return `${ticks}${pad}${flat}${pad}${ticks}`;
}

/**
 * Makes a table cell's pipes literal. Tables split rows before code spans are parsed, so
 * a `|` needs an odd run of backslashes before it, even inside backticks.
 */
export function cell(markdown: string): string {
  return markdown.replace(/(\\*)\|/g, (_m, slashes: string) => `${slashes}${slashes.length % 2 === 0 ? '\\' : ''}|`);
}

/** A URL GitHub autolinks (a PR URL renders as `#12`), or inert text when it is not one. */
function link(url: string): string {
  return /^https?:\/\/[^\s<>()[\]`|*_~\\]+$/.test(url) ? url : inlineCode(url, 200);
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function isStage(p: StatusPhase | undefined): p is Stage {
  return p !== undefined && (ISSUE_STAGES as StatusPhase[]).includes(p);
}

function roundText(s: StatusState): string {
  return s.round ? ` (round ${s.round.n}/${s.round.of})` : '';
}

function short(sha: string): string {
  return inlineCode(sha.slice(0, 7), 10);
}

function names(list: string[], max = 5): string {
  const shown = list.slice(0, max).map((n) => inlineCode(n, 60));
  return `${shown.join(', ')}${list.length > max ? ` and ${list.length - max} more` : ''}`;
}

/** The CI comment's first line: what CI says and what the app does about it. */
function ciHeadline(s: StatusState, ci: CiStatus): string {
  if (ci.green) {
    const after = ci.green.rounds > 0 ? ` (after ${plural(ci.green.rounds, 'CI-fix round')})` : '';
    return `✅ all checks passed on ${short(ci.sha)}: ${plural(ci.green.passed, 'check')}${after}`;
  }
  const failing = `CI: ${plural(ci.failing.length, 'failing check')} on ${short(ci.sha)}`;
  switch (s.phase) {
    case 'done':
      if (ci.superseded) return `⏭️ ${failing}; a newer commit is the head, and its checks decide`;
      if (ci.halted) return `⏹️ ${failing}; nothing pushed: ${plain(ci.halted, 200)}`;
      if (ci.pushed) return `✅ ${failing}: pushed ${short(ci.pushed)} to fix it; waiting for CI`;
      if (ci.rerun?.length) return `🔁 ${failing}: re-ran ${names(ci.rerun)} (a runner error); waiting for CI`;
      return `✅ ${failing}: nothing left to do`;
    case 'stuck':
      return `⚠️ ${failing}; stopped without pushing: ${s.reason ? plain(s.reason) : 'see below'}`;
    case 'stopped':
      return `⏹️ ${failing}; stopped${s.stoppedBy ? ` by ${plain(s.stoppedBy, 60)}` : ''} with \`/agent stop\``;
    default: {
      const attempt = ci.attempt ? ` (attempt ${ci.attempt.n} of ${ci.attempt.of})` : '';
      if (ci.action === 'fixing') return `⏳ ${failing} — fixing${attempt}: ${s.phase}${roundText(s)}…`;
      if (ci.action === 'rerunning') return `⏳ ${failing} — re-running the jobs that failed on a runner error…`;
      return `⏳ ${failing} — reading the failures…`;
    }
  }
}

function headline(s: StatusState): string {
  if (s.kind === 'ci-fix' && s.ci) return ciHeadline(s, s.ci);
  const revise = s.kind === 'revise' || s.kind === 'ci-fix';
  const reviews = plural(Math.max(1, s.reviewCount ?? 1), 'review');
  const pr = s.pullUrl ? link(s.pullUrl) : undefined;
  switch (s.phase) {
    case 'queued':
      return revise
        ? `👀 queued: ${reviews}${pr ? ` on ${pr}` : ''}; a worker will pick this up shortly`
        : '👀 queued: a worker will pick this up shortly';
    case 'done':
      if (revise) return `✅ done: addressed ${reviews}${pr ? `, pushed to ${pr}` : ''}`;
      return `✅ done: ${pr ? `pull request ${pr}` : 'finished'}`;
    case 'stuck':
      return `⚠️ stopped without ${revise ? 'pushing' : 'a pull request'}: ${s.reason ? plain(s.reason) : 'see below'}`;
    case 'stopped':
      return `⏹️ stopped${s.stoppedBy ? ` by ${plain(s.stoppedBy, 60)}` : ''} with \`/agent stop\``;
    case 'needs-info':
      // Not "needs more information": the pipeline recognises its questions comment by that phrase.
      return `❓ waiting for answers before it can start${s.reason ? `: ${plain(s.reason)}` : ''}`;
    default: {
      const doing = `${s.phase}${s.phase === 'coding' || s.phase === 'validating' ? roundText(s) : ''}…`;
      return revise ? `⏳ addressing ${reviews}${pr ? ` on ${pr}` : ''}: ${doing}` : `⏳ working on it: ${doing}`;
    }
  }
}

function checklist(s: StatusState): string[] {
  const revise = s.kind === 'revise' || s.kind === 'ci-fix';
  const stages = revise ? REVISE_STAGES : ISSUE_STAGES;
  const ended = s.phase === 'stuck' || s.phase === 'stopped' || s.phase === 'needs-info';
  const at: StatusPhase | undefined = ended
    ? (s.stoppedAt ?? (s.phase === 'needs-info' ? 'scoping' : undefined))
    : s.phase;
  const current = isStage(at) ? stages.indexOf(at) : -1;
  const mark =
    s.phase === 'stuck'
      ? '✗ stuck here'
      : s.phase === 'stopped'
        ? '⏹ stopped here'
        : s.phase === 'needs-info'
          ? '❓ waiting here'
          : '← now';
  return stages.map((stage, i) => {
    const ticked = s.phase === 'done' || (current >= 0 && i < current);
    const name = revise && stage === 'delivering' ? 'push' : STAGE_LABEL[stage];
    const label = `${i === current ? `**${name}**` : name}${stage === 'validating' ? roundText(s) : ''}`;
    return `- [${ticked ? 'x' : ' '}] ${label}${i === current ? ` ${mark}` : ''}`;
  });
}

function mark(ok: boolean | undefined): string {
  return ok === undefined ? '–' : ok ? '✅' : '❌';
}

function checksTable(s: StatusState): string[] {
  const checks = s.checks ?? [];
  if (checks.length === 0) return [];
  const baseline = checks.some((c) => c.before !== undefined);
  const rows = checks.slice(0, MAX_CHECKS).map((c) => {
    const command = cell(inlineCode(c.command));
    return baseline ? `| ${command} | ${mark(c.before)} | ${mark(c.after)} |` : `| ${command} | ${mark(c.after)} |`;
  });
  const more = checks.length > MAX_CHECKS ? [`<sub>and ${checks.length - MAX_CHECKS} more</sub>`] : [];
  const title = `**Checks**${s.round && s.phase !== 'done' ? roundText(s) : ''}`;
  const header = baseline
    ? ['| check | before | after |', '| --- | :-: | :-: |']
    : ['| check | result |', '| --- | :-: |'];
  return [title, '', ...header, ...rows, ...more];
}

function excerpt(text: string): string {
  const lines = text.split('\n');
  if (lines.length <= MAX_EXCERPT_LINES) return fence(text);
  return fence(
    [...lines.slice(0, MAX_EXCERPT_LINES), `… ${lines.length - MAX_EXCERPT_LINES} lines omitted`].join('\n'),
  );
}

function environmentLine(e: NonNullable<StatusState['environment']>): string {
  const image = inlineCode(e.image, 200);
  if (e.state === 'ready') return `**Environment:** ${image}${e.cached ? ' (set up earlier, reused)' : ''}`;
  return `**Environment:** ${e.state} ${image}…`;
}

/** The one status comment of a job, rendered from its state: short enough to read on a phone. */
export function statusComment(s: StatusState): string {
  const revise = s.kind === 'revise' || s.kind === 'ci-fix';
  // A CI comment shows the code ⇄ validate checklist only while it fixes (or after it did).
  const steps = s.kind !== 'ci-fix' || s.ci?.action === 'fixing' ? checklist(s) : [];
  const parts = [STATUS_MARKER, `**issue-agent** ${headline(s)}`, ...(steps.length ? ['', ...steps] : [])];
  const section = (lines: string[]) => {
    if (lines.length) parts.push('', ...lines);
  };
  if (s.kind === 'ci-fix' && s.ci && !s.ci.green && s.ci.failing.length)
    section([`**Failing:** ${names(s.ci.failing, 8)}`]);
  if (s.environment) section([environmentLine(s.environment)]);
  if (s.planSummary) section([`**Plan:** ${plain(s.planSummary, MAX_SUMMARY)}`]);
  section(checksTable(s));
  if (s.phase === 'stuck') {
    if (s.failingCommand) section([`**Failing command:** ${inlineCode(s.failingCommand)}`]);
    if (s.failureExcerpt) section([excerpt(s.failureExcerpt)]);
    if (s.escalationUrl) section([`What happened and what to decide: ${link(s.escalationUrl)}`]);
    section([
      revise
        ? 'Nothing was pushed. `/agent retry` on the pull request tries again.'
        : 'No pull request was opened. A maintainer can fix what is described above, clarify the issue, and re-add the `agent` label to try again.',
    ]);
  }
  if (s.phase === 'stopped')
    section([
      `Nothing more will run for this job${revise ? ' and nothing was pushed' : ''}. \`/agent retry\` starts a new attempt.`,
    ]);
  if (s.phase === 'needs-info' && s.escalationUrl) section([`The questions: ${link(s.escalationUrl)}`]);
  if (s.spend) section([`<sub>spend: ${plain(s.spend, 200)}</sub>`]);
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

/** The status comment's check rows: the baseline before the change and the latest run after it. */
export function checksOf(report: ValidationReport | undefined, baseline?: ValidationReport): StatusCheck[] {
  const commands = [...new Set([...(baseline?.results ?? []), ...(report?.results ?? [])].map((r) => r.command))];
  return commands.map((command) => ({
    command,
    before: baseline?.results.find((r) => r.command === command)?.ok,
    after: report?.results.find((r) => r.command === command)?.ok,
  }));
}
