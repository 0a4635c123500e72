import { Probot } from 'probot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGitHubStandIn, type GitHubStandIn } from '../../test/stand-ins/github/server.js';
import { userId } from '../../test/stand-ins/github/users.js';
import { AppIdentity } from './app-identity.js';

describe('AppIdentity', () => {
  let gh: GitHubStandIn;
  let probot: Probot;
  const appReads = () => gh.requests.filter((r) => r.method === 'GET' && r.path.endsWith('/app')).length;

  beforeAll(async () => {
    gh = await startGitHubStandIn();
    probot = new Probot({ appId: gh.appId, privateKey: gh.privateKey, baseUrl: gh.apiUrl });
  });
  afterAll(async () => {
    await gh.close();
  });

  it('reads the app once and answers every caller from that read', async () => {
    const identity = new AppIdentity(probot);
    const before = appReads();
    const [a, b] = await Promise.all([identity.names(), identity.names()]);
    expect(a).toEqual({ slug: gh.appSlug, login: gh.botLogin });
    expect(b).toBe(a);
    expect(await identity.names()).toBe(a);
    expect(appReads() - before).toBe(1);
  });

  it('asks again after a failed read instead of keeping the failure', async () => {
    const identity = new AppIdentity(probot);
    gh.failNext({ method: 'GET', route: /^\/app$/ }, { status: 404 });
    await expect(identity.names()).rejects.toThrow();
    expect(await identity.names()).toEqual({ slug: gh.appSlug, login: gh.botLogin });
  });

  it('names the bot as commit author with the noreply email GitHub attributes to it', async () => {
    const installation = await probot.auth(gh.installationId);
    const plain = await new AppIdentity(probot).committer(installation);
    expect(plain).toEqual({
      slug: gh.appSlug,
      login: gh.botLogin,
      name: gh.botLogin,
      email: `${userId(gh.botLogin)}+${gh.botLogin}@users.noreply.github.com`,
    });
    const ghes = new AppIdentity(probot, { gheHost: 'ghe.example.com:8443', committerName: 'Agent' });
    const first = await ghes.committer(installation);
    expect(first).toMatchObject({
      name: 'Agent',
      email: `${userId(gh.botLogin)}+${gh.botLogin}@users.noreply.ghe.example.com`,
    });
    expect(await ghes.committer(installation)).toBe(first);
  });

  it('asks again for the committer after a failed user read', async () => {
    const installation = await probot.auth(gh.installationId);
    const identity = new AppIdentity(probot);
    gh.failNext({ method: 'GET', route: /^\/users\// }, { status: 404 });
    await expect(identity.committer(installation)).rejects.toThrow();
    expect((await identity.committer(installation)).login).toBe(gh.botLogin);
  });
});
