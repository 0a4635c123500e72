import { generateKeyPairSync, sign as rsaSign, type KeyObject } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { verify } from '@octokit/webhooks-methods';
import { ProbotOctokit } from 'probot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runGit } from './git.js';
import { loadOpenApi } from './openapi.js';
import { secondaryRateLimit, startGitHubStandIn, type GitHubStandIn } from './server.js';
import {
  checkRunCompletedPayload,
  checkSuiteCompletedPayload,
  issueCommentPayload,
  issueLabeledPayload,
  loadExample,
  pullRequestReviewPayload,
  sendWebhook,
  statusPayload,
  workflowRunCompletedPayload,
} from './webhooks.js';

const OWNER = 'acme';
const REPO = 'widgets';

function jwt(key: string | KeyObject, claims: Record<string, unknown>): string {
  const enc = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  const data = `${enc({ alg: 'RS256', typ: 'JWT' })}.${enc(claims)}`;
  return `${data}.${rsaSign('RSA-SHA256', Buffer.from(data), key).toString('base64url')}`;
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

async function git(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  return runGit(args, { ...opts, env: { GIT_ASKPASS: 'false', GIT_CONFIG_NOSYSTEM: '1', ...opts.env } });
}

describe('GitHub stand-in', () => {
  let gh: GitHubStandIn;
  let octokit: InstanceType<typeof ProbotOctokit>;
  let work: string;
  const responseProblems: string[] = [];
  const spec = loadOpenApi();

  beforeAll(async () => {
    gh = await startGitHubStandIn();
    work = await mkdtemp(join(tmpdir(), 'stand-in-test-'));
    await gh.addRepo({
      owner: OWNER,
      repo: REPO,
      files: { 'README.md': '# widgets\n', 'src/index.ts': 'export const x = 1;\n' },
    });
    gh.addIssue(OWNER, REPO, { number: 7, title: 'Fix the README', body: 'It says widgets', user: 'alice' });
    gh.setPermission(OWNER, REPO, 'alice', 'write');
    gh.setPermission(OWNER, REPO, 'mallory', 'triage');
    octokit = new ProbotOctokit({
      baseUrl: gh.apiUrl,
      auth: { appId: gh.appId, privateKey: gh.privateKey, installationId: gh.installationId },
      throttle: { enabled: false },
      retry: { enabled: false },
    });
    // Every answer the real client receives must match GitHub's documented response schema.
    octokit.hook.after('request', (response, options) => {
      const path = new URL(options.url, gh.apiUrl).pathname.replace(/^\/api\/v3/, '');
      responseProblems.push(...spec.checkResponse(options.method, path, response.status, response.data));
    });
  });

  afterAll(async () => {
    await gh?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('checks response bodies against the documented schemas', () => {
    expect(spec.checkResponse('GET', '/repos/a/b', 200, { id: 1 })).toContain(
      'GET /repos/{owner}/{repo} → 200: response/name is required',
    );
    expect(spec.checkResponse('GET', '/repos/a/b', 299, {})[0]).toMatch(/does not document status 299/);
  });

  it("mints installation tokens for a valid app JWT, in GitHub's shape", async () => {
    const res = await fetch(`${gh.apiUrl}/app/installations/${gh.installationId}/access_tokens`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${jwt(gh.privateKey, { iss: String(gh.appId), iat: nowSeconds() - 30, exp: nowSeconds() + 540 })}`,
      },
    });
    expect(res.status).toBe(201);
    const body = (await res.json()) as { token: string; expires_at: string };
    expect(body.token).toMatch(/^ghs_[A-Za-z0-9]{36}$/);
    expect(Date.parse(body.expires_at) - Date.now()).toBeGreaterThan(3500_000);
    expect(gh.issuedTokens).toContain(body.token);
    expect(spec.checkResponse('POST', `/app/installations/${gh.installationId}/access_tokens`, 201, body)).toEqual([]);
  });

  it('refuses JWTs signed by another key, expired, too long-lived or for another app', async () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const t = nowSeconds();
    const cases = [
      jwt(other, { iss: gh.appId, iat: t - 30, exp: t + 540 }),
      jwt(gh.privateKey, { iss: gh.appId, iat: t - 700, exp: t - 100 }),
      jwt(gh.privateKey, { iss: gh.appId, iat: t - 30, exp: t + 3600 }),
      jwt(gh.privateKey, { iss: gh.appId + 1, iat: t - 30, exp: t + 540 }),
      'not-a-jwt',
    ];
    const before = gh.issuedTokens.length;
    for (const token of cases) {
      const res = await fetch(`${gh.apiUrl}/app/installations/${gh.installationId}/access_tokens`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
      });
      expect(res.status).toBe(401);
    }
    expect(gh.issuedTokens.length).toBe(before);
  });

  it('answers 401 Bad credentials for unknown installation tokens', async () => {
    const res = await fetch(`${gh.apiUrl}/repos/${OWNER}/${REPO}`, {
      headers: { authorization: 'token ghs_notissuedbythisserver000000000000000' },
    });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ message: 'Bad credentials' });
  });

  it('serves app, installation, repository, issue and permission reads to the real client', async () => {
    const appOctokit = new ProbotOctokit({
      baseUrl: gh.apiUrl,
      auth: { appId: gh.appId, privateKey: gh.privateKey },
      throttle: { enabled: false },
    });
    const app = await appOctokit.rest.apps.getAuthenticated();
    expect(app.data?.slug).toBe(gh.appSlug);
    const inst = await appOctokit.rest.apps.getRepoInstallation({ owner: OWNER, repo: REPO });
    expect(inst.data.id).toBe(gh.installationId);
    expect(spec.checkResponse('GET', '/app', 200, app.data)).toEqual([]);
    expect(spec.checkResponse('GET', `/repos/${OWNER}/${REPO}/installation`, 200, inst.data)).toEqual([]);

    const repo = await octokit.rest.repos.get({ owner: OWNER, repo: REPO });
    expect(repo.data).toMatchObject({
      default_branch: 'main',
      clone_url: `${gh.url}/${OWNER}/${REPO}.git`,
      full_name: `${OWNER}/${REPO}`,
    });
    const issue = await octokit.rest.issues.get({ owner: OWNER, repo: REPO, issue_number: 7 });
    expect(issue.data).toMatchObject({ number: 7, title: 'Fix the README', user: { login: 'alice', type: 'User' } });

    const perm = async (username: string) =>
      (await octokit.rest.repos.getCollaboratorPermissionLevel({ owner: OWNER, repo: REPO, username })).data;
    expect(await perm('alice')).toMatchObject({ permission: 'write', role_name: 'write' });
    expect(await perm('mallory')).toMatchObject({ permission: 'read', role_name: 'triage' });
    expect(await perm('stranger')).toMatchObject({ permission: 'none' });
    expect(await perm(OWNER)).toMatchObject({ permission: 'admin' });

    const file = await octokit.rest.repos.getContent({ owner: OWNER, repo: REPO, path: 'src/index.ts' });
    expect(Array.isArray(file.data)).toBe(false);
    const content = file.data as { content: string; encoding: string };
    expect(Buffer.from(content.content, 'base64').toString()).toBe('export const x = 1;\n');
    const dir = await octokit.rest.repos.getContent({ owner: OWNER, repo: REPO, path: 'src' });
    expect(Array.isArray(dir.data)).toBe(true);
    await expect(octokit.rest.repos.getContent({ owner: OWNER, repo: REPO, path: 'nope.md' })).rejects.toMatchObject({
      status: 404,
    });
    expect(responseProblems).toEqual([]);
  });

  it('records comments, reactions and labels as the app bot', async () => {
    const r1 = await octokit.rest.reactions.createForIssue({
      owner: OWNER,
      repo: REPO,
      issue_number: 7,
      content: 'eyes',
    });
    expect(r1.status).toBe(201);
    const r2 = await octokit.rest.reactions.createForIssue({
      owner: OWNER,
      repo: REPO,
      issue_number: 7,
      content: 'eyes',
    });
    expect(r2.status).toBe(200);
    expect(gh.reactions(OWNER, REPO, 7)).toEqual([{ content: 'eyes', user: gh.botLogin }]);

    const created = await octokit.rest.issues.createComment({
      owner: OWNER,
      repo: REPO,
      issue_number: 7,
      body: 'Working on it',
    });
    expect(created.status).toBe(201);
    expect(created.data.user).toMatchObject({ login: 'issue-agent-test[bot]', type: 'Bot' });
    await octokit.rest.issues.updateComment({ owner: OWNER, repo: REPO, comment_id: created.data.id, body: 'Done' });
    const listed = await octokit.paginate(octokit.rest.issues.listComments, {
      owner: OWNER,
      repo: REPO,
      issue_number: 7,
      per_page: 1,
    });
    expect(listed.map((c) => c.body)).toEqual(['Done']);
    expect(gh.comments(OWNER, REPO, 7)).toMatchObject([{ id: created.data.id, body: 'Done', user: gh.botLogin }]);
    const second = await octokit.rest.issues.createComment({
      owner: OWNER,
      repo: REPO,
      issue_number: 7,
      body: 'A second one',
    });
    expect(
      (await octokit.rest.issues.deleteComment({ owner: OWNER, repo: REPO, comment_id: second.data.id })).status,
    ).toBe(204);
    await expect(
      octokit.rest.issues.getComment({ owner: OWNER, repo: REPO, comment_id: second.data.id }),
    ).rejects.toMatchObject({ status: 404 });
    expect(gh.comments(OWNER, REPO, 7).map((c) => c.id)).toEqual([created.data.id]);

    const added = await octokit.rest.issues.addLabels({
      owner: OWNER,
      repo: REPO,
      issue_number: 7,
      labels: ['agent', 'agent:working'],
    });
    expect(added.data.map((l) => l.name)).toEqual(['agent', 'agent:working']);
    const removed = await octokit.rest.issues.removeLabel({
      owner: OWNER,
      repo: REPO,
      issue_number: 7,
      name: 'agent:working',
    });
    expect(removed.data.map((l) => l.name)).toEqual(['agent']);
    await expect(
      octokit.rest.issues.removeLabel({ owner: OWNER, repo: REPO, issue_number: 7, name: 'agent:working' }),
    ).rejects.toMatchObject({ status: 404 });
    expect(gh.labels(OWNER, REPO, 7)).toEqual(['agent']);
    expect(responseProblems).toEqual([]);
    expect(gh.violations).toEqual([]);
  });

  it('records a violation and answers 422 for a body GitHub would reject, 404 for unknown routes', async () => {
    const before = gh.violations.length;
    await expect(
      // The typed route would not compile without `head`; the untyped form is what a buggy caller sends.
      octokit.request({
        method: 'POST',
        url: '/repos/{owner}/{repo}/pulls',
        owner: OWNER,
        repo: REPO,
        title: 'x',
        base: 'main',
      }),
    ).rejects.toMatchObject({ status: 422, response: { data: { message: 'Validation Failed' } } });
    expect(gh.violations.slice(before)).toEqual(['POST /repos/{owner}/{repo}/pulls: body/head is required']);
    await expect(
      octokit.request('GET /repos/{owner}/{repo}/no-such-thing', { owner: OWNER, repo: REPO }),
    ).rejects.toMatchObject({ status: 404 });
    expect(gh.violations.slice(before + 1)).toEqual([
      `GET /repos/${OWNER}/${REPO}/no-such-thing: no such route in GitHub's API`,
    ]);
    gh.violations.length = before;
  });

  it('serves git over smart HTTP: clone and push need a minted token', async () => {
    const token = (await octokit.auth({ type: 'installation' })) as { token: string };
    const remote = `${gh.url}/${OWNER}/${REPO}.git`;
    const authed = remote.replace('http://', `http://x-access-token:${token.token}@`);

    const anonymous = await git(['ls-remote', remote], { env: { GIT_TERMINAL_PROMPT: '0' } });
    expect(anonymous.code).not.toBe(0);
    const wrong = await git(['ls-remote', remote.replace('http://', 'http://x-access-token:ghs_wrong@')]);
    expect(wrong.code).not.toBe(0);

    // Credentials in the URL (sent after the 401 challenge).
    const clone = join(work, 'clone');
    const cloned = await git(['clone', '--quiet', authed, clone]);
    expect(cloned.stderr).not.toMatch(/fatal|error/i);
    expect(cloned.code).toBe(0);

    await writeFile(join(clone, 'README.md'), '# widgets, fixed\n');
    await git(['-C', clone, 'checkout', '-q', '-b', 'agent/issue-7-fix-readme']);
    await git(['-C', clone, 'commit', '-q', '-am', 'Fix README']);
    const pushed = await git(['-C', clone, 'push', '-q', 'origin', 'agent/issue-7-fix-readme']);
    expect(pushed.stderr).not.toMatch(/fatal|error/i);
    expect(pushed.code).toBe(0);
    expect(await gh.readFile(OWNER, REPO, 'agent/issue-7-fix-readme', 'README.md')).toBe('# widgets, fixed\n');
    expect(await gh.readFile(OWNER, REPO, 'main', 'README.md')).toBe('# widgets\n');
    expect(await gh.readFile(OWNER, REPO, 'main', 'missing.md')).toBeNull();

    // Pushing without credentials is refused.
    const anonPush = await git(['-C', clone, 'push', '-q', remote, 'HEAD:refs/heads/sneaky'], {
      env: { GIT_TERMINAL_PROMPT: '0' },
    });
    expect(anonPush.code).not.toBe(0);

    // Move main on the server, so the next fetch has to negotiate.
    const other = join(work, 'other');
    expect((await git(['clone', '--quiet', authed, other])).code).toBe(0);
    await writeFile(join(other, 'CHANGELOG.md'), 'v2\n');
    await git(['-C', other, 'add', 'CHANGELOG.md']);
    await git(['-C', other, 'commit', '-q', '-m', 'Changelog']);
    expect((await git(['-C', other, 'push', '-q', 'origin', 'main'])).code).toBe(0);

    // A token passed as an extra header, never stored in the clone, with enough local history that
    // git usually gzips the negotiation request (it does so above 1 KiB).
    for (let i = 0; i < 40; i++) {
      await writeFile(join(clone, 'counter.txt'), String(i));
      await git(['-C', clone, 'add', 'counter.txt']);
      await git(['-C', clone, 'commit', '-q', '-m', `step ${i}`]);
    }
    const header = `Authorization: Basic ${Buffer.from(`x-access-token:${token.token}`).toString('base64')}`;
    const fetched = await git(['-C', clone, '-c', `http.extraHeader=${header}`, 'fetch', remote, 'main'], {
      env: { GIT_TRACE_CURL: '1', GIT_TRACE_CURL_NO_DATA: '1' },
    });
    expect(fetched.code).toBe(0);
    // git gzips the negotiation only when it sends enough "have" lines, which varies between
    // runs; when it does, the stand-in must still answer, so the fetch succeeding is the check.
    const pushedAgain = await git([
      '-C',
      clone,
      '-c',
      `http.extraHeader=${header}`,
      'push',
      '-q',
      remote,
      'HEAD:refs/heads/agent/issue-7-fix-readme',
    ]);
    expect(pushedAgain.code).toBe(0);
    expect(await gh.readFile(OWNER, REPO, 'agent/issue-7-fix-readme', 'counter.txt')).toBe('39');
    expect(await gh.readFile(OWNER, REPO, 'main', 'CHANGELOG.md')).toBe('v2\n');
  });

  it('opens, finds and updates pull requests like GitHub', async () => {
    const branch = 'agent/issue-7-fix-readme';
    await expect(
      octokit.rest.pulls.create({ owner: OWNER, repo: REPO, head: 'does-not-exist', base: 'main', title: 'x' }),
    ).rejects.toMatchObject({ status: 422 });
    const pr = await octokit.rest.pulls.create({
      owner: OWNER,
      repo: REPO,
      head: branch,
      base: 'main',
      title: 'Fix README',
      body: 'Closes #7',
    });
    expect(pr.status).toBe(201);
    expect(pr.data.number).toBe(8); // issues and pull requests share numbers
    expect(pr.data.user).toMatchObject({ login: gh.botLogin, type: 'Bot' });

    const dup = await octokit.rest.pulls
      .create({ owner: OWNER, repo: REPO, head: `${OWNER}:${branch}`, base: 'main', title: 'again' })
      .catch((e: { status: number; response: { data: unknown } }) => e);
    expect(dup).toMatchObject({
      status: 422,
      response: { data: { errors: [{ message: `A pull request already exists for ${OWNER}:${branch}.` }] } },
    });

    const found = await octokit.rest.pulls.list({
      owner: OWNER,
      repo: REPO,
      head: `${OWNER}:${branch}`,
      state: 'open',
    });
    expect(found.data.map((p) => p.number)).toEqual([8]);
    const none = await octokit.rest.pulls.list({ owner: OWNER, repo: REPO, head: `${OWNER}:other`, state: 'open' });
    expect(none.data).toEqual([]);

    await octokit.rest.pulls.update({ owner: OWNER, repo: REPO, pull_number: 8, body: 'Closes #7\n\nUpdated' });
    await octokit.rest.issues.createComment({ owner: OWNER, repo: REPO, issue_number: 8, body: 'PR comment' });
    expect(gh.pulls(OWNER, REPO)).toEqual([
      {
        number: 8,
        title: 'Fix README',
        body: 'Closes #7\n\nUpdated',
        head: branch,
        base: 'main',
        state: 'open',
        user: gh.botLogin,
        draft: false,
      },
    ]);
    expect(gh.comments(OWNER, REPO, 8).map((c) => c.body)).toEqual(['PR comment']);
    expect(responseProblems).toEqual([]);
    expect(gh.violations).toEqual([]);
  });

  it('creates and reads labels, keeping their colour and description', async () => {
    // `agent` was created on first use by addLabels, with GitHub's default colour.
    const existing = await octokit.rest.issues.getLabel({ owner: OWNER, repo: REPO, name: 'agent' });
    expect(existing.data).toMatchObject({ name: 'agent', color: 'ededed' });
    await expect(
      octokit.rest.issues.getLabel({ owner: OWNER, repo: REPO, name: 'agent:needs-info' }),
    ).rejects.toMatchObject({ status: 404 });

    const created = await octokit.rest.issues.createLabel({
      owner: OWNER,
      repo: REPO,
      name: 'agent:needs-info',
      color: 'd876e3',
      description: 'Waiting on the author',
    });
    expect(created.status).toBe(201);
    const fetched = await octokit.rest.issues.getLabel({ owner: OWNER, repo: REPO, name: 'agent:needs-info' });
    expect(fetched.data).toMatchObject({
      name: 'agent:needs-info',
      color: 'd876e3',
      description: 'Waiting on the author',
      default: false,
    });

    const again = await octokit.rest.issues
      .createLabel({ owner: OWNER, repo: REPO, name: 'Agent:Needs-Info', color: '000000' })
      .catch((e: { status: number; response: { data: unknown } }) => e);
    expect(again).toMatchObject({
      status: 422,
      response: { data: { errors: [{ resource: 'Label', code: 'already_exists', field: 'name' }] } },
    });
    expect(
      spec.checkResponse(
        'POST',
        `/repos/${OWNER}/${REPO}/labels`,
        422,
        (again as { response: { data: unknown } }).response.data,
      ),
    ).toEqual([]);
    await expect(
      octokit.rest.issues.createLabel({ owner: OWNER, repo: REPO, name: 'bad-colour', color: '#ff0000' }),
    ).rejects.toMatchObject({ status: 422 });

    // Adding the label to an issue uses it as it is, colour and all.
    await octokit.rest.issues.addLabels({ owner: OWNER, repo: REPO, issue_number: 7, labels: ['agent:needs-info'] });
    expect(gh.repoLabels(OWNER, REPO)).toEqual(
      expect.arrayContaining([
        { name: 'agent', color: 'ededed', description: null },
        { name: 'agent:needs-info', color: 'd876e3', description: 'Waiting on the author' },
      ]),
    );
    expect(gh.repoLabels(OWNER, REPO).filter((l) => l.name.toLowerCase() === 'agent:needs-info')).toHaveLength(1);
    expect(responseProblems).toEqual([]);
    expect(gh.violations).toEqual([]);
  });

  describe('pull request diffs and reviews', () => {
    const branch = 'feature/reviews';
    const longFile = `${Array.from({ length: 30 }, (_, k) => `export const l${k + 1} = ${k + 1};`).join('\n')}\n`;
    let pr: number;
    let mainBefore: string;

    beforeAll(async () => {
      const token = (await octokit.auth({ type: 'installation' })) as { token: string };
      const authed = `${gh.url}/${OWNER}/${REPO}.git`.replace('http://', `http://x-access-token:${token.token}@`);
      const dir = join(work, 'reviews');
      const ok = async (args: string[]) => {
        const res = await git(['-C', dir, ...args]);
        if (res.code !== 0) throw new Error(`git ${args.join(' ')}: ${res.stderr}`);
      };
      expect((await git(['clone', '--quiet', authed, dir])).code).toBe(0);
      await mkdir(join(dir, 'docs'), { recursive: true });
      await writeFile(join(dir, 'src/long.ts'), longFile);
      await writeFile(join(dir, 'src/old-name.ts'), 'export const renamed = true;\nexport const kept = 1;\n');
      await ok(['add', '--all']);
      await ok(['commit', '-q', '-m', 'Long file']);
      await ok(['push', '-q', 'origin', 'HEAD:main']);

      await ok(['checkout', '-q', '-b', branch]);
      const edited = longFile
        .replace('export const l3 = 3;', 'export const l3 = 300;')
        .replace('export const l25 = 25;', 'export const l25 = 250;');
      await writeFile(join(dir, 'src/long.ts'), edited);
      await ok(['mv', 'src/old-name.ts', 'src/new-name.ts']);
      await ok(['rm', '-q', 'src/index.ts']);
      await writeFile(join(dir, 'docs/new.md'), '# New\n\nHello reviewers\n');
      await ok(['add', '--all']);
      await ok(['commit', '-q', '-m', 'Feature']);
      await ok(['push', '-q', 'origin', branch]);

      // main moves on after the branch: its change must not show in the pull request's diff.
      mainBefore = (await gh.headSha(OWNER, REPO, 'main'))!;
      await ok(['checkout', '-q', 'main']);
      await writeFile(join(dir, 'MAIN_ONLY.md'), 'main only\n');
      await ok(['add', 'MAIN_ONLY.md']);
      await ok(['commit', '-q', '-m', 'Main only']);
      await ok(['push', '-q', 'origin', 'main']);

      pr = (
        await octokit.rest.pulls.create({
          owner: OWNER,
          repo: REPO,
          head: branch,
          base: 'main',
          title: 'Feature',
          body: 'Adds docs',
        })
      ).data.number;
    });

    it("lists the files of base...head with git's patches", async () => {
      const files = await octokit.paginate(octokit.rest.pulls.listFiles, {
        owner: OWNER,
        repo: REPO,
        pull_number: pr,
        per_page: 2,
      });
      const byName = Object.fromEntries(files.map((f) => [f.filename, f]));
      expect(Object.keys(byName).sort()).toEqual(['docs/new.md', 'src/index.ts', 'src/long.ts', 'src/new-name.ts']);
      expect(byName['src/long.ts']).toMatchObject({ status: 'modified', additions: 2, deletions: 2, changes: 4 });
      expect(byName['src/long.ts']!.patch!.match(/^@@ /gm)).toHaveLength(2);
      expect(byName['src/long.ts']!.patch).toContain('-export const l25 = 25;\n+export const l25 = 250;');
      expect(byName['src/new-name.ts']).toMatchObject({
        status: 'renamed',
        previous_filename: 'src/old-name.ts',
        changes: 0,
      });
      expect(byName['src/new-name.ts']!.patch).toBeUndefined();
      expect(byName['src/index.ts']).toMatchObject({ status: 'removed', additions: 0, deletions: 1 });
      expect(byName['docs/new.md']).toMatchObject({ status: 'added', additions: 3, deletions: 0 });
      expect(byName['docs/new.md']!.patch).toBe('@@ -0,0 +1,3 @@\n+# New\n+\n+Hello reviewers');
      const blob = await git(['--git-dir', join(work, 'reviews', '.git'), 'rev-parse', `${branch}:docs/new.md`]);
      expect(byName['docs/new.md']!.sha).toBe(blob.stdout.toString().trim());

      const got = await octokit.rest.pulls.get({ owner: OWNER, repo: REPO, pull_number: pr });
      expect(got.data).toMatchObject({ changed_files: 4, additions: 5, deletions: 3, commits: 1 });
      expect(responseProblems).toEqual([]);
      expect(gh.violations).toEqual([]);
    });

    it('records reviews with comments anchored in the real diff, and serves them', async () => {
      await expect(
        gh.addReview(OWNER, REPO, pr, {
          user: 'alice',
          state: 'COMMENTED',
          body: 'x',
          comments: [{ path: 'src/long.ts', line: 14, body: 'untouched line' }],
        }),
      ).rejects.toThrow(/src\/long\.ts:14 .*not in the pull request's diff/);
      expect((await octokit.rest.pulls.listReviews({ owner: OWNER, repo: REPO, pull_number: pr })).data).toEqual([]);

      const added = await gh.addReview(OWNER, REPO, pr, {
        user: 'alice',
        state: 'CHANGES_REQUESTED',
        body: 'Please fix these',
        comments: [
          { path: 'src/long.ts', line: 25, body: 'Why 250?' },
          { path: 'docs/new.md', line: 3, body: 'Say hello to everyone' },
        ],
      });
      const head = await gh.headSha(OWNER, REPO, branch);
      expect(added.review).toMatchObject({
        id: added.reviewId,
        state: 'CHANGES_REQUESTED',
        commit_id: head,
        user: { login: 'alice' },
      });
      expect(added.pullRequest).toMatchObject({ number: pr, head: { ref: branch, sha: head }, base: { ref: 'main' } });
      expect(
        spec.checkResponse('GET', `/repos/${OWNER}/${REPO}/pulls/${pr}/reviews/${added.reviewId}`, 200, added.review),
      ).toEqual([]);
      expect(spec.checkResponse('GET', `/repos/${OWNER}/${REPO}/pulls/${pr}`, 200, added.pullRequest)).toEqual([]);

      const reviews = await octokit.rest.pulls.listReviews({ owner: OWNER, repo: REPO, pull_number: pr });
      expect(reviews.data.map((v) => [v.id, v.state, v.body])).toEqual([
        [added.reviewId, 'CHANGES_REQUESTED', 'Please fix these'],
      ]);
      const one = await octokit.rest.pulls.getReview({
        owner: OWNER,
        repo: REPO,
        pull_number: pr,
        review_id: added.reviewId,
      });
      expect(one.data).toMatchObject({ id: added.reviewId, commit_id: head, submitted_at: expect.any(String) });
      await expect(
        octokit.rest.pulls.getReview({ owner: OWNER, repo: REPO, pull_number: pr, review_id: 1 }),
      ).rejects.toMatchObject({ status: 404 });

      const inReview = await octokit.rest.pulls.listCommentsForReview({
        owner: OWNER,
        repo: REPO,
        pull_number: pr,
        review_id: added.reviewId,
      });
      expect(inReview.data.map((c) => c.id)).toEqual(added.commentIds);
      const [onLong, onDocs] = inReview.data as [(typeof inReview.data)[0], (typeof inReview.data)[0]];
      expect(onLong).toMatchObject({
        path: 'src/long.ts',
        line: 25,
        original_line: 25,
        side: 'RIGHT',
        commit_id: head,
        pull_request_review_id: added.reviewId,
      });
      // The hunk runs from its header down to the commented line, as on GitHub.
      expect(onLong.diff_hunk).toMatch(/^@@ -\d+,\d+ \+\d+,\d+ @@/);
      expect(onLong.diff_hunk).toContain('+export const l25 = 250;');
      expect(onLong.diff_hunk.endsWith('+export const l25 = 250;')).toBe(true);
      expect(onLong.diff_hunk).not.toContain('l3 = 300');
      const files = (await octokit.rest.pulls.listFiles({ owner: OWNER, repo: REPO, pull_number: pr })).data;
      const longPatch = files.find((f) => f.filename === 'src/long.ts')!.patch!.split('\n');
      expect(onLong.position).toBe(longPatch.indexOf('+export const l25 = 250;'));
      expect(onDocs).toMatchObject({
        path: 'docs/new.md',
        line: 3,
        position: 3,
        diff_hunk: '@@ -0,0 +1,3 @@\n+# New\n+\n+Hello reviewers',
      });

      const all = await octokit.rest.pulls.listReviewComments({ owner: OWNER, repo: REPO, pull_number: pr });
      expect(all.data.map((c) => c.body)).toEqual(['Why 250?', 'Say hello to everyone']);
      const single = await octokit.rest.pulls.getReviewComment({
        owner: OWNER,
        repo: REPO,
        comment_id: added.commentIds[1]!,
      });
      expect(single.data).toMatchObject({
        id: added.commentIds[1],
        body: 'Say hello to everyone',
        user: { login: 'alice' },
      });
      await expect(
        octokit.rest.pulls.getReviewComment({ owner: OWNER, repo: REPO, comment_id: 1 }),
      ).rejects.toMatchObject({ status: 404 });
      expect((await octokit.rest.pulls.get({ owner: OWNER, repo: REPO, pull_number: pr })).data.review_comments).toBe(
        2,
      );
      expect(responseProblems).toEqual([]);
      expect(gh.violations).toEqual([]);
    });

    it('threads replies to review comments under the first comment, as the app bot', async () => {
      const [first] = gh.reviewComments(OWNER, REPO, pr);
      const reply = await octokit.rest.pulls.createReplyForReviewComment({
        owner: OWNER,
        repo: REPO,
        pull_number: pr,
        comment_id: first!.id,
        body: 'Fixed in abc',
      });
      expect(reply.status).toBe(201);
      const top = (await octokit.rest.pulls.getReviewComment({ owner: OWNER, repo: REPO, comment_id: first!.id })).data;
      expect(reply.data).toMatchObject({
        in_reply_to_id: first!.id,
        path: top.path,
        line: top.line,
        diff_hunk: top.diff_hunk,
        body: 'Fixed in abc',
        user: { login: gh.botLogin, type: 'Bot' },
      });
      expect(top.in_reply_to_id).toBeUndefined();
      // A reply to the reply still joins the first comment's thread.
      const second = await octokit.rest.pulls.createReplyForReviewComment({
        owner: OWNER,
        repo: REPO,
        pull_number: pr,
        comment_id: reply.data.id,
        body: 'And again',
      });
      expect(second.data.in_reply_to_id).toBe(first!.id);
      await expect(
        octokit.rest.pulls.createReplyForReviewComment({
          owner: OWNER,
          repo: REPO,
          pull_number: 8,
          comment_id: first!.id,
          body: 'wrong PR',
        }),
      ).rejects.toMatchObject({ status: 404 });

      const comments = gh.reviewComments(OWNER, REPO, pr);
      expect(comments.filter((c) => c.inReplyTo === first!.id).map((c) => [c.body, c.user])).toEqual([
        ['Fixed in abc', gh.botLogin],
        ['And again', gh.botLogin],
      ]);
      expect(comments.filter((c) => c.inReplyTo === undefined)).toHaveLength(2);
      // Each reply is a single-comment review by the replier, as on GitHub.
      const reviews = (await octokit.rest.pulls.listReviews({ owner: OWNER, repo: REPO, pull_number: pr })).data;
      expect(reviews.map((v) => [v.state, v.user?.login])).toEqual([
        ['CHANGES_REQUESTED', 'alice'],
        ['COMMENTED', gh.botLogin],
        ['COMMENTED', gh.botLogin],
      ]);
      const listed = await octokit.paginate(octokit.rest.pulls.listReviewComments, {
        owner: OWNER,
        repo: REPO,
        pull_number: pr,
        per_page: 3,
      });
      expect(listed).toHaveLength(4);

      const eyes = await octokit.rest.reactions.createForPullRequestReviewComment({
        owner: OWNER,
        repo: REPO,
        comment_id: first!.id,
        content: 'eyes',
      });
      expect(eyes.status).toBe(201);
      expect(gh.commentReactions(OWNER, REPO, first!.id)).toEqual([{ content: 'eyes', user: gh.botLogin }]);
      expect(responseProblems).toEqual([]);
      expect(gh.violations).toEqual([]);
    });

    it("takes comments on a pull request's conversation and reactions to them", async () => {
      const id = gh.addComment(OWNER, REPO, pr, { user: 'alice', body: '@issue-agent-test retry' });
      expect(typeof id).toBe('number');
      const fetched = await octokit.rest.issues.getComment({ owner: OWNER, repo: REPO, comment_id: id });
      expect(fetched.data).toMatchObject({
        id,
        body: '@issue-agent-test retry',
        html_url: expect.stringContaining(`#issuecomment-${id}`),
      });
      const r = await octokit.rest.reactions.createForIssueComment({
        owner: OWNER,
        repo: REPO,
        comment_id: id,
        content: '+1',
      });
      expect(r.status).toBe(201);
      expect(gh.commentReactions(OWNER, REPO, id)).toEqual([{ content: '+1', user: gh.botLogin }]);
      expect(gh.comments(OWNER, REPO, pr).map((c) => c.id)).toEqual([id]);
      expect(responseProblems).toEqual([]);
      expect(gh.violations).toEqual([]);
    });

    it('tells branch heads and ancestry, so tests can rule out force pushes', async () => {
      const main = await gh.headSha(OWNER, REPO, 'main');
      const head = await gh.headSha(OWNER, REPO, branch);
      expect(main).toMatch(/^[0-9a-f]{40}$/);
      expect(await gh.headSha(OWNER, REPO, 'no-such-branch')).toBeNull();
      expect(await gh.isAncestor(OWNER, REPO, mainBefore, main!)).toBe(true);
      expect(await gh.isAncestor(OWNER, REPO, main!, main!)).toBe(true);
      expect(await gh.isAncestor(OWNER, REPO, head!, main!)).toBe(false);
      expect(await gh.isAncestor(OWNER, REPO, mainBefore, head!)).toBe(true);
      await expect(gh.isAncestor(OWNER, REPO, '0'.repeat(40), main!)).rejects.toThrow(/merge-base/);
    });

    it('builds a pull_request_review.submitted payload from a recorded review', async () => {
      const added = await gh.addReview(OWNER, REPO, pr, { user: 'alice', state: 'APPROVED', body: '' });
      const payload = pullRequestReviewPayload({
        owner: OWNER,
        repo: REPO,
        installationId: gh.installationId,
        url: gh.url,
        sender: { login: 'alice', type: 'User' },
        review: added.review,
        pullRequest: added.pullRequest,
      });
      expect(payload).toMatchObject({
        action: 'submitted',
        review: {
          id: added.reviewId,
          state: 'approved',
          body: null,
          user: { login: 'alice' },
          commit_id: added.pullRequest.head.sha,
          html_url: `${gh.url}/${OWNER}/${REPO}/pull/${pr}#pullrequestreview-${added.reviewId}`,
          pull_request_url: `${gh.apiUrl}/repos/${OWNER}/${REPO}/pulls/${pr}`,
        },
        pull_request: {
          number: pr,
          title: 'Feature',
          state: 'open',
          user: { login: gh.botLogin },
          head: { ref: branch, sha: added.pullRequest.head.sha, repo: { full_name: `${OWNER}/${REPO}` } },
          base: { ref: 'main' },
          html_url: `${gh.url}/${OWNER}/${REPO}/pull/${pr}`,
        },
        repository: { full_name: `${OWNER}/${REPO}`, clone_url: `${gh.url}/${OWNER}/${REPO}.git` },
        sender: { login: 'alice', type: 'User' },
        installation: { id: gh.installationId },
      });
      expect(JSON.stringify(payload)).not.toContain('Codertocat');
      expect(spec.checkWebhook('pull-request-review-submitted', payload)).toEqual([]);

      const changes = await gh.addReview(OWNER, REPO, pr, { user: 'alice', state: 'CHANGES_REQUESTED', body: 'More' });
      const again = pullRequestReviewPayload({
        owner: OWNER,
        repo: REPO,
        installationId: gh.installationId,
        url: gh.url,
        sender: { login: 'alice', type: 'User' },
        review: changes.review,
        pullRequest: changes.pullRequest,
      });
      expect(again.review).toMatchObject({ state: 'changes_requested', body: 'More' });
      await expect(
        gh.addReview(OWNER, REPO, pr, { user: 'alice', state: 'CHANGES_REQUESTED', body: ' ' }),
      ).rejects.toThrow(/needs a body/);
      await expect(
        gh.addReview(OWNER, REPO, pr, { user: gh.botLogin, state: 'APPROVED', body: 'LGTM' }),
      ).rejects.toThrow(/own pull request/);
    });
  });
});

describe('GitHub stand-in: GraphQL', () => {
  let gh: GitHubStandIn;
  let octokit: InstanceType<typeof ProbotOctokit>;
  beforeAll(async () => {
    gh = await startGitHubStandIn();
    await gh.addRepo({ owner: OWNER, repo: REPO, files: { 'README.md': '# widgets\n' } });
    gh.addIssue(OWNER, REPO, { number: 3, title: 'Old title', body: 'old body', user: 'alice' });
    octokit = new ProbotOctokit({
      baseUrl: gh.apiUrl,
      auth: { appId: gh.appId, privateKey: gh.privateKey, installationId: gh.installationId },
      throttle: { enabled: false },
      retry: { enabled: false },
    });
  });
  afterAll(async () => {
    await gh?.close();
  });

  it("serves an issue's edit history at /api/graphql, as GitHub orders and names it", async () => {
    gh.editIssue(OWNER, REPO, 3, { body: 'new body' }, 'bob');
    gh.editIssue(OWNER, REPO, 3, { title: 'New title' }, 'ci-helper[bot]');
    const data = await octokit.graphql<{
      repository: { issue: Record<string, { totalCount: number; nodes: Array<Record<string, unknown>> }> };
    }>(
      `query($owner: String!, $repo: String!) { repository(owner: $owner, name: $repo) { issue(number: 3) {
        userContentEdits(first: 10) { totalCount nodes { editedAt editor { __typename login } diff } }
        timelineItems(first: 10, itemTypes: [RENAMED_TITLE_EVENT]) { totalCount nodes { __typename ... on RenamedTitleEvent { previousTitle currentTitle actor { __typename login } } } }
      } } }`,
      { owner: OWNER, repo: REPO },
    );
    const issue = data.repository.issue;
    // The edit, newest first, then the first version by its author.
    expect(issue.userContentEdits!.nodes.map((n) => [(n.editor as { login: string }).login, n.diff])).toEqual([
      ['bob', 'new body'],
      ['alice', 'old body'],
    ]);
    expect(issue.timelineItems!.nodes).toEqual([
      {
        __typename: 'RenamedTitleEvent',
        previousTitle: 'Old title',
        currentTitle: 'New title',
        actor: { __typename: 'Bot', login: 'ci-helper' },
      },
    ]);
    expect(gh.violations).toEqual([]);
  });

  it("refuses a query GitHub's schema refuses, and records it as a violation", async () => {
    await expect(
      octokit.graphql('query { repository(owner: "acme", name: "widgets") { issue(number: 3) { editHistory } } }'),
    ).rejects.toThrow(/Cannot query field "editHistory" on type "Issue"/);
    expect(gh.violations.some((v) => v.includes('editHistory'))).toBe(true);
    gh.violations.length = 0;
  });

  it('answers NOT_FOUND for a missing issue, and 401 without a token', async () => {
    await expect(
      octokit.graphql('query { repository(owner: "acme", name: "widgets") { issue(number: 99) { title } } }'),
    ).rejects.toThrow(/Could not resolve to an Issue with the number of 99/);
    const res = await fetch(`${gh.url}/api/graphql`, {
      method: 'POST',
      body: JSON.stringify({ query: '{ viewer { login } }' }),
    });
    expect(res.status).toBe(401);
  });
});

describe('GitHub stand-in: injected faults and token lifetime', () => {
  let gh: GitHubStandIn;
  const appJwt = () => jwt(gh.privateKey, { iss: String(gh.appId), iat: nowSeconds() - 30, exp: nowSeconds() + 540 });
  const mint = async () => {
    const res = await fetch(`${gh.apiUrl}/app/installations/${gh.installationId}/access_tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${appJwt()}` },
    });
    return { status: res.status, body: (await res.json()) as { token: string; expires_at: string } };
  };
  const get = async (path: string, token: string) => {
    const res = await fetch(`${gh.apiUrl}${path}`, { headers: { authorization: `token ${token}` } });
    return {
      status: res.status,
      headers: res.headers,
      body: (await res.json().catch(() => undefined)) as { message?: string } | undefined,
    };
  };

  beforeAll(async () => {
    gh = await startGitHubStandIn({ tokenTtlMs: 50 });
    await gh.addRepo({ owner: OWNER, repo: REPO, files: { 'README.md': '# widgets\n' } });
    gh.addIssue(OWNER, REPO, { number: 7, title: 'Fix the README', body: 'It says widgets', user: 'alice' });
  });
  afterAll(async () => {
    await gh?.close();
  });

  it('mints tokens with the configured lifetime; an expired one gets 401 Bad credentials, for REST and git', async () => {
    const { status, body } = await mint();
    expect(status).toBe(201);
    expect(Date.parse(body.expires_at) - Date.now()).toBeLessThan(60_000);
    await new Promise((r) => setTimeout(r, 100));
    const expired = await get(`/repos/${OWNER}/${REPO}`, body.token);
    expect(expired.status).toBe(401);
    expect(expired.body).toMatchObject({ message: 'Bad credentials' });
    const remote = `${gh.url}/${OWNER}/${REPO}.git`.replace('http://', `http://x-access-token:${body.token}@`);
    expect((await git(['ls-remote', remote], { env: { GIT_TERMINAL_PROMPT: '0' } })).code).not.toBe(0);

    gh.setTokenTtl(3600_000);
    const fresh = await mint();
    expect(Date.parse(fresh.body.expires_at) - Date.now()).toBeGreaterThan(3500_000);
    expect((await get(`/repos/${OWNER}/${REPO}`, fresh.body.token)).status).toBe(200);
  });

  it('answers matching requests with an injected error N times, recorded like any answer', async () => {
    gh.setTokenTtl(3600_000);
    const { token } = (await mint()).body;
    gh.failNext({ method: 'GET', route: 'issues/get' }, { status: 502, body: { message: 'Server Error' } }, 2);
    gh.failNext({ route: /\/issues\/7$/ }, secondaryRateLimit(1));
    const from = gh.requests.length;
    // Another route and another method are not matched.
    expect((await get(`/repos/${OWNER}/${REPO}`, token)).status).toBe(200);
    const statuses: number[] = [];
    let limited: Awaited<ReturnType<typeof get>> | undefined;
    for (let i = 0; i < 4; i++) {
      const r = await get(`/repos/${OWNER}/${REPO}/issues/7`, token);
      statuses.push(r.status);
      if (r.status === 403) limited = r;
    }
    expect(statuses).toEqual([502, 502, 403, 200]);
    expect(limited?.headers.get('retry-after')).toBe('1');
    expect(limited?.body?.message).toMatch(
      /^You have exceeded a secondary rate limit\. Please wait a few minutes before you try again\./,
    );
    expect(gh.requests.slice(from).map((r) => r.status)).toEqual([200, 502, 502, 403, 200]);

    gh.failNext({ route: 'issues/get' }, { status: 429, headers: { 'retry-after': '1' } }, Number.POSITIVE_INFINITY);
    expect((await get(`/repos/${OWNER}/${REPO}/issues/7`, token)).status).toBe(429);
    expect((await get(`/repos/${OWNER}/${REPO}/issues/7`, token)).status).toBe(429);
    gh.clearFaults();
    expect((await get(`/repos/${OWNER}/${REPO}/issues/7`, token)).status).toBe(200);
    expect(gh.violations).toEqual([]);
  });
});

describe('GitHub stand-in: CI state of a pull request', () => {
  let gh: GitHubStandIn;
  let octokit: InstanceType<typeof ProbotOctokit>;
  let work: string;
  let sha: string;
  let pr: { number: number; node_id: string };
  let ids: Record<string, { checkRunId: number; checkSuiteId: number; workflowRunId?: number }>;
  const responseProblems: string[] = [];
  const spec = loadOpenApi();
  const branch = 'fix/ci';

  beforeAll(async () => {
    gh = await startGitHubStandIn();
    work = await mkdtemp(join(tmpdir(), 'stand-in-ci-'));
    await gh.addRepo({ owner: OWNER, repo: REPO, files: { 'README.md': '# widgets\n' } });
    octokit = new ProbotOctokit({
      baseUrl: gh.apiUrl,
      auth: { appId: gh.appId, privateKey: gh.privateKey, installationId: gh.installationId },
      throttle: { enabled: false },
      retry: { enabled: false },
    });
    octokit.hook.after('request', (response, options) => {
      const path = new URL(options.url, gh.apiUrl).pathname.replace(/^\/api\/v3/, '');
      // fetch follows the logs route's 302, so the client sees the log's 200, which GitHub's description cannot list.
      if (path.endsWith('/logs')) return;
      responseProblems.push(...spec.checkResponse(options.method, path, response.status, response.data));
    });
    const token = (await octokit.auth({ type: 'installation' })) as { token: string };
    const authed = `${gh.url}/${OWNER}/${REPO}.git`.replace('http://', `http://x-access-token:${token.token}@`);
    const dir = join(work, 'clone');
    expect((await git(['clone', '--quiet', authed, dir])).code).toBe(0);
    for (const args of [
      ['checkout', '-q', '-b', branch],
      ['commit', '-q', '--allow-empty', '-m', 'Fix CI'],
      ['push', '-q', 'origin', branch],
    ]) {
      const res = await git(['-C', dir, ...args]);
      if (res.code !== 0) throw new Error(`git ${args.join(' ')}: ${res.stderr}`);
    }
    sha = (await gh.headSha(OWNER, REPO, branch))!;
    const created = await octokit.rest.pulls.create({
      owner: OWNER,
      repo: REPO,
      head: branch,
      base: 'main',
      title: 'Fix CI',
      draft: true,
    });
    pr = { number: created.data.number, node_id: created.data.node_id };
    const scripted = await gh.setChecks(OWNER, REPO, sha, [
      { name: 'lint', workflow: 'CI', status: 'completed', conclusion: 'success', log: 'lint ok\n' },
      {
        name: 'test',
        workflow: 'CI',
        status: 'completed',
        conclusion: 'failure',
        output: { title: '1 test failed', summary: 'src/x.test.ts', text: 'expected 2, got 3' },
        annotations: [
          { path: 'src/x.ts', start_line: 4, end_line: 5, annotation_level: 'failure', message: 'expected 2, got 3' },
        ],
        log: '2026-01-01T00:00:00Z FAIL src/x.test.ts\n2026-01-01T00:00:01Z ##[error]Process completed with exit code 1.\n',
        rerun: { status: 'completed', conclusion: 'success', log: 'all green\n' },
      },
      { name: 'e2e', workflow: 'Slow', status: 'in_progress' },
      { name: 'preview', status: 'queued' },
    ]);
    ids = Object.fromEntries(scripted.map((x) => [x.name, x]));
    gh.setStatuses(OWNER, REPO, sha, [
      { context: 'ci/legacy', state: 'failure', description: 'Build failed', targetUrl: 'https://ci.example/1' },
      { context: 'ci/docs', state: 'success' },
    ]);
  });

  afterAll(async () => {
    await gh?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("lists a head commit's check runs, suites and combined status as GitHub does", async () => {
    const { data } = await octokit.rest.checks.listForRef({ owner: OWNER, repo: REPO, ref: branch });
    expect(data.total_count).toBe(4);
    const byName = Object.fromEntries(data.check_runs.map((c) => [c.name, c]));
    expect(byName.test).toMatchObject({
      id: ids.test!.checkRunId,
      head_sha: sha,
      status: 'completed',
      conclusion: 'failure',
      check_suite: { id: ids.test!.checkSuiteId },
      app: { slug: 'github-actions' },
      output: { title: '1 test failed', summary: 'src/x.test.ts', text: 'expected 2, got 3', annotations_count: 1 },
      pull_requests: [{ number: pr.number, head: { ref: branch, sha }, base: { ref: 'main' } }],
      html_url: `${gh.url}/${OWNER}/${REPO}/actions/runs/${ids.test!.workflowRunId}/job/${ids.test!.checkRunId}`,
    });
    expect(byName.preview).toMatchObject({ status: 'queued', conclusion: null, app: { slug: 'stand-in-ci' } });
    expect(ids.lint!.checkSuiteId).toBe(ids.test!.checkSuiteId);
    expect(ids.e2e!.checkSuiteId).not.toBe(ids.test!.checkSuiteId);

    const failing = await octokit.rest.checks.listForRef({ owner: OWNER, repo: REPO, ref: sha, check_name: 'test' });
    expect(failing.data.check_runs.map((c) => c.id)).toEqual([ids.test!.checkRunId]);
    const one = await octokit.rest.checks.get({ owner: OWNER, repo: REPO, check_run_id: ids.lint!.checkRunId });
    expect(one.data).toMatchObject({ name: 'lint', conclusion: 'success' });
    const annotations = await octokit.rest.checks.listAnnotations({
      owner: OWNER,
      repo: REPO,
      check_run_id: ids.test!.checkRunId,
    });
    expect(annotations.data).toEqual([
      expect.objectContaining({ path: 'src/x.ts', start_line: 4, end_line: 5, annotation_level: 'failure' }),
    ]);

    const suites = await octokit.rest.checks.listSuitesForRef({ owner: OWNER, repo: REPO, ref: sha });
    const suiteById = Object.fromEntries(suites.data.check_suites.map((x) => [x.id, x]));
    expect(suiteById[ids.test!.checkSuiteId]).toMatchObject({
      status: 'completed',
      conclusion: 'failure',
      head_branch: branch,
      head_sha: sha,
      head_commit: { id: sha, message: 'Fix CI' },
      latest_check_runs_count: 2,
    });
    expect(suiteById[ids.e2e!.checkSuiteId]).toMatchObject({ status: 'in_progress', conclusion: null });
    expect(suiteById[ids.preview!.checkSuiteId]).toMatchObject({ status: 'queued', app: { slug: 'stand-in-ci' } });

    const combined = await octokit.rest.repos.getCombinedStatusForRef({ owner: OWNER, repo: REPO, ref: branch });
    expect(combined.data).toMatchObject({ state: 'failure', sha, total_count: 2 });
    expect(combined.data.statuses.map((x) => [x.context, x.state, x.target_url])).toEqual([
      ['ci/legacy', 'failure', 'https://ci.example/1'],
      ['ci/docs', 'success', null],
    ]);
    await expect(
      octokit.rest.checks.listForRef({ owner: OWNER, repo: REPO, ref: 'no-such-ref' }),
    ).rejects.toMatchObject({ status: 422 });
    expect(responseProblems).toEqual([]);
    expect(gh.violations).toEqual([]);
  });

  it("serves a failed job's workflow run, jobs and log, the log through GitHub's redirect", async () => {
    const runId = ids.test!.workflowRunId!;
    const run = await octokit.rest.actions.getWorkflowRun({ owner: OWNER, repo: REPO, run_id: runId });
    expect(run.data).toMatchObject({
      id: runId,
      name: 'CI',
      head_sha: sha,
      head_branch: branch,
      status: 'completed',
      conclusion: 'failure',
      run_attempt: 1,
      check_suite_id: ids.test!.checkSuiteId,
      pull_requests: [{ number: pr.number }],
    });
    const jobs = await octokit.rest.actions.listJobsForWorkflowRun({ owner: OWNER, repo: REPO, run_id: runId });
    expect(jobs.data.jobs.map((j) => [j.name, j.conclusion, j.id])).toEqual([
      ['lint', 'success', ids.lint!.checkRunId],
      ['test', 'failure', ids.test!.checkRunId],
    ]);
    const job = await octokit.rest.actions.getJobForWorkflowRun({
      owner: OWNER,
      repo: REPO,
      job_id: ids.test!.checkRunId,
    });
    expect(job.data).toMatchObject({ run_id: runId, workflow_name: 'CI', head_sha: sha, status: 'completed' });

    const from = gh.requests.length;
    const log = await octokit.rest.actions.downloadJobLogsForWorkflowRun({
      owner: OWNER,
      repo: REPO,
      job_id: ids.test!.checkRunId,
    });
    expect(log.data).toContain('FAIL src/x.test.ts');
    expect(gh.requests.slice(from).map((r) => r.status)).toEqual([302, 200]);
    const location = new URL(log.url);
    expect(location.pathname).toBe(`/_stand-in/actions-logs/${ids.test!.checkRunId}`);
    // The redirect's URL is "signed": without its signature there is no log.
    expect((await fetch(`${gh.url}${location.pathname}`)).status).toBe(404);
    await expect(
      octokit.rest.actions.downloadJobLogsForWorkflowRun({ owner: OWNER, repo: REPO, job_id: ids.preview!.checkRunId }),
    ).rejects.toMatchObject({ status: 404 });
    expect(responseProblems).toEqual([]);
  });

  it('records a job re-run and concludes it as the test scripted, as a new attempt', async () => {
    const res = await octokit.rest.actions.reRunJobForWorkflowRun({
      owner: OWNER,
      repo: REPO,
      job_id: ids.test!.checkRunId,
    });
    expect(res.status).toBe(201);
    const [rerun, ...more] = gh.reruns(OWNER, REPO);
    expect(more).toEqual([]);
    expect(rerun).toMatchObject({
      jobId: ids.test!.checkRunId,
      name: 'test',
      headSha: sha,
      workflowRunId: ids.test!.workflowRunId,
      enableDebugLogging: false,
    });
    expect(rerun!.newJobId).not.toBe(ids.test!.checkRunId);

    const latest = await octokit.rest.checks.listForRef({ owner: OWNER, repo: REPO, ref: sha, check_name: 'test' });
    expect(latest.data.check_runs.map((c) => [c.id, c.conclusion])).toEqual([[rerun!.newJobId, 'success']]);
    const all = await octokit.rest.checks.listForRef({ owner: OWNER, repo: REPO, ref: sha, filter: 'all' });
    expect(all.data.total_count).toBe(5);
    const run = await octokit.rest.actions.getWorkflowRun({ owner: OWNER, repo: REPO, run_id: rerun!.workflowRunId });
    expect(run.data).toMatchObject({ run_attempt: 2, conclusion: 'success' });
    const log = await octokit.rest.actions.downloadJobLogsForWorkflowRun({
      owner: OWNER,
      repo: REPO,
      job_id: rerun!.newJobId,
    });
    expect(log.data).toBe('all green\n');
    // A run still going cannot re-run a job, as on GitHub.
    await expect(
      octokit.rest.actions.reRunJobForWorkflowRun({ owner: OWNER, repo: REPO, job_id: ids.e2e!.checkRunId }),
    ).rejects.toMatchObject({ status: 403 });
    expect(gh.reruns(OWNER, REPO)).toHaveLength(1);
    expect(responseProblems).toEqual([]);
    expect(gh.violations).toEqual([]);
  });

  it('opens drafts and marks them ready for review through GraphQL', async () => {
    expect(gh.pulls(OWNER, REPO)).toEqual([expect.objectContaining({ number: pr.number, draft: true })]);
    const before = await octokit.rest.pulls.get({ owner: OWNER, repo: REPO, pull_number: pr.number });
    expect(before.data.draft).toBe(true);
    const data = await octokit.graphql<{ markPullRequestReadyForReview: { pullRequest: Record<string, unknown> } }>(
      `mutation($id: ID!) { markPullRequestReadyForReview(input: { pullRequestId: $id }) {
        pullRequest { isDraft number } } }`,
      { id: pr.node_id },
    );
    expect(data.markPullRequestReadyForReview.pullRequest).toEqual({ isDraft: false, number: pr.number });
    const after = await octokit.rest.pulls.get({ owner: OWNER, repo: REPO, pull_number: pr.number });
    expect(after.data.draft).toBe(false);
    await expect(
      octokit.graphql(
        'mutation { markPullRequestReadyForReview(input: { pullRequestId: "nope" }) { clientMutationId } }',
      ),
    ).rejects.toThrow(/Could not resolve to a node with the global id of 'nope'/);
    expect(gh.violations).toEqual([]);
  });
});

describe('webhook helpers: CI events', () => {
  const url = 'http://127.0.0.1:1';
  const sha = 'a'.repeat(40);
  const base = { owner: OWNER, repo: REPO, url, installationId: 99, headSha: sha, headBranch: 'fix/ci' };
  const pullRequests = [
    { number: 8, id: 808, headRef: 'fix/ci', headSha: sha, baseRef: 'main', baseSha: 'b'.repeat(40) },
  ];
  const pulls = [
    {
      id: 808,
      number: 8,
      url: `${url}/api/v3/repos/${OWNER}/${REPO}/pulls/8`,
      head: { ref: 'fix/ci', sha, repo: { name: REPO } },
      base: { ref: 'main', sha: 'b'.repeat(40) },
    },
  ];
  const common = {
    repository: { full_name: `${OWNER}/${REPO}`, clone_url: `${url}/${OWNER}/${REPO}.git` },
    installation: { id: 99 },
    sender: { login: OWNER },
  };

  it('builds check_suite.completed and check_run.completed from the real examples', () => {
    const suite = checkSuiteCompletedPayload({ ...base, conclusion: 'failure', checkSuiteId: 31, pullRequests });
    expect(suite).toMatchObject({
      ...common,
      action: 'completed',
      check_suite: {
        id: 31,
        head_sha: sha,
        head_branch: 'fix/ci',
        status: 'completed',
        conclusion: 'failure',
        pull_requests: pulls,
        app: { slug: 'github-actions', id: 15368 },
        head_commit: { id: sha },
      },
    });
    expect(JSON.stringify(suite)).not.toContain('Codertocat/Hello-World');
    expect(loadOpenApi().checkWebhook('check-suite-completed', suite)).toEqual([]);

    const run = checkRunCompletedPayload({
      ...base,
      conclusion: 'timed_out',
      checkSuiteId: 31,
      checkRunId: 41,
      name: 'test',
      pullRequests,
      app: { id: 4343, slug: 'stand-in-ci', name: 'Stand-in CI' },
      sender: { login: 'ci-bot[bot]', type: 'Bot' },
      output: { title: 'Timed out', summary: 'after 6h' },
    });
    expect(run).toMatchObject({
      action: 'completed',
      check_run: {
        id: 41,
        name: 'test',
        head_sha: sha,
        conclusion: 'timed_out',
        output: { title: 'Timed out', summary: 'after 6h', text: null },
        pull_requests: pulls,
        app: { slug: 'stand-in-ci' },
        check_suite: { id: 31, head_branch: 'fix/ci', head_sha: sha, pull_requests: pulls },
      },
      sender: { login: 'ci-bot[bot]', type: 'Bot' },
      installation: { id: 99 },
    });
    expect(JSON.stringify(run)).not.toContain('Codertocat/Hello-World');
    expect(loadOpenApi().checkWebhook('check-run-completed', run)).toEqual([]);
  });

  it('builds workflow_run.completed and status from the real examples', () => {
    const run = workflowRunCompletedPayload({
      ...base,
      conclusion: 'success',
      checkSuiteId: 31,
      workflowRunId: 51,
      name: 'CI',
      runAttempt: 2,
      pullRequests,
    });
    expect(run).toMatchObject({
      ...common,
      action: 'completed',
      workflow_run: {
        id: 51,
        name: 'CI',
        head_sha: sha,
        head_branch: 'fix/ci',
        conclusion: 'success',
        run_attempt: 2,
        check_suite_id: 31,
        pull_requests: pulls,
        previous_attempt_url: `${url}/api/v3/repos/${OWNER}/${REPO}/actions/runs/51/attempts/1`,
        repository: { full_name: `${OWNER}/${REPO}` },
        head_repository: { full_name: `${OWNER}/${REPO}` },
      },
      workflow: { name: 'CI' },
    });
    expect(run.organization).toBeUndefined();
    expect(JSON.stringify(run)).not.toMatch(/Codertocat\/Hello-World|octo-org\/octo-repo/);
    expect(loadOpenApi().checkWebhook('workflow-run-completed', run)).toEqual([]);

    const status = statusPayload({
      owner: OWNER,
      repo: REPO,
      url,
      installationId: 99,
      sha,
      branches: ['fix/ci'],
      context: 'ci/legacy',
      state: 'failure',
      targetUrl: 'https://ci.example/1',
    });
    expect(status).toMatchObject({
      ...common,
      sha,
      context: 'ci/legacy',
      state: 'failure',
      description: null,
      target_url: 'https://ci.example/1',
      commit: { sha },
      branches: [{ name: 'fix/ci', commit: { sha } }],
    });
    expect(JSON.stringify(status)).not.toContain('Codertocat/Hello-World');
    expect(loadOpenApi().checkWebhook('status', status)).toEqual([]);
  });
});

describe('webhook helpers', () => {
  it('loads real examples and signs deliveries as GitHub does', async () => {
    expect(loadExample('issue_comment', 'created')).toMatchObject({ action: 'created' });
    const a = loadExample('issues', 'labeled');
    (a.issue as { title: string }).title = 'changed';
    expect((loadExample('issues', 'labeled').issue as { title: string }).title).not.toBe('changed');

    const payload = issueLabeledPayload({
      owner: OWNER,
      repo: REPO,
      issueNumber: 7,
      title: 'T',
      body: 'B',
      label: 'agent',
      sender: { login: 'alice', type: 'User' },
      installationId: 99,
      url: 'http://127.0.0.1:1',
    });
    expect(payload).toMatchObject({
      action: 'labeled',
      issue: { number: 7, title: 'T', body: 'B', user: { login: 'alice' }, labels: [{ name: 'agent' }] },
      label: { name: 'agent' },
      repository: {
        name: REPO,
        full_name: `${OWNER}/${REPO}`,
        owner: { login: OWNER },
        clone_url: `http://127.0.0.1:1/${OWNER}/${REPO}.git`,
        default_branch: 'main',
      },
      sender: { login: 'alice', type: 'User' },
      installation: { id: 99 },
    });
    expect(JSON.stringify(payload)).not.toContain('Codertocat/Hello-World');
    expect(loadOpenApi().checkWebhook('issues-labeled', payload)).toEqual([]);

    const onIssue = issueCommentPayload({
      owner: OWNER,
      repo: REPO,
      issueNumber: 7,
      title: 'Fix the README',
      body: 'It says widgets',
      commentId: 1234,
      commentBody: '@issue-agent-test go',
      sender: { login: 'alice', type: 'User' },
      author: { login: OWNER, type: 'User' },
      installationId: 99,
      url: 'http://127.0.0.1:1',
      labels: ['agent'],
    });
    expect(onIssue).toMatchObject({
      action: 'created',
      issue: {
        number: 7,
        title: 'Fix the README',
        user: { login: OWNER },
        author_association: 'OWNER',
        html_url: `http://127.0.0.1:1/${OWNER}/${REPO}/issues/7`,
        labels: [{ name: 'agent' }],
      },
      comment: {
        id: 1234,
        body: '@issue-agent-test go',
        user: { login: 'alice', type: 'User' },
        author_association: 'NONE',
        html_url: `http://127.0.0.1:1/${OWNER}/${REPO}/issues/7#issuecomment-1234`,
        url: `http://127.0.0.1:1/api/v3/repos/${OWNER}/${REPO}/issues/comments/1234`,
      },
      repository: { full_name: `${OWNER}/${REPO}` },
      sender: { login: 'alice' },
      installation: { id: 99 },
    });
    expect((onIssue.issue as Record<string, unknown>).pull_request).toBeUndefined();
    expect(JSON.stringify(onIssue)).not.toContain('Codertocat');
    expect(loadOpenApi().checkWebhook('issue-comment-created', onIssue)).toEqual([]);

    const onPull = issueCommentPayload({
      owner: OWNER,
      repo: REPO,
      issueNumber: 8,
      title: 'Fix README',
      body: 'Closes #7',
      isPullRequest: true,
      commentId: 1235,
      commentBody: '@issue-agent-test retry',
      sender: { login: 'alice', type: 'User' },
      author: { login: 'issue-agent-test[bot]', type: 'Bot' },
      installationId: 99,
    });
    expect(onPull).toMatchObject({
      issue: {
        number: 8,
        user: { login: 'issue-agent-test[bot]', type: 'Bot' },
        html_url: `https://github.com/${OWNER}/${REPO}/pull/8`,
        pull_request: {
          url: `https://api.github.com/repos/${OWNER}/${REPO}/pulls/8`,
          html_url: `https://github.com/${OWNER}/${REPO}/pull/8`,
          diff_url: `https://github.com/${OWNER}/${REPO}/pull/8.diff`,
          patch_url: `https://github.com/${OWNER}/${REPO}/pull/8.patch`,
        },
        labels: [],
      },
      comment: {
        id: 1235,
        body: '@issue-agent-test retry',
        html_url: `https://github.com/${OWNER}/${REPO}/pull/8#issuecomment-1235`,
      },
    });
    expect(loadOpenApi().checkWebhook('issue-comment-created', onPull)).toEqual([]);
    expect(loadOpenApi().checkWebhook('no-such-event', {})).toEqual([
      "webhook no-such-event: not in GitHub's description",
    ]);

    const seen: Array<{ headers: Record<string, unknown>; body: string }> = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        seen.push({ headers: req.headers, body });
        res.statusCode = 202;
        res.end('queued');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const port = (server.address() as AddressInfo).port;
      const sent = await sendWebhook({
        url: `http://127.0.0.1:${port}/hook`,
        secret: 's3cret',
        event: 'issues',
        payload,
        deliveryId: 'd-1',
      });
      expect(sent).toMatchObject({ status: 202, body: 'queued' });
      const got = seen[0]!;
      expect(got.headers).toMatchObject({
        'x-github-event': 'issues',
        'x-github-delivery': 'd-1',
        'content-type': 'application/json',
      });
      expect(String(got.headers['user-agent'])).toMatch(/^GitHub-Hookshot\//);
      expect(await verify('s3cret', got.body, String(got.headers['x-hub-signature-256']))).toBe(true);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
