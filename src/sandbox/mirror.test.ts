import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authEnv, git, GitError } from './git.js';
import { ensureMirror, mirrorPathFor } from './mirror.js';
import { createRunner } from './create-runner.js';
import { tempDir, sh } from '../../test/helpers/git-fixtures.js';
import {
  applyPatch,
  changePatch,
  changedPaths,
  commitPaths,
  revertPaths,
  committedStat,
  createWorkTree,
  TOOL_DIR,
  diff,
  diffStat,
  push,
  PushRejectedError,
  readBaseFile,
} from './worktree.js';

const log = pino({ level: 'silent' });
const TOKEN = 'ghs_testtokentesttokentesttoken1234';

describe('mirror and work tree', () => {
  let tmp: { dir: string; cleanup: () => void };
  let remote: string;
  let seed: string;
  let dataDir: string;

  beforeAll(() => {
    tmp = tempDir('mirror');
    seed = path.join(tmp.dir, 'seed');
    remote = path.join(tmp.dir, 'remote', 'acme', 'widget.git');
    dataDir = path.join(tmp.dir, 'data');
    sh(tmp.dir, 'init', '-q', '-b', 'main', seed);
    writeFileSync(path.join(seed, 'README.md'), 'hello\n');
    sh(seed, 'add', '-A');
    sh(seed, 'commit', '-q', '-m', 'init');
    sh(tmp.dir, 'clone', '-q', '--bare', seed, remote);
  });
  afterAll(() => tmp.cleanup());

  it('checkpoints a change as a patch that a fresh work tree on the same base takes back exactly', async () => {
    const mirrorPath = await ensureMirror({ dataDir, cloneUrl: remote, token: TOKEN, log });
    const first = await createWorkTree({
      dataDir,
      mirrorPath,
      jobKey: 'patch-1',
      baseBranch: 'main',
      branch: 'agent/issue-1-x',
    });
    writeFileSync(path.join(first.path, 'README.md'), 'changed\n');
    mkdirSync(path.join(first.path, 'src'), { recursive: true });
    writeFileSync(path.join(first.path, 'src', 'new.bin'), Buffer.from([0, 1, 2, 255]));
    // An untracked file that is not part of the change (build output) stays out.
    writeFileSync(path.join(first.path, 'stray.log'), 'noise\n');
    const patch = await changePatch(first, ['src/new.bin']);
    expect(patch).toContain('README.md');
    expect(patch).toContain('GIT binary patch');
    expect(patch).not.toContain('stray.log');
    const before = await diff(first);
    await first.remove();
    const second = await createWorkTree({
      dataDir,
      mirrorPath,
      jobKey: 'patch-2',
      baseBranch: 'main',
      branch: 'agent/issue-1-x',
    });
    await applyPatch(second, patch);
    expect(readFileSync(path.join(second.path, 'README.md'), 'utf8')).toBe('changed\n');
    expect([...readFileSync(path.join(second.path, 'src', 'new.bin'))]).toEqual([0, 1, 2, 255]);
    expect(await diff(second)).toBe(before.replace(/diff --git a\/stray\.log[\s\S]*$/, ''));
    await second.remove();
  });

  it('lists the paths a change touches exactly, whatever git would quote in a patch', async () => {
    const mirrorPath = await ensureMirror({ dataDir, cloneUrl: remote, token: TOKEN, log });
    const wt = await createWorkTree({
      dataDir,
      mirrorPath,
      jobKey: 'quoted-1',
      baseBranch: 'main',
      branch: 'agent/issue-2-q',
    });
    // Names a patch header quotes ("a/caf\303\251.txt") or splits wrongly (" b/" inside a name).
    const names = ['café.txt', 'say "hi".txt', 'tab\there.txt', 'dir x/a b/c.txt', 'new\nline.txt'];
    for (const n of names) {
      mkdirSync(path.dirname(path.join(wt.path, n)), { recursive: true });
      writeFileSync(path.join(wt.path, n), 'x\n');
    }
    expect((await changedPaths(wt, names)).sort()).toEqual([...names].sort());
    await revertPaths(wt, names);
    for (const n of names) expect(existsSync(path.join(wt.path, n))).toBe(false);
    await wt.remove();
  });

  it('lists the paths a change touches, undoes some of them, and leaves ignored files out of commits', async () => {
    const mirrorPath = await ensureMirror({ dataDir, cloneUrl: remote, token: TOKEN, log });
    const wt = await createWorkTree({
      dataDir,
      mirrorPath,
      jobKey: 'paths-1',
      baseBranch: 'main',
      branch: 'agent/issue-2-x',
    });
    writeFileSync(path.join(wt.path, '.gitignore'), '*.log\n');
    writeFileSync(path.join(wt.path, 'README.md'), 'edited by a command\n');
    writeFileSync(path.join(wt.path, 'new.txt'), 'new\n');
    writeFileSync(path.join(wt.path, 'debug.log'), 'ignored\n');
    // debug.log was "created" by a tool but is ignored: it is neither listed nor committed, and no error.
    expect((await changedPaths(wt, ['new.txt', 'debug.log', '.gitignore', 'gone.txt'])).sort()).toEqual([
      '.gitignore',
      'README.md',
      'new.txt',
    ]);
    await revertPaths(wt, ['README.md', 'new.txt']);
    expect(readFileSync(path.join(wt.path, 'README.md'), 'utf8')).toBe(
      readFileSync(path.join(seed, 'README.md'), 'utf8'),
    );
    expect(existsSync(path.join(wt.path, 'new.txt'))).toBe(false);
    const sha = await commitPaths(wt, ['.gitignore', 'debug.log', 'new.txt'], {
      message: 'only the ignore file',
      authorName: 'Bot',
      authorEmail: 'bot@example.com',
      date: '2026-11-24T12:00:00.000Z',
    });
    expect(sha).toMatch(/^[0-9a-f]{40}$/);
    expect(
      sh(wt.path, 'show', '--name-only', '--format=%ad', '--date=iso-strict', 'HEAD').split('\n').filter(Boolean),
    ).toEqual(['2026-11-24T12:00:00+00:00', '.gitignore']);
    await wt.remove();
  });

  it('derives a sanitised mirror path and refuses credentials and ..', () => {
    expect(mirrorPathFor('/d', 'https://github.com/acme/widget.git')).toBe('/d/mirrors/github.com/acme/widget.git');
    expect(mirrorPathFor('/d', 'http://127.0.0.1:8080/acme/wid get')).toBe(
      '/d/mirrors/127.0.0.1_8080/acme/wid_get.git',
    );
    expect(mirrorPathFor('/d', '/srv/git/acme/widget.git')).toBe('/d/mirrors/local/acme/widget.git');
    expect(() => mirrorPathFor('/d', 'https://x-access-token:abc@github.com/acme/widget.git')).toThrow(/credentials/);
    expect(() => mirrorPathFor('/d', '/srv/../..')).toThrow(/\.\./);
  });

  it('clones once, then fetches incrementally, without any token in config', async () => {
    const [m1, m2] = await Promise.all([
      ensureMirror({ dataDir, cloneUrl: remote, token: TOKEN, log }),
      ensureMirror({ dataDir, cloneUrl: remote, token: TOKEN, log }),
    ]);
    expect(m1).toBe(m2);
    expect(m1).toBe(path.join(dataDir, 'mirrors/local/acme/widget.git'));
    const first = sh(m1, 'rev-parse', 'refs/heads/main');

    writeFileSync(path.join(seed, 'README.md'), 'hello again\n');
    sh(seed, 'commit', '-q', '-am', 'second');
    sh(seed, 'push', '-q', remote, 'main');
    sh(seed, 'push', '-q', remote, 'main:refs/heads/feature');
    await ensureMirror({ dataDir, cloneUrl: remote, token: TOKEN, log });
    const second = sh(m1, 'rev-parse', 'refs/heads/main');
    expect(second).not.toBe(first);
    expect(second).toBe(sh(remote, 'rev-parse', 'refs/heads/main'));
    expect(sh(m1, 'rev-parse', 'refs/heads/feature')).toBe(second);

    // --prune follows deletions upstream.
    sh(remote, 'update-ref', '-d', 'refs/heads/feature');
    await ensureMirror({ dataDir, cloneUrl: remote, token: TOKEN, log });
    expect(sh(m1, 'for-each-ref', '--format=%(refname)', 'refs/heads/')).toBe('refs/heads/main');

    const config = readFileSync(path.join(m1, 'config'), 'utf8');
    expect(config).not.toContain(TOKEN);
    expect(config).not.toMatch(/extraheader|authorization/i);
  });

  it('fails after bounded retries on an unreachable remote', async () => {
    await expect(
      ensureMirror({ dataDir, cloneUrl: path.join(tmp.dir, 'nope', 'x', 'y.git'), log, retryDelayMs: 10 }),
    ).rejects.toBeInstanceOf(GitError);
    expect(existsSync(path.join(dataDir, 'mirrors/local/x/y.git'))).toBe(false);
  });

  it('creates a work tree, diffs untracked files, commits, pushes, and is removed', async () => {
    const mirrorPath = await ensureMirror({ dataDir, cloneUrl: remote, token: TOKEN, log });
    const wt = await createWorkTree({
      dataDir,
      mirrorPath,
      jobKey: 'acme/widget#7:attempt 1',
      baseBranch: 'main',
      branch: 'agent/issue-7-fix',
    });
    expect(wt.path.startsWith(path.join(dataDir, 'worktrees'))).toBe(true);
    expect(wt.baseSha).toBe(sh(remote, 'rev-parse', 'refs/heads/main'));
    expect(sh(wt.path, 'rev-parse', '--abbrev-ref', 'HEAD')).toBe('agent/issue-7-fix');
    expect(readFileSync(path.join(wt.path, 'README.md'), 'utf8')).toBe('hello again\n');

    expect(
      await commitPaths(wt, ['README.md'], { message: 'nothing', authorName: 'bot', authorEmail: 'bot@example.com' }),
    ).toBeNull();

    writeFileSync(path.join(wt.path, 'README.md'), 'changed\n');
    writeFileSync(path.join(wt.path, 'new-file.txt'), 'brand new\n');
    // What an install fetched into the tree is never part of the change.
    mkdirSync(path.join(wt.path, TOOL_DIR, 'venv'), { recursive: true });
    writeFileSync(path.join(wt.path, TOOL_DIR, 'venv', 'pyvenv.cfg'), 'home = /usr/bin\n');
    // Not even where the repository's own ignore file asks for it back.
    writeFileSync(path.join(wt.path, '.gitignore'), `!/${TOOL_DIR}/\n`);
    expect(await diff(wt)).not.toContain('pyvenv.cfg');
    rmSync(path.join(wt.path, '.gitignore'));
    const patch = await diff(wt);
    expect(patch).not.toContain('pyvenv.cfg');
    expect(patch).toContain('+changed');
    expect(patch).toContain('new-file.txt');
    expect(patch).toContain('+brand new');
    // The snapshot index must not stage anything in the real one.
    expect(sh(wt.path, 'diff', '--cached', '--name-only')).toBe('');
    expect(await diffStat(wt)).toMatch(/2 files changed/);

    // Commands in the sandbox can use the clone: its objects come from the read-only mirror.
    const runner = createRunner('bwrap', log);
    const inside = await runner.run({
      workTree: wt.path,
      command: 'git log -1 --format=%H && git status --short',
      timeoutMs: 15_000,
      network: 'none',
      readOnlyPaths: [mirrorPath],
    });
    expect(inside.output).toContain(wt.baseSha);
    expect(inside.output).toContain('?? new-file.txt');

    // Tracked changes and the named new paths are committed: installed dependencies and
    // build output stay out.
    mkdirSync(path.join(wt.path, 'node_modules/dep'), { recursive: true });
    writeFileSync(path.join(wt.path, 'node_modules/dep/index.js'), 'x\n');
    const sha = await commitPaths(wt, ['new-file.txt'], {
      message: 'Fix the thing\n\nCloses #7',
      authorName: 'issue-agent[bot]',
      authorEmail: 'bot@example.com',
    });
    expect(sha).toMatch(/^[0-9a-f]{40}$/);
    expect(sh(wt.path, 'log', '-1', '--format=%an <%ae>|%s')).toBe('issue-agent[bot] <bot@example.com>|Fix the thing');
    expect(sh(wt.path, 'show', '--name-only', '--format=', 'HEAD').split('\n').sort()).toEqual([
      'README.md',
      'new-file.txt',
    ]);
    expect(await committedStat(wt)).toMatch(/2 files changed/);
    expect(await commitPaths(wt, ['README.md'], { message: 'again', authorName: 'b', authorEmail: 'b@e' })).toBeNull();

    await push(wt, { remoteUrl: remote, branch: wt.branch, token: TOKEN });
    expect(sh(remote, 'rev-parse', `refs/heads/${wt.branch}`)).toBe(sha);
    const wtConfig = readFileSync(path.join(wt.path, '.git', 'config'), 'utf8');
    expect(wtConfig).not.toContain(TOKEN);
    expect(wtConfig).not.toMatch(/extraheader|authorization|user\.name|\[user\]/i);

    // Someone else moved the branch: a plain push is rejected and not retried or forced.
    sh(remote, 'update-ref', `refs/heads/${wt.branch}`, wt.baseSha);
    writeFileSync(path.join(wt.path, 'more.txt'), 'x\n');
    await commitPaths(wt, ['more.txt'], { message: 'more', authorName: 'b', authorEmail: 'b@e' });
    // A retry would wait retryDelayMs, far past the test's timeout: a rejection must not retry.
    await expect(push(wt, { remoteUrl: remote, branch: wt.branch, retryDelayMs: 600_000 })).resolves.toBeUndefined();

    sh(seed, 'commit', '-q', '--allow-empty', '-m', 'unrelated');
    sh(seed, 'push', '-q', '-f', remote, `HEAD:refs/heads/${wt.branch}`);
    await expect(push(wt, { remoteUrl: remote, branch: wt.branch, retryDelayMs: 600_000 })).rejects.toThrow(
      PushRejectedError,
    );

    await wt.remove();
    expect(existsSync(wt.path)).toBe(false);
  });

  it('reads files of the base commit, never through links or what the job wrote', async () => {
    sh(seed, 'checkout', '-q', 'main');
    writeFileSync(path.join(seed, 'AGENTS.md'), 'rules\n');
    symlinkSync('/proc/self/environ', path.join(seed, 'CLAUDE.md'));
    sh(seed, 'add', '-A');
    sh(seed, 'commit', '-q', '-m', 'rules');
    sh(seed, 'push', '-q', remote, 'HEAD:refs/heads/main');
    const mirrorPath = await ensureMirror({ dataDir, cloneUrl: remote, log });
    const wt = await createWorkTree({
      dataDir,
      mirrorPath,
      jobKey: 'job-rules',
      baseBranch: 'main',
      branch: 'b-rules',
    });
    writeFileSync(path.join(wt.path, 'AGENTS.md'), 'changed by the job\n');
    expect(await readBaseFile(wt, 'AGENTS.md')).toBe('rules\n');
    expect(await readBaseFile(wt, 'CLAUDE.md')).toBeUndefined();
    expect(await readBaseFile(wt, 'missing.md')).toBeUndefined();
    await wt.remove();
  });

  it('refuses to run git on a work tree whose .git config was changed', async () => {
    const mirrorPath = await ensureMirror({ dataDir, cloneUrl: remote, log });
    const wt = await createWorkTree({
      dataDir,
      mirrorPath,
      jobKey: 'job-tamper',
      baseBranch: 'main',
      branch: 'b-tamper',
    });
    writeFileSync(path.join(wt.path, 'README.md'), 'changed\n');
    writeFileSync(path.join(wt.path, '.gitattributes'), '* filter=x\n');
    const marker = path.join(dataDir, 'filter-ran');
    appendFileSync(path.join(wt.path, '.git/config'), `[filter "x"]\n\tclean = touch ${marker}; cat\n`);
    await expect(
      commitPaths(wt, ['README.md', '.gitattributes'], { message: 'm', authorName: 'b', authorEmail: 'b@e' }),
    ).rejects.toThrow(/\.git was modified/);
    await expect(diff(wt)).rejects.toThrow(/\.git was modified/);
    await expect(push(wt, { remoteUrl: remote, branch: wt.branch })).rejects.toThrow(/\.git was modified/);
    expect(existsSync(marker)).toBe(false);
    await wt.remove();
  });

  it('replaces a leftover work tree and refuses option-like branch names', async () => {
    const mirrorPath = await ensureMirror({ dataDir, cloneUrl: remote, log });
    const a = await createWorkTree({ dataDir, mirrorPath, jobKey: 'job-2', baseBranch: 'main', branch: 'b1' });
    writeFileSync(path.join(a.path, 'leftover.txt'), 'x');
    const b = await createWorkTree({ dataDir, mirrorPath, jobKey: 'job-2', baseBranch: 'main', branch: 'b1' });
    expect(b.path).toBe(a.path);
    expect(existsSync(path.join(b.path, 'leftover.txt'))).toBe(false);
    await expect(
      createWorkTree({ dataDir, mirrorPath, jobKey: 'job-3', baseBranch: '--upload-pack=evil', branch: 'b' }),
    ).rejects.toThrow(/invalid branch/);
    await b.remove();
  });
});

