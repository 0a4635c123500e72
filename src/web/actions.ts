import type { Logger } from 'pino';
import type { Probot } from 'probot';
import {
  parseRepoConfig,
  REPO_CONFIG_PATH,
  RepoConfigError,
  triggerLabelOf,
  type RepoConfig,
} from '../config/repo-config.js';
import type { AppIdentity } from '../github/app-identity.js';
import { GitHubRepo, type Permission } from '../github/facade.js';
import type { AgentQueue } from '../queue/queue.js';
import { ciSnapshot } from '../github/ci.js';
import { decideEvent, type Fact, type Known } from './decide-event.js';
import { EventEffects } from './event-effects.js';
import { repoKeyOf, type InboxItem, type WebEvent, type Where } from './inbox-item.js';
import type { PendingWork } from './pending.js';
import { DEFAULT_TRIGGER_LABEL } from './triggers.js';
import { TtlCache } from './ttl-cache.js';

// An installation's client; its token renews itself when it expires.
const CLIENT_TTL_MS = 10 * 60_000;
// Kept briefly so a burst of events costs few API calls: a changed permission or config
// takes effect within these times (the worker reads the config afresh at job start).
const PERMISSION_TTL_MS = 60_000;
export const CONFIG_TTL_MS = 30_000;

export interface EventDeps {
  queue: AgentQueue;
  /** Authenticates as an installation (checks, acknowledgements). */
  probot: Pick<Probot, 'auth'>;
  /** Who the app is: a sender or pull request author that is the app asks nothing. */
  identity: Pick<AppIdentity, 'names'>;
  log: Logger;
  /** Acknowledgements in flight; shutdown waits for them. */
  pending: PendingWork;
  /** SANDBOX_ALLOW_HOST_NETWORK: whether a config's `install_network: full` is valid here. */
  allowHostNetwork?: boolean;
  /**
   * Told, each time a repository's config is read, the one label that does anything there
   * (its trigger label; the default one, answered with an explanation, while the config
   * is invalid), so the web can drop other labels without recording them.
   */
  onLabelRead?: (repoKey: string, label: string) => void;
  /** A pull request whose CI the app answered went green: how, and in how many CI-fix rounds. */
  onCiGreen?: (outcome: 'fixed' | 'rerun_green', rounds: number) => void;
}

/**
 * Carries out an event from the inbox: `decideEvent` says what it asks, reading from
 * GitHub (through short-lived caches) each fact it needs; `EventEffects` does it. A GitHub
 * read that fails throws, and the inbox tries the event again.
 */
export function eventHandler(deps: EventDeps): (e: InboxItem) => Promise<void> {
  const clients = new TtlCache<Awaited<ReturnType<Probot['auth']>>>(CLIENT_TTL_MS);
  const permissions = new TtlCache<Permission>(PERMISSION_TTL_MS);
  const configs = new TtlCache<RepoConfig | RepoConfigError>(CONFIG_TTL_MS);
  const effects = new EventEffects(deps);

  const repoOf = async (e: Where) =>
    new GitHubRepo(await clients.get(String(e.installationId), () => deps.probot.auth(e.installationId)), {
      owner: e.owner,
      repo: e.repo,
    });
  /** The repository's config from its default branch, or why it cannot be used. */
  const readConfig = (gh: GitHubRepo, e: WebEvent): Promise<RepoConfig | RepoConfigError> =>
    configs.get(repoKeyOf(e), async () => {
      const config = await parseConfigAt(gh, e.defaultBranch, deps.allowHostNetwork ?? false);
      deps.onLabelRead?.(
        repoKeyOf(e),
        config instanceof RepoConfigError ? DEFAULT_TRIGGER_LABEL : triggerLabelOf(config),
      );
      return config;
    });
  /** Reads one fact the decision asked for. */
  const readFact = async (fact: Fact, e: InboxItem, gh: () => Promise<GitHubRepo>): Promise<Known> => {
    if (fact === 'app') return { app: await deps.identity.names() };
    // Recorded actions were checked before they were recorded: the decision asks nothing of them.
    if (e.op === 'trigger' || e.op === 'revise' || e.op === 'stop')
      throw new Error(`a recorded ${e.op} asks for no ${fact}`);
    const repo = await gh();
    if (fact === 'permission')
      return {
        permission: await permissions.get(`${e.owner}/${e.repo}:${e.sender}`.toLowerCase(), () =>
          repo.permission(e.sender),
        ),
      };
    if (fact === 'config') return { config: await readConfig(repo, e) };
    if (e.op === 'ci') {
      if (fact === 'pull') return { pull: (await repo.openPullFor(e.branch)) ?? null };
      if (fact === 'ci') return { ci: await ciSnapshot(repo, e.sha) };
    }
    if (e.op !== 'review') throw new Error(`a ${e.op} event has no ${fact}`);
    return { lineComments: (await repo.reviewComments(e.issueNumber, e.reviewId)).length };
  };

  return async (e: InboxItem): Promise<void> => {
    const log = deps.log.child({
      delivery: e.deliveryId,
      repo: `${e.owner}/${e.repo}`,
      issue: e.issueNumber,
      op: e.op,
      ...(e.op === 'command' ? { command: e.command.kind } : {}),
      ...(e.op === 'ci' ? { event: e.event, sha: e.sha.slice(0, 12) } : {}),
    });
    // The repository's client, made when first needed: an event dropped early needs none.
    let repo: Promise<GitHubRepo> | undefined;
    const gh = () => (repo ??= repoOf(e));
    let known: Known = {};
    for (;;) {
      const decision = decideEvent(e, known);
      if (decision.do === 'read') {
        known = { ...known, ...(await readFact(decision.fact, e, gh)) };
        continue;
      }
      if (decision.do !== 'skip') return effects.carryOut(decision, e, await gh(), log);
      if (decision.level === 'silent') return;
      if (decision.reason) return log[decision.level]({ reason: decision.reason }, decision.message);
      return log[decision.level](decision.message);
    }
  };
}

/** The repository's config on `ref`, or the error that says why it cannot be used. */
async function parseConfigAt(
  gh: GitHubRepo,
  ref: string,
  allowHostNetwork: boolean,
): Promise<RepoConfig | RepoConfigError> {
  try {
    return parseRepoConfig(await gh.fileText(REPO_CONFIG_PATH, ref), { allowHostNetwork });
  } catch (err) {
    if (!(err instanceof RepoConfigError)) throw err;
    return err;
  }
}
