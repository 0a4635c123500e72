import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { calcModel, CALC_REPO, OWNER, startScenario, type Scenario } from './harness.js';

/**
 * The install step through the real app: a repository's install command tries a host that
 * is not a registry and the GitHub stand-in on the host's loopback; the PR still opens, and
 * its body names both refusals. A repository that asks for the host's network, where the
 * operator has not allowed it, gets the config-error comment and nothing runs.
 */
let s: Scenario;

beforeAll(async () => {
  s = await startScenario();
}, 90_000);
afterAll(async () => {
  if (process.env.E2E_LOGS) console.log(s?.logs().slice(-6000));
  await s?.stop();
});

/** CONNECT through the proxy the sandbox is given, as any package manager would; never fails the install. */
const connectProbe = (target: string) =>
  `node -e "require('http').request({host:'127.0.0.1',port:3128,method:'CONNECT',path:'${target}'}).on('connect',(r)=>{console.log('${target}',r.statusCode);process.exit(0)}).on('error',(e)=>{console.log('${target}',e.code);process.exit(0)}).end()"`;

describe("the install step's firewall, end to end", () => {
  it('names in the PR body each destination the install was refused', async () => {
    const githubPort = s.github.host.split(':')[1]!;
    const install = `${connectProbe('example.org:443')} && ${connectProbe(`127.0.0.1:${githubPort}`)} && ${connectProbe('example.org:443')}`;
    const toolErrors: string[] = [];
    s.anthropic.setModel(calcModel({ toolErrors }));
    await s.github.addRepo({
      owner: OWNER,
      repo: 'fenced',
      files: { ...CALC_REPO, '.github/agent.yml': `commands:\n  install: ${JSON.stringify(install)}\n` },
    });
    s.github.setPermission(OWNER, 'fenced', 'maintainer', 'maintain');
    const title = 'add() returns the wrong sum when one number is negative';
    s.github.addIssue(OWNER, 'fenced', {
      number: 3,
      title,
      body: '`npm test` fails on "adds a negative number".',
      user: 'maintainer',
    });
    expect((await s.label({ repo: 'fenced', issueNumber: 3, title, body: 'x' })).status).toBe(200);

    const pr = await s.waitFor('the pull request', () => s.github.pulls(OWNER, 'fenced')[0]);
    expect(pr.body).toContain('### Firewall');
    expect(pr.body).toContain('The install step was refused 3 connections (0 to allowed registries went through):');
    expect(pr.body).toContain('- install tried `example.org:443` — not an allowed registry (2 times)');
    expect(pr.body).toContain(`- install tried \`127.0.0.1:${githubPort}\` — not an allowed registry`);
    expect(pr.body).toMatch(/\| `node -e .*` \| ✅ passed \| [\d.]+ s \| \(install, registries only\) \|/);
    expect(toolErrors).toEqual([]);
    expect(s.github.violations).toEqual([]);
  });

  it('answers install_network: full with the config-error comment when the operator has not allowed it, and runs nothing', async () => {
    const before = s.anthropic.requests.length;
    await s.github.addRepo({
      owner: OWNER,
      repo: 'wide-open',
      files: { ...CALC_REPO, '.github/agent.yml': 'max_rounds: 2\ninstall_network: full\n' },
    });
    s.github.setPermission(OWNER, 'wide-open', 'maintainer', 'maintain');
    s.github.addIssue(OWNER, 'wide-open', { number: 4, title: 'x', body: 'y', user: 'maintainer' });
    expect((await s.label({ repo: 'wide-open', issueNumber: 4, title: 'x', body: 'y' })).status).toBe(200);
    const comment = await s.waitFor(
      'the config-error comment',
      () => s.github.comments(OWNER, 'wide-open', 4).find((c) => c.body.includes('install_network')),
      30_000,
    );
    expect(comment.body).toContain('line 2');
    expect(comment.body).toContain("is not allowed by this app's operator");
    expect(comment.body).toContain('SANDBOX\\_ALLOW\\_HOST\\_NETWORK=1');
    expect(s.github.pulls(OWNER, 'wide-open')).toEqual([]);
    expect(s.anthropic.requests.length).toBe(before);
  });
});
