import { ProbotOctokit } from 'probot';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadOpenApi } from '../../test/stand-ins/github/openapi.js';
import { startGitHubStandIn, type GitHubStandIn } from '../../test/stand-ins/github/server.js';
import { GitHubRepo, MAX_COMMENT_PAGES } from './facade.js';

const OWNER = 'acme';
const REPO = 'widgets';

describe('GitHub facade: issue comments and root entries', () => {
  let gh: GitHubStandIn;
  let repo: GitHubRepo;
  let octokit: InstanceType<typeof ProbotOctokit>;
  const responseProblems: string[] = [];
  const spec = loadOpenApi();

  beforeAll(async () => {
    gh = await startGitHubStandIn();
    await gh.addRepo({
      owner: OWNER,
      repo: REPO,
      files: {
        'package.json': '{}\n',
        'README.md': '# widgets\n',
        'src/index.ts': 'export const x = 1;\n',
        'test/a.test.ts': '\n',
        '.github/agent.yml': 'instructions: hi\n',
      },
    });
    await gh.addRepo({ owner: OWNER, repo: 'empty', files: {} });
    gh.addIssue(OWNER, REPO, { number: 7, title: 'Fix add()', body: 'add(2, -3) is wrong', user: 'alice' });
    gh.addIssue(OWNER, REPO, { number: 8, title: 'Long thread', body: 'many comments', user: 'alice' });
    octokit = new ProbotOctokit({
      baseUrl: gh.apiUrl,
      auth: { appId: gh.appId, privateKey: gh.privateKey, installationId: gh.installationId },
      throttle: { enabled: false },
      retry: { enabled: false },
    });
    octokit.hook.after('request', (response, options) => {
      const p = new URL(options.url, gh.apiUrl).pathname.replace(/^\/api\/v3/, '');
      responseProblems.push(...spec.checkResponse(options.method, p, response.status, response.data));
    });
    repo = new GitHubRepo(octokit, { owner: OWNER, repo: REPO });
  });

  afterAll(async () => {
    await gh?.close();
  });

  beforeEach(() => {
    gh.violations.length = 0;
    responseProblems.length = 0;
  });

  it("lists an issue's comments with author, author type, body and time", async () => {
    gh.addComment(OWNER, REPO, 7, { user: 'alice', body: 'The test is test/add.test.js' });
    gh.addComment(OWNER, REPO, 7, { user: 'renovate[bot]', body: 'beep' });
    const { comments } = await repo.issueComments(7);
    expect(comments.map(({ author, authorType, body }) => ({ author, authorType, body }))).toEqual([
      { author: 'alice', authorType: 'User', body: 'The test is test/add.test.js' },
      { author: 'renovate[bot]', authorType: 'Bot', body: 'beep' },
    ]);
    expect(comments.every((c) => typeof c.association === 'string' && c.association.length > 0)).toBe(true);
    expect(Date.parse(comments[0]!.createdAt)).not.toBeNaN();
    expect(gh.violations).toEqual([]);
    expect(responseProblems).toEqual([]);
  });

  it('reads every comment of a long thread, oldest first, so a flood hides no older comment', async () => {
    gh.addComment(OWNER, REPO, 8, { user: 'maintainer', body: 'Only add.js may change.' });
    for (let i = 1; i <= 230; i++) gh.addComment(OWNER, REPO, 8, { user: 'bob', body: `comment ${i}` });
    const read = await repo.issueComments(8);
    expect(read.unread).toBe(0);
    expect(read.comments).toHaveLength(231);
    expect(read.comments[0]).toMatchObject({ author: 'maintainer', body: 'Only add.js may change.' });
    expect(read.comments.at(-1)!.body).toBe('comment 230');
    expect((await repo.issueComments(7)).comments).toHaveLength(2);
    expect(gh.violations).toEqual([]);
    expect(responseProblems).toEqual([]);
  });

  it('reads a thread over MAX_COMMENT_PAGES pages at both ends, says how much it left, and cuts huge bodies', async () => {
    gh.addIssue(OWNER, REPO, { number: 9, title: 'Flooded', body: 'x', user: 'alice' });
    gh.addComment(OWNER, REPO, 9, { user: 'maintainer', body: 'The first word.' });
    const total = MAX_COMMENT_PAGES * 100 + 250;
    for (let i = 2; i <= total; i++)
      gh.addComment(OWNER, REPO, 9, { user: 'bob', body: i === total ? 'y'.repeat(70_000) : `comment ${i}` });
    const read = await repo.issueComments(9);
    // Ten pages of 13: the first and 5..13; pages 2 to 4 are the unread middle.
    expect(read.unread).toBe(300);
    expect(read.comments).toHaveLength(total - 300);
    expect(read.comments[0]!.body).toBe('The first word.');
    expect(read.comments[100]!.body).toBe('comment 401');
    expect(read.comments.at(-1)!.body.length).toBe(20_000);
    expect(gh.violations).toEqual([]);
  });

  it('lists the top-level entries of a ref, directories with a trailing slash', async () => {
    expect((await repo.rootEntries('main')).sort()).toEqual(['.github/', 'README.md', 'package.json', 'src/', 'test/']);
    const empty = new GitHubRepo(octokit, { owner: OWNER, repo: 'empty' });
    expect(await empty.rootEntries('main')).toEqual([]);
    expect(gh.violations).toEqual([]);
    expect(responseProblems).toEqual([]);
  });

  it('answers the root with and without the trailing slash, as GitHub does', async () => {
    const auth = await repo.gitToken();
    for (const suffix of ['contents', 'contents/']) {
      const res = await fetch(`${gh.apiUrl}/repos/${OWNER}/${REPO}/${suffix}?ref=main`, {
        headers: { authorization: `token ${auth}` },
      });
      expect(res.status).toBe(200);
      const body = (await res.json()) as Array<{ name: string; type: string }>;
      expect(body.find((e) => e.name === 'src')?.type).toBe('dir');
      expect(body.find((e) => e.name === 'package.json')?.type).toBe('file');
    }
    expect(gh.violations).toEqual([]);
  });
});
