import type { ApplicationFunction, Context, Probot } from 'probot';
import type { Logger } from 'pino';
import { parseRepoConfig, REPO_CONFIG_PATH, RepoConfigError, triggerLabelOf, type RepoConfig } from '../config/repo-config.js';
import { GitHubRepo, LABEL_WORKING, type Permission } from '../github/facade.js';
import { TtlCache } from './ttl-cache.js';
import { KeyedSerial } from '../util/keyed-serial.js';
import { issueKey } from '../queue/jobs.js';
import type { Inbox } from '../queue/inbox.js';
import type { NewAction, WebAction } from './actions.js';
import type { PendingWork } from './pending.js';
import { configErrorComment } from '../report/config-error.js';
import { helpText, parseCommand } from './commands.js';
import { checkLabelEvent, checkPermission, isBot, isStateLabel, reviewAsksForChanges, DEFAULT_TRIGGER_LABEL, type Sender } from './triggers.js';
import { healthHandler, type HealthDeps } from './health.js';

const PERMISSION_TTL_MS = 60_000;
const CONFIG_TTL_MS = 30_000;

export interface WebDeps {
  /** Where a webhook's queue work is recorded before the answer (see `drain-thread.ts` for after). */
  inbox: Inbox<WebAction>;
  /** What `/healthz`, `/readyz` and `/metrics` answer from. */
  health: HealthDeps;
  log: Logger;
  /** Work that outlives a webhook's answer; shutdown waits for it. */
  pending: PendingWork;
}

interface Repository {
  name: string;
  full_name: string;
  default_branch: string;
  html_url: string;
  owner: { login: string };
}

/**
 * The Probot app: read the event, check who may trigger, record what it asks in the inbox,
 * answer. No model calls, no clones, no waiting on long work. The queue work (enqueue,
 * stop) runs from the inbox right after the answer, in order per thread, and survives a
 * crash of this process; what people see (reactions, the status comment, replies) follows
 * it: GitHub's write throttling spaces writes a second apart, and a webhook must not wait
 * on that.
 */
