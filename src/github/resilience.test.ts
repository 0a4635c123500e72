import { pino } from 'pino';
import { Probot } from 'probot';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { secondaryRateLimit, startGitHubStandIn, type GitHubStandIn } from '../../test/stand-ins/github/server.js';
import { GitHubRepo } from './facade.js';
import { AppOctokit, createAppOctokit, GITHUB_RETRY_LIMITS } from './octokit-options.js';

// The real Probot class against the GitHub stand-in: which failures its client rides out,
// with Probot's defaults and with the app's Octokit (src/github/octokit-options.ts).

const OWNER = 'acme';
const REPO = 'widgets';
const ISSUE_PATH = `/api/v3/repos/${OWNER}/${REPO}/issues/7`;
const log = pino({ level: 'silent' });

let gh: GitHubStandIn;

/**
 * Moves the clock (the stand-in's and the client's: one process) forward. Time only ever
 * moves forward in this file: Octokit's rate limiters are shared per installation and keep
 * timestamps, which a jump back would leave minutes in the future.
 */
function advanceClock(ms: number): void {
  vi.setSystemTime(Date.now() + ms);
}

beforeAll(async () => {
  vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
  gh = await startGitHubStandIn();
  await gh.addRepo({ owner: OWNER, repo: REPO, files: { 'README.md': '# widgets\n' } });
  gh.addIssue(OWNER, REPO, { number: 7, title: 'Fix add()', body: 'add(2, -3) is wrong', user: 'alice' });
});
afterAll(async () => {
  await gh?.close();
  vi.useRealTimers();
});
beforeEach(() => {
  gh.clearFaults();
  gh.setTokenTtl(3600_000);
});

/** An installation client as the worker gets it: `new Probot(...)`, then `probot.auth(id)`. */
async function installationClient(Octokit?: typeof AppOctokit) {
  const probot = new Probot({
    appId: gh.appId,
    privateKey: gh.privateKey,
    baseUrl: gh.apiUrl,
    log,
    ...(Octokit ? { Octokit } : {}),
  });
  return probot.auth(gh.installationId);
}

/** Statuses the stand-in answered to GET issue #7 since `from`. */
function issueStatuses(from: number): number[] {
  return gh.requests
    .slice(from)
    .filter((r) => r.path === ISSUE_PATH)
    .map((r) => r.status);
}

function mints(from: number): number {
  return gh.requests.slice(from).filter((r) => r.path.endsWith('/access_tokens')).length;
}

async function getIssue(octokit: Awaited<ReturnType<typeof installationClient>>) {
  return octokit.rest.issues.get({ owner: OWNER, repo: REPO, issue_number: 7 });
}

async function statusOf(p: Promise<unknown>): Promise<number | undefined> {
  return p.then(
    () => 200,
    (e: { status?: number }) => e.status,
  );
}

describe("Probot 14's own client (no Octokit option)", () => {
  it('retries a 502 (plugin-retry)', async () => {
    const from = gh.requests.length;
    gh.failNext({ method: 'GET', route: 'issues/get' }, { status: 502, body: { message: 'Server Error' } });
    const { data } = await getIssue(await installationClient());
    expect(data.title).toBe('Fix add()');
    expect(issueStatuses(from)).toEqual([502, 200]);
  });

  it('does not retry a secondary rate limit (403 with retry-after): its handler gives up', async () => {
    const from = gh.requests.length;
    gh.failNext({ route: 'issues/get' }, secondaryRateLimit(1));
    expect(await statusOf(getIssue(await installationClient()))).toBe(403);
    expect(issueStatuses(from)).toEqual([403]);
  });

  it('keeps using an installation token GitHub no longer accepts: 401 Bad credentials', async () => {
    gh.setTokenTtl(60_000);
    const octokit = await installationClient();
    await getIssue(octokit);
    // Ten minutes on: the token expired on GitHub's side, Probot's 59-minute cache still holds it.
    advanceClock(10 * 60_000);
    const from = gh.requests.length;
    const err = (await getIssue(octokit).catch((e: unknown) => e)) as { status?: number; message?: string };
    expect(err.status).toBe(401);
    expect(err.message).toContain('Bad credentials');
    expect(issueStatuses(from)).toEqual([401]);
    expect(mints(from)).toBe(0);
  });
});