describe('git helper', () => {
  it('passes credentials only in the environment, scoped to the origin', () => {
    const env = authEnv(TOKEN, 'https://github.example.com/acme/widget.git');
    expect(env.GIT_CONFIG_KEY_0).toBe('http.https://github.example.com/.extraHeader');
    expect(env.GIT_CONFIG_VALUE_0).toBe(
      `Authorization: Basic ${Buffer.from(`x-access-token:${TOKEN}`).toString('base64')}`,
    );
    expect(authEnv(TOKEN).GIT_CONFIG_KEY_0).toBe('http.extraHeader');
  });

  it('ignores inherited GIT_* variables and repository hooks', async () => {
    const tmp = tempDir('git-helper');
    try {
      sh(tmp.dir, 'init', '-q', '-b', 'main', 'r');
      const repo = path.join(tmp.dir, 'r');
      const hook = path.join(repo, '.git/hooks/pre-commit');
      writeFileSync(hook, `#!/bin/sh\ntouch ${tmp.dir}/HOOK_RAN\n`, { mode: 0o755 });
      process.env.GIT_DIR = '/nonexistent';
      try {
        await git(['commit', '-q', '--allow-empty', '-m', 'x'], {
          cwd: repo,
          env: { GIT_AUTHOR_NAME: 'a', GIT_AUTHOR_EMAIL: 'a@b', GIT_COMMITTER_NAME: 'a', GIT_COMMITTER_EMAIL: 'a@b' },
        });
      } finally {
        delete process.env.GIT_DIR;
      }
      expect(existsSync(path.join(tmp.dir, 'HOOK_RAN'))).toBe(false);
      const err = await git(['rev-parse', 'no-such-ref'], { cwd: repo }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GitError);
      expect((err as GitError).exitCode).toBe(128);
      expect((err as GitError).command).toBe('git rev-parse no-such-ref');
    } finally {
      tmp.cleanup();
    }
  });
});
