import { generateKeyPairSync, sign as rsaSign, type KeyObject } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { verify } from '@octokit/webhooks-methods';
import { ProbotOctokit } from 'probot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runGit } from './git.js';
import { loadOpenApi } from './openapi.js';
import { startGitHubStandIn, type GitHubStandIn } from './server.js';
import { issueLabeledPayload, loadExample, sendWebhook } from './webhooks.js';

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
    await gh.addRepo({ owner: OWNER, repo: REPO, files: { 'README.md': '# widgets\n', 'src/index.ts': 'export const x = 1;\n' } });
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
    expect(spec.checkResponse('GET', '/repos/a/b', 200, { id: 1 })).toContain('GET /repos/{owner}/{repo} → 200: response/name is required');
    expect(spec.checkResponse('GET', '/repos/a/b', 299, {})[0]).toMatch(/does not document status 299/);
  });

  it('mints installation tokens for a valid app JWT, in GitHub\'s shape', async () => {
    const res = await fetch(`${gh.apiUrl}/app/installations/${gh.installationId}/access_tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${jwt(gh.privateKey, { iss: String(gh.appId), iat: nowSeconds() - 30, exp: nowSeconds() + 540 })}` },
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
    const res = await fetch(`${gh.apiUrl}/repos/${OWNER}/${REPO}`, { headers: { authorization: 'token ghs_notissuedbythisserver000000000000000' } });
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
    expect(repo.data).toMatchObject({ default_branch: 'main', clone_url: `${gh.url}/${OWNER}/${REPO}.git`, full_name: `${OWNER}/${REPO}` });
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
    await expect(octokit.rest.repos.getContent({ owner: OWNER, repo: REPO, path: 'nope.md' })).rejects.toMatchObject({ status: 404 });
    expect(responseProblems).toEqual([]);
  });

  it('records comments, reactions and labels as the app bot', async () => {
    const r1 = await octokit.rest.reactions.createForIssue({ owner: OWNER, repo: REPO, issue_number: 7, content: 'eyes' });
    expect(r1.status).toBe(201);
    const r2 = await octokit.rest.reactions.createForIssue({ owner: OWNER, repo: REPO, issue_number: 7, content: 'eyes' });
    expect(r2.status).toBe(200);
    expect(gh.reactions(OWNER, REPO, 7)).toEqual([{ content: 'eyes', user: gh.botLogin }]);

    const created = await octokit.rest.issues.createComment({ owner: OWNER, repo: REPO, issue_number: 7, body: 'Working on it' });
    expect(created.status).toBe(201);
    expect(created.data.user).toMatchObject({ login: 'issue-agent-test[bot]', type: 'Bot' });
    await octokit.rest.issues.updateComment({ owner: OWNER, repo: REPO, comment_id: created.data.id, body: 'Done' });
    const listed = await octokit.paginate(octokit.rest.issues.listComments, { owner: OWNER, repo: REPO, issue_number: 7, per_page: 1 });
    expect(listed.map((c) => c.body)).toEqual(['Done']);
    expect(gh.comments(OWNER, REPO, 7)).toMatchObject([{ id: created.data.id, body: 'Done', user: gh.botLogin }]);

    const added = await octokit.rest.issues.addLabels({ owner: OWNER, repo: REPO, issue_number: 7, labels: ['agent', 'agent:working'] });
    expect(added.data.map((l) => l.name)).toEqual(['agent', 'agent:working']);
    const removed = await octokit.rest.issues.removeLabel({ owner: OWNER, repo: REPO, issue_number: 7, name: 'agent:working' });
    expect(removed.data.map((l) => l.name)).toEqual(['agent']);
    await expect(octokit.rest.issues.removeLabel({ owner: OWNER, repo: REPO, issue_number: 7, name: 'agent:working' })).rejects.toMatchObject({ status: 404 });
    expect(gh.labels(OWNER, REPO, 7)).toEqual(['agent']);
    expect(responseProblems).toEqual([]);
    expect(gh.violations).toEqual([]);
  });

  it('records a violation and answers 422 for a body GitHub would reject, 404 for unknown routes', async () => {
    const before = gh.violations.length;
    await expect(
      // The typed route would not compile without `head`; the untyped form is what a buggy caller sends.
      octokit.request({ method: 'POST', url: '/repos/{owner}/{repo}/pulls', owner: OWNER, repo: REPO, title: 'x', base: 'main' }),
    ).rejects.toMatchObject({ status: 422, response: { data: { message: 'Validation Failed' } } });
    expect(gh.violations.slice(before)).toEqual(['POST /repos/{owner}/{repo}/pulls: body/head is required']);
    await expect(octokit.request('GET /repos/{owner}/{repo}/no-such-thing', { owner: OWNER, repo: REPO })).rejects.toMatchObject({ status: 404 });
    expect(gh.violations.slice(before + 1)).toEqual([`GET /repos/${OWNER}/${REPO}/no-such-thing: no such route in GitHub's API`]);
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
    const anonPush = await git(['-C', clone, 'push', '-q', remote, 'HEAD:refs/heads/sneaky'], { env: { GIT_TERMINAL_PROMPT: '0' } });
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
    const pushedAgain = await git(['-C', clone, '-c', `http.extraHeader=${header}`, 'push', '-q', remote, 'HEAD:refs/heads/agent/issue-7-fix-readme']);
    expect(pushedAgain.code).toBe(0);
    expect(await gh.readFile(OWNER, REPO, 'agent/issue-7-fix-readme', 'counter.txt')).toBe('39');
    expect(await gh.readFile(OWNER, REPO, 'main', 'CHANGELOG.md')).toBe('v2\n');
  });

  it('opens, finds and updates pull requests like GitHub', async () => {
    const branch = 'agent/issue-7-fix-readme';
    await expect(
      octokit.rest.pulls.create({ owner: OWNER, repo: REPO, head: 'does-not-exist', base: 'main', title: 'x' }),
    ).rejects.toMatchObject({ status: 422 });
    const pr = await octokit.rest.pulls.create({ owner: OWNER, repo: REPO, head: branch, base: 'main', title: 'Fix README', body: 'Closes #7' });
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

    const found = await octokit.rest.pulls.list({ owner: OWNER, repo: REPO, head: `${OWNER}:${branch}`, state: 'open' });
    expect(found.data.map((p) => p.number)).toEqual([8]);
    const none = await octokit.rest.pulls.list({ owner: OWNER, repo: REPO, head: `${OWNER}:other`, state: 'open' });
    expect(none.data).toEqual([]);

    await octokit.rest.pulls.update({ owner: OWNER, repo: REPO, pull_number: 8, body: 'Closes #7\n\nUpdated' });
    await octokit.rest.issues.createComment({ owner: OWNER, repo: REPO, issue_number: 8, body: 'PR comment' });
    expect(gh.pulls(OWNER, REPO)).toEqual([
      { number: 8, title: 'Fix README', body: 'Closes #7\n\nUpdated', head: branch, base: 'main', state: 'open', user: gh.botLogin },
    ]);
    expect(gh.comments(OWNER, REPO, 8).map((c) => c.body)).toEqual(['PR comment']);
    expect(responseProblems).toEqual([]);
    expect(gh.violations).toEqual([]);
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
      repository: { name: REPO, full_name: `${OWNER}/${REPO}`, owner: { login: OWNER }, clone_url: `http://127.0.0.1:1/${OWNER}/${REPO}.git`, default_branch: 'main' },
      sender: { login: 'alice', type: 'User' },
      installation: { id: 99 },
    });
    expect(JSON.stringify(payload)).not.toContain('Codertocat/Hello-World');

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
      const sent = await sendWebhook({ url: `http://127.0.0.1:${port}/hook`, secret: 's3cret', event: 'issues', payload, deliveryId: 'd-1' });
      expect(sent).toMatchObject({ status: 202, body: 'queued' });
      const got = seen[0]!;
      expect(got.headers).toMatchObject({ 'x-github-event': 'issues', 'x-github-delivery': 'd-1', 'content-type': 'application/json' });
      expect(String(got.headers['user-agent'])).toMatch(/^GitHub-Hookshot\//);
      expect(await verify('s3cret', got.body, String(got.headers['x-hub-signature-256']))).toBe(true);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