describe("the app's client (Probot with Octokit: AppOctokit)", () => {
  it('retries a 502 and then succeeds', async () => {
    const from = gh.requests.length;
    gh.failNext({ route: 'issues/get' }, { status: 502, body: { message: 'Server Error' } });
    const { data } = await getIssue(await installationClient(AppOctokit));
    expect(data.number).toBe(7);
    expect(issueStatuses(from)).toEqual([502, 200]);
  });

  it('retries when minting the installation token fails with a 502', async () => {
    const from = gh.requests.length;
    gh.failNext(
      { method: 'POST', route: 'apps/create-installation-access-token' },
      { status: 502, body: { message: 'Server Error' } },
    );
    await getIssue(await installationClient(AppOctokit));
    const mintStatuses = gh.requests
      .slice(from)
      .filter((r) => r.path.endsWith('/access_tokens'))
      .map((r) => r.status);
    expect(mintStatuses).toEqual([502, 201]);
    expect(issueStatuses(from)).toEqual([200]);
  });

  it('waits out a secondary rate limit (403 + retry-after) and then succeeds', async () => {
    const from = gh.requests.length;
    gh.failNext({ route: /\/issues\/7$/ }, secondaryRateLimit(1));
    const { data } = await getIssue(await installationClient(AppOctokit));
    expect(data.number).toBe(7);
    expect(issueStatuses(from)).toEqual([403, 200]);
  });

  it('waits out a 429 secondary rate limit and then succeeds', async () => {
    const from = gh.requests.length;
    gh.failNext({ method: 'GET', route: 'issues/get' }, secondaryRateLimit(1, 429));
    await getIssue(await installationClient(AppOctokit));
    expect(issueStatuses(from)).toEqual([429, 200]);
  });

  it('mints a new installation token when GitHub refuses the cached one, and retries once', async () => {
    gh.setTokenTtl(60_000);
    const octokit = await installationClient(AppOctokit);
    await getIssue(octokit);
    gh.setTokenTtl(3600_000);
    advanceClock(10 * 60_000);
    const from = gh.requests.length;
    const { data } = await getIssue(octokit);
    expect(data.number).toBe(7);
    expect(issueStatuses(from)).toEqual([401, 200]);
    expect(mints(from)).toBe(1);
    // The fresh token is cached: the next request uses it without minting.
    await getIssue(octokit);
    expect(mints(from)).toBe(1);
  });

  it('does not loop when the fresh token is refused too', async () => {
    const octokit = await installationClient(AppOctokit);
    await getIssue(octokit);
    // Past auth-app's own 401 retries, which only cover the first seconds after minting.
    advanceClock(60_000);
    const from = gh.requests.length;
    gh.failNext(
      { route: 'issues/get' },
      { status: 401, body: { message: 'Bad credentials', documentation_url: 'https://docs.github.com/rest' } },
      5,
    );
    expect(await statusOf(getIssue(octokit))).toBe(401);
    // One refresh: the stale token's 401, then the fresh one's, which auth-app itself retries
    // for the first five seconds after minting (replication delay: 1 s, 2 s, 3 s apart).
    const statuses = issueStatuses(from);
    expect(statuses.every((s) => s === 401)).toBe(true);
    expect(statuses.length).toBeGreaterThanOrEqual(2);
    expect(statuses.length).toBeLessThanOrEqual(5);
    expect(mints(from)).toBe(1);
  });

  it('gives up on a persistent 502 after its bounded retries', async () => {
    const from = gh.requests.length;
    gh.failNext({ route: 'issues/get' }, { status: 502, body: { message: 'Server Error' } }, Number.POSITIVE_INFINITY);
    expect(await statusOf(getIssue(await installationClient(createAppOctokit({ retryBaseMs: 5 }))))).toBe(502);
    expect(issueStatuses(from)).toHaveLength(1 + GITHUB_RETRY_LIMITS.retries);
  });

  it('gives up on a persistent secondary rate limit after its bounded retries', async () => {
    const from = gh.requests.length;
    gh.failNext({ route: 'issues/get' }, secondaryRateLimit(1), Number.POSITIVE_INFINITY);
    expect(await statusOf(getIssue(await installationClient(createAppOctokit({ retryBaseMs: 5 }))))).toBe(403);
    expect(issueStatuses(from)).toEqual(Array(1 + GITHUB_RETRY_LIMITS.secondaryRateLimitRetries).fill(403));
  });

  it('hands git a token with at least ten minutes left, minting one when the cached one is older', async () => {
    const repo = new GitHubRepo(await installationClient(AppOctokit), { owner: OWNER, repo: REPO });
    const first = await repo.gitToken();
    expect(await repo.gitToken()).toBe(first);
    // 55 minutes on, Probot's cache still holds the first token, with five minutes left.
    advanceClock(55 * 60_000);
    const fresh = await repo.gitToken();
    expect(fresh).not.toBe(first);
    expect(await repo.gitToken()).toBe(fresh);
  });
});
