import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sh, tempDir } from '../../test/helpers/git-fixtures.js';
import { STATUS_MARKER } from '../report/status.js';
import { LocalRepo } from './local-repo.js';

const tmp = tempDir('local-repo');
afterAll(() => tmp.cleanup());

function repo(): { dir: string; host: LocalRepo; reportPath: string } {
  const dir = path.join(tmp.dir, 'calc');
  mkdirSync(path.join(dir, 'src'), { recursive: true });
  writeFileSync(path.join(dir, 'AGENTS.md'), 'committed rules\n');
  writeFileSync(path.join(dir, 'src/add.js'), 'x\n');
  symlinkSync('/etc/passwd', path.join(dir, 'CLAUDE.md'));
  sh(dir, 'init', '-q', '-b', 'main');
  sh(dir, 'add', '-A');
  sh(dir, 'commit', '-q', '-m', 'one');
  // Uncommitted text is not what the agent reads: rules come from the commit.
  writeFileSync(path.join(dir, 'AGENTS.md'), 'uncommitted rules\n');
  const reportPath = path.join(dir, '.git/issue-agent/report.md');
  const host = new LocalRepo({
    dir,
    ref: { owner: 'local', repo: 'calc' },
    baseBranch: 'main',
    task: { number: 3, title: 'Fix add', body: 'It is wrong', author: 'me' },
    reportPath,
  });
  return { dir, host, reportPath };
}

describe('LocalRepo', () => {
  const { dir, host, reportPath } = repo();

  it('reads committed regular files of the branch, never links or the working tree', async () => {
    expect(await host.fileText('AGENTS.md', 'main')).toBe('committed rules\n');
    expect(await host.fileText('CLAUDE.md', 'main')).toBeUndefined();
    expect(await host.fileText('.github/agent.yml', 'main')).toBeUndefined();
    expect((await host.rootEntries('main')).sort()).toEqual(['AGENTS.md', 'CLAUDE.md', 'src/']);
  });

  it('answers the task as the issue, the checkout as the clone URL, and the local user as a writer', async () => {
    expect(await host.repoInfo()).toEqual({ defaultBranch: 'main', cloneUrl: dir, htmlUrl: `file://${dir}` });
    expect(await host.issue(3)).toMatchObject({
      number: 3,
      title: 'Fix add',
      body: 'It is wrong',
      author: 'me',
      labels: [],
    });
    await expect(host.issue(4)).rejects.toThrow('the local task is #3');
    expect(await host.permission()).toBe('write');
    expect(await host.issueComments()).toEqual({ comments: [], unread: 0 });
    expect(await host.gitToken()).toBe('');
    await expect(host.pull()).rejects.toThrow('the local CLI runs issue tasks only');
  });

  it('keeps the last status without its marker, and writes the pull request as the report', async () => {
    const id = await host.comment(3, `${STATUS_MARKER}\n**issue-agent** ⏳ working`);
    await host.updateComment(id, `${STATUS_MARKER}\n**issue-agent** ✅ done`);
    expect(host.finalStatus).toBe('**issue-agent** ✅ done');
    expect(host.delivered).toBe(false);

    sh(dir, 'branch', 'agent/issue-3-fix-add');
    const sha = sh(dir, 'rev-parse', 'agent/issue-3-fix-add');
    const pr = await host.openOrUpdatePull({
      head: 'agent/issue-3-fix-add',
      base: 'main',
      title: 'Fix add',
      body: 'The body, with a token ghp_0123456789abcdefghijklmnopqrstuvwxyzAB in it',
    });
    expect(pr).toEqual({ number: 3, htmlUrl: `file://${reportPath}`, created: true });
    expect(host.delivered).toBe(true);
    const report = readFileSync(reportPath, 'utf8');
    expect(report).toContain(
      `# Fix add\n\nBranch \`agent/issue-3-fix-add\` (${sha.slice(0, 12)}) from \`main\` in \`${dir}\``,
    );
    expect(report).toContain('The body, with a token');
    expect(report).not.toContain('ghp_0123456789abcdefghijklmnopqrstuvwxyzAB');
    expect(
      (await host.openOrUpdatePull({ head: 'agent/issue-3-fix-add', base: 'main', title: 'Fix add', body: 'again' }))
        .created,
    ).toBe(false);
  });
});
