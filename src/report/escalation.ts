import type { EgressReport } from '../sandbox/egress/proxy.js';
import { firewallSection } from './firewall.js';
import { fence } from '../util/fence.js';
import { inlineCode, STATUS_MARKER } from './status.js';

export interface EscalationReport {
  /** What was asked: the acceptance criteria, or the issue title when there are none yet. */
  asked: string[];
  /** What was tried, one line each: the plan's steps and each round's outcome. */
  tried: string[];
  reason: string;
  evidence: string;
  failingCommand?: string;
  failureExcerpt?: string;
  filesTouched: string[];
  /** The install step's firewall report: destinations its egress refused. */
  firewall?: EgressReport;
  /** The pushed work-in-progress branch, when there was a diff. */
  wip?: { branch: string; url: string };
  spend: { modelCalls: number; inputTokens: number; outputTokens: number; costUsd: number; seconds: number };
  /** The job's kind: on a pull request (a revision, a CI fix) nothing was pushed, rather than no PR opened. */
  kind?: 'issue' | 'revise' | 'ci-fix';
}

/** What a maintainer can do next, specific to why the job stopped. */
export function nextSteps(
  reason: string,
  e: Pick<EscalationReport, 'wip' | 'failingCommand' | 'firewall' | 'kind'>,
): string[] {
  const relabel = 're-add the `agent` label to try again';
  const fromWip = e.wip ? `continue by hand from \`${e.wip.branch}\`` : 'make the change by hand';
  const retryOnPull =
    'comment `/agent retry` on the pull request, saying what to do; the app then watches its checks again';
  if (e.kind === 'ci-fix') {
    const check = e.failingCommand ? inlineCode(e.failingCommand, 500) : 'the failing check';
    switch (reason) {
      case 'same-failure':
        return [
          `${check} failed the same way after the app's fix: fix it on the pull request's branch by hand`,
          `or ${retryOnPull}`,
        ];
      case 'ci-fix-bound':
        return [
          `fix ${check} on the pull request's branch by hand`,
          `or raise \`ci.max_fix_attempts\` in \`.github/agent.yml\` and ${retryOnPull}`,
        ];
      case 'ci-unclear':
        return [
          `if ${check} is flaky or fails on the base branch too, re-run it or fix the base branch; the app watches the next result`,
          `if the pull request's change caused it, ${retryOnPull}`,
        ];
      default:
        return [retryOnPull];
    }
  }
  switch (reason) {
    case 'same-failure':
    case 'rounds-exhausted':
    case 'no-progress':
      return [
        `${fromWip}: the failing check is ${e.failingCommand ? inlineCode(e.failingCommand, 500) : '`shown above`'}`,
        `say in the issue which behaviour is right when the test and the code disagree, then ${relabel}`,
        'raise `max_rounds` in `.github/agent.yml` if more attempts would likely help',
      ];
    case 'budget-turns':
    case 'budget-tokens':
    case 'budget-cost':
    case 'timeout':
      return [
        'split the issue into smaller issues, each with one verifiable outcome',
        `raise the matching limit under \`budgets:\` in \`.github/agent.yml\` (dollars only up to the app operator's MAX_JOB_COST_USD and MAX_DAILY_COST_USD), then ${relabel}`,
        fromWip,
      ];
    case 'unpriced-model':
      return [
        `name a model with a known price under \`models:\` in \`.github/agent.yml\` (or ask the app's operator to), then ${relabel}`,
      ];
    case 'retry-limit':
    case 'repeated-action':
    case 'cycle':
    case 'monologue':
      return [`name the file and function to change in the issue, then ${relabel}`, fromWip];
    case 'not-authorised':
      return [
        'a person with write access to the repository re-adds the `agent` label, if the work should still be done',
      ];
    case 'edited-after-trigger':
      return [
        'a person with write access reads the issue as it is now and, if it is the task to do, re-adds the `agent` label (or comments `/agent retry`)',
      ];
    case 'push-rejected':
      return [`delete or merge the existing branch, then ${relabel}`];
    case 'install-failed':
      if (e.firewall?.refused.length) {
        return [
          `if the install needs a host the firewall refused, ask the app's operator to allow it (SANDBOX_EGRESS_ALLOW_EXTRA), or vendor the dependency, then ${relabel}`,
          `fix the install or check commands under \`commands:\` in \`.github/agent.yml\`, then ${relabel}`,
        ];
      }
      return [`fix the install or check commands under \`commands:\` in \`.github/agent.yml\`, then ${relabel}`];
    case 'environment-unavailable':
      return [
        `name an image the worker can pull under \`environment:\` in \`.github/agent.yml\` (or in the devcontainer it reads); a private registry needs a login in the app operator's REGISTRY_AUTH_FILE, then ${relabel}`,
      ];
    case 'setup-failed':
      return [
        `fix the failing command under \`environment: setup:\` in \`.github/agent.yml\` (or the devcontainer's create commands): run it in the image to see it pass, then ${relabel}`,
      ];
    case 'no-checks':
    case 'invalid-config':
      return [`fix the install or check commands under \`commands:\` in \`.github/agent.yml\`, then ${relabel}`];
    case 'model-refused':
    case 'model-unavailable':
      return [`check the model key, model ids and the provider status, then ${relabel}`];
    default:
      return [fromWip, relabel];
  }
}

/** The escalation: one comment, readable in under a minute. */
export function escalationComment(e: EscalationReport): string {
  const s = e.spend;
  const parts = [
    STATUS_MARKER,
    `**issue-agent** ⚠️ stopped without ${e.kind === 'revise' || e.kind === 'ci-fix' ? 'pushing' : 'a pull request'}: **${e.reason}**`,
    '',
    '### What was asked',
    ...e.asked.map((a) => `- ${a}`),
    '',
    '### What was tried',
    ...(e.tried.length ? e.tried.map((t) => `- ${t}`) : ['- nothing yet: it stopped before changing code']),
    '',
    '### Where it stuck',
    `${e.reason}: ${e.evidence}`,
  ];
  // A command is the repository's text: a code span it cannot close.
  if (e.failingCommand) parts.push('', `**Failing command:** ${inlineCode(e.failingCommand, 500)}`);
  if (e.failureExcerpt) parts.push('', fence(e.failureExcerpt));
  const firewall = firewallSection(e.firewall);
  if (firewall.length > 0) parts.push('', ...firewall.slice(0, -1));
  parts.push(
    '',
    '### Files touched',
    ...(e.filesTouched.length ? e.filesTouched.map((f) => `- \`${f}\``) : ['- none']),
  );
  if (e.wip) parts.push('', `Work in progress: [\`${e.wip.branch}\`](${e.wip.url})`);
  parts.push('', '### What to decide', ...nextSteps(e.reason, e).map((n, i) => `${i + 1}. ${n}`));
  parts.push(
    '',
    `<sub>spend: ${s.modelCalls} model calls, ${s.inputTokens.toLocaleString('en-US')} input and ${s.outputTokens.toLocaleString('en-US')} output tokens, $${s.costUsd.toFixed(4)}, ${Math.round(s.seconds)} s</sub>`,
  );
  return parts.join('\n');
}
