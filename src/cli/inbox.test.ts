import { describe, expect, it } from 'vitest';
import { runCli } from '../../test/helpers/cli.js';
import { freePort, useTestRedis } from '../../test/helpers/redis.js';

const t = useTestRedis();
const item = {
  op: 'label',
  installationId: 7,
  owner: 'octo',
  repo: 'calc',
  issueNumber: 12,
  deliveryId: 'd-1',
  sender: 'maintainer',
  defaultBranch: 'main',
  htmlUrl: 'https://github.com/octo/calc',
  label: 'agent',
  at: Date.UTC(2026, 10, 24, 12),
};

describe('issue-agent inbox', () => {
  it('shows the counts and the dead items, and puts them back with --requeue-dead', async () => {
    await t.redis.rpush('issue-agent:inbox', JSON.stringify({ ...item, deliveryId: 'd-0' }));
    await t.redis.rpush('issue-agent:inbox:dead', JSON.stringify(item), 'not json');
    const shown = await runCli(['inbox'], { env: { REDIS_URL: t.server.url } });
    expect(shown.status).toBe(0);
    expect(shown.stdout).toContain('inbox: 1 waiting, 0 being handled, 2 dead');
    expect(shown.stdout).toContain('label   octo/calc#12  by maintainer  delivery d-1  at 2026-11-24T12:00:00.000Z');
    expect(shown.stdout).toContain('(does not parse) not json');
    expect(shown.stdout).toContain('--requeue-dead');

    const moved = await runCli(['inbox', '--requeue-dead', '--redis', t.server.url]);
    expect(moved.status).toBe(0);
    expect(moved.stdout).toContain('moved 2 dead item(s) back to the inbox');
    expect(moved.stdout).toContain('inbox: 3 waiting, 0 being handled, 0 dead');
    expect(await t.redis.lrange('issue-agent:inbox', 0, -1)).toEqual([
      JSON.stringify({ ...item, deliveryId: 'd-0' }),
      JSON.stringify(item),
      'not json',
    ]);
  });

  it('says which Redis it could not reach', async () => {
    const port = await freePort();
    const r = await runCli(['inbox', '--redis', `redis://:hunter2-password@127.0.0.1:${port}`]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(`^issue-agent inbox: could not reach Redis at redis://.*127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`),
    );
    expect(r.stderr).not.toContain('hunter2');
  });
});