export function agentApp(deps: WebDeps): ApplicationFunction {
  return (app, { addHandler }) => {
    addHandler(healthHandler(deps.health));
    const identity = appIdentity(app);
    // Kept briefly so a burst of events costs no API calls before each answer: a changed
    // permission or config takes effect within these times (the worker reads the config
    // afresh at job start).
    const permissions = new TtlCache<Permission>(PERMISSION_TTL_MS);
    const configs = new TtlCache<RepoConfig | RepoConfigError>(CONFIG_TTL_MS);
    // Events of one issue or PR are recorded in the order they arrived: a `/agent retry`
    // still reading the config must not be overtaken by the `/agent stop` sent after it.
    const inOrder = new KeyedSerial();

    const later = deps.pending.later.bind(deps.pending);

    /** Who may trigger: a person (not a bot, not this app) with write access. */
    const mayTrigger = async (gh: GitHubRepo, sender: Sender, log: Logger): Promise<boolean> => {
      if (isBot(sender, (await identity()).slug)) {
        log.debug({ sender: sender.login }, 'skipped: sender is a bot');
        return false;
      }
      const permission = await permissions.get(`${gh.ref.owner}/${gh.ref.repo}:${sender.login}`.toLowerCase(), () => gh.permission(sender.login));
      const allowed = checkPermission(sender.login, permission);
      if (!allowed.run) log.info({ reason: allowed.reason }, 'skipped');
      return allowed.run;
    };

    /** The repository's config from its default branch, or why it cannot be used. */
    const readConfig = (gh: GitHubRepo, repository: Repository): Promise<RepoConfig | RepoConfigError> =>
      configs.get(`${repository.full_name}@${repository.default_branch}`.toLowerCase(), async () => {
        try {
          return parseRepoConfig(await gh.fileText(REPO_CONFIG_PATH, repository.default_branch));
        } catch (err) {
          if (err instanceof RepoConfigError) return err;
          throw err;
        }
      });

    /** An invalid config is answered with a comment that explains it, and nothing runs. */
    const explainConfig = (gh: GitHubRepo, repository: Repository, threadNumber: number, err: RepoConfigError, log: Logger) => {
      log.info({ problems: err.problems }, `skipped: ${REPO_CONFIG_PATH} is invalid`);
      const fileUrl = `${repository.html_url}/blob/${repository.default_branch}/${REPO_CONFIG_PATH}`;
      later(log, 'explain the invalid config', () => gh.comment(threadNumber, configErrorComment(err, { ref: repository.default_branch, fileUrl })));
    };

    /** Records an action; the webhook is answered once it is in Redis. */
    const record = async (action: NewAction, log: Logger) => {
      await deps.inbox.push({ ...action, at: Date.now() });
      log.debug({ op: action.op }, 'recorded for after the answer');
    };

    app.on('issues.labeled', async (context: Context<'issues.labeled'>) => {
      const { payload } = context;
      const log = deps.log.child({ delivery: context.id, repo: payload.repository.full_name, issue: payload.issue.number });
      const label = payload.label?.name;
      // The cheap checks first, before any API call.
      if (isStateLabel(label) || !label) return;
      const sender = payload.sender as Sender;
      if (isBot(sender)) return log.debug('skipped: sender is a bot');
      if (payload.issue.pull_request) return log.info('skipped: the label is on a pull request, not an issue');
      if (!payload.installation) return log.warn('skipped: event carries no installation');
      const gh = new GitHubRepo(context.octokit, { owner: payload.repository.owner.login, repo: payload.repository.name });
      const installationId = payload.installation.id;
      await inOrder.run(issueKey({ ...gh.ref, issueNumber: payload.issue.number }), async () => {
        if (!(await mayTrigger(gh, sender, log))) return;
        // Which label triggers is the repository's choice; an unreadable config is only
        // reported for a label that would have triggered by default.
        const config = await readConfig(gh, payload.repository);
        if (config instanceof RepoConfigError) {
          if (label.toLowerCase() === DEFAULT_TRIGGER_LABEL) explainConfig(gh, payload.repository, payload.issue.number, config, log);
          return;
        }
        const gate = checkLabelEvent({ label, sender, triggerLabel: triggerLabelOf(config) });
        if (!gate.run) return log.debug({ reason: gate.reason }, 'skipped');
        await record({ op: 'trigger', installationId, ...gh.ref, issueNumber: payload.issue.number, deliveryId: context.id, sender: sender.login }, log);
      });
    });

    app.on('issue_comment.created', async (context: Context<'issue_comment.created'>) => {
      const { payload } = context;
      const command = parseCommand(payload.comment.body ?? '');
      if (!command) return;
      const thread = payload.issue.number;
      const log = deps.log.child({ delivery: context.id, repo: payload.repository.full_name, issue: thread, command: command.kind });
      const sender = payload.comment.user as Sender;
      if (isBot(sender) || isBot(payload.sender as Sender)) return log.debug('skipped: a bot wrote the command');
      if (!payload.installation) return log.warn('skipped: event carries no installation');
      const gh = new GitHubRepo(context.octokit, { owner: payload.repository.owner.login, repo: payload.repository.name });
      const installationId = payload.installation.id;
      await inOrder.run(issueKey({ ...gh.ref, issueNumber: thread }), async () => {
        if (!(await mayTrigger(gh, sender, log))) return;
        // On a pull request, only the app's own ones take commands: they are the ones it revises.
        const onPull = payload.issue.pull_request !== undefined && payload.issue.pull_request !== null;
        if (onPull && payload.issue.user?.login.toLowerCase() !== (await identity()).botLogin.toLowerCase()) {
          return log.info('skipped: a command on a pull request the app did not open');
        }
        const kind = onPull ? 'revise' : 'issue';
        const commentId = payload.comment.id;
        const common = { installationId, ...gh.ref, issueNumber: thread, deliveryId: context.id, sender: sender.login, commentId };

        if (command.kind === 'help' || command.kind === 'unknown') {
          later(log, 'answer the command', async () => {
            await gh.reactToComment(commentId, command.kind === 'help' ? '+1' : 'confused');
            await gh.comment(thread, helpText(command.kind === 'unknown' ? command.word : undefined));
          });
          return;
        }

        if (command.kind === 'stop') {
          const working = payload.issue.labels?.some((l) => l.name === LABEL_WORKING) ?? false;
          return record({ op: 'stop', ...common, kind, working }, log);
        }

        // retry
        const config = await readConfig(gh, payload.repository);
        if (config instanceof RepoConfigError) return explainConfig(gh, payload.repository, thread, config, log);
        await record(kind === 'revise' ? { op: 'revise', ...common, feedback: { sender: sender.login, ...(command.text ? { text: command.text } : {}) } } : { op: 'trigger', ...common, ...(command.text ? { instructions: command.text } : {}) }, log);
      });
    });

    app.on('pull_request_review.submitted', async (context: Context<'pull_request_review.submitted'>) => {
      const { payload } = context;
      const { review, pull_request: pull } = payload;
      const log = deps.log.child({ delivery: context.id, repo: payload.repository.full_name, pull: pull.number, review: review.id });
      const reviewer = (review.user ?? payload.sender) as Sender;
      if (isBot(reviewer) || isBot(payload.sender as Sender)) return log.debug('skipped: a bot reviewed');
      if (review.state.toLowerCase() === 'approved' || review.state.toLowerCase() === 'dismissed') return log.debug({ state: review.state }, 'skipped: the review asks for nothing');
      if (pull.state !== 'open') return log.info('skipped: the pull request is not open');
      if (!payload.installation) return log.warn('skipped: event carries no installation');
      if (pull.user?.login.toLowerCase() !== (await identity()).botLogin.toLowerCase()) return log.debug('skipped: a pull request the app did not open');
      const gh = new GitHubRepo(context.octokit, { owner: payload.repository.owner.login, repo: payload.repository.name });
      const installationId = payload.installation.id;
      await inOrder.run(issueKey({ ...gh.ref, issueNumber: pull.number }), async () => {
        if (!(await mayTrigger(gh, reviewer, log))) return;
        // A "commented" review without a body is a revision request only if it has line comments.
        const lineComments = (review.body ?? '').trim() === '' && review.state.toLowerCase() === 'commented' ? (await gh.reviewComments(pull.number, review.id)).length : 1;
        if (!reviewAsksForChanges(review.state, review.body, lineComments)) return log.debug('skipped: an empty review');
        const config = await readConfig(gh, payload.repository);
        if (config instanceof RepoConfigError) return explainConfig(gh, payload.repository, pull.number, config, log);
        await record({ op: 'revise', installationId, ...gh.ref, issueNumber: pull.number, deliveryId: context.id, sender: reviewer.login, feedback: { reviewId: review.id, sender: reviewer.login } }, log);
      });
    });
  };
}

/** The app's slug and bot login, read once from `GET /app` (a retry after a failure). */
function appIdentity(app: Probot): () => Promise<{ slug: string; botLogin: string }> {
  let cached: Promise<{ slug: string; botLogin: string }> | undefined;
  return () => {
    cached ??= app
      .auth()
      .then(async (octokit) => {
        const { data } = await octokit.rest.apps.getAuthenticated();
        const slug = data?.slug ?? '';
        if (!slug) throw new Error('GET /app answered without a slug');
        return { slug, botLogin: `${slug}[bot]` };
      })
      .catch((err: unknown) => {
        cached = undefined;
        throw err;
      });
    return cached;
  };
}
