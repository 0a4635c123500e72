import type { ApplicationFunction, Context } from 'probot';
import type { Logger } from 'pino';
import { GitHubRepo } from '../github/facade.js';
import type { AgentQueue } from '../queue/queue.js';
import { statusComment } from '../report/status.js';
import { checkLabelEvent, checkPermission, DEFAULT_TRIGGER_LABEL } from './triggers.js';
import { healthHandler } from './health.js';

export interface WebDeps {
  queue: AgentQueue;
  redisPing: () => Promise<boolean>;
  triggerLabel?: string;
  log: Logger;
  /** Work that outlives a webhook's answer; shutdown waits for it. */
  pending: PendingWork;
}

/** A set of in-flight promises that removes each one as it settles. */
export class PendingWork {
  private readonly inFlight = new Set<Promise<unknown>>();

  add(p: Promise<unknown>): void {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  async settled(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
  }
}

/**
 * The Probot app: read the event, check who may trigger, enqueue. No model calls, no
 * clones, no waiting on long work.
 */
export function agentApp(deps: WebDeps): ApplicationFunction {
  const triggerLabel = deps.triggerLabel ?? DEFAULT_TRIGGER_LABEL;
  return (app, { addHandler }) => {
    addHandler(healthHandler({ redisPing: deps.redisPing }));

    app.on('issues.labeled', async (context: Context<'issues.labeled'>) => {
      const { payload } = context;
      const log = deps.log.child({ delivery: context.id, repo: payload.repository.full_name, issue: payload.issue.number });
      const gate = checkLabelEvent({ label: payload.label?.name, sender: payload.sender, triggerLabel });
      if (!gate.run) {
        log.debug({ reason: gate.reason }, 'skipped');
        return;
      }
      if (payload.issue.pull_request) {
        log.info('skipped: the label is on a pull request, not an issue');
        return;
      }
      if (!payload.installation) {
        log.warn('skipped: event carries no installation');
        return;
      }
      const gh = new GitHubRepo(context.octokit, { owner: payload.repository.owner.login, repo: payload.repository.name });
      const allowed = checkPermission(payload.sender.login, await gh.permission(payload.sender.login));
      if (!allowed.run) {
        log.info({ reason: allowed.reason }, 'skipped');
        return;
      }
      const result = await deps.queue.enqueue({
        kind: 'issue',
        installationId: payload.installation.id,
        owner: gh.ref.owner,
        repo: gh.ref.repo,
        issueNumber: payload.issue.number,
        deliveryId: context.id,
        sender: payload.sender.login,
      });
      log.info({ result }, 'trigger handled');
      if (result.kind !== 'enqueued') return;
      // The acknowledgement is written after the webhook is answered: GitHub's write
      // throttling spaces writes a second apart, and a webhook must not wait on that.
      const issueNumber = payload.issue.number;
      const acknowledge = async () => {
        await gh.react(issueNumber, 'eyes');
        // A worker that started first and waited may already have made the comment.
        if (await deps.queue.statusRefs.claim(result.jobId)) {
          await deps.queue.statusRefs.set(result.jobId, await gh.comment(issueNumber, statusComment({ phase: 'queued' })));
        }
      };
      deps.pending.add(acknowledge().catch((err: unknown) => log.warn({ err }, 'could not acknowledge the trigger on the issue')));
    });
  };
}
