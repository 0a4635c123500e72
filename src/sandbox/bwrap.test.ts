import { fileURLToPath } from 'node:url';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { bwrapArgv } from './bwrap.js';
import { createRunner, SAFE_ENV_BASE, type RunRequest } from './runner.js';
import { tempDir } from '../../test/helpers/git-fixtures.js';

// The project's own checkout, wherever it is cloned (CI clones it elsewhere).
const APP_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

const log = pino({ level: 'silent' });
const runner = createRunner('bwrap', log);

function pgrep(marker: string): string {
  const res = spawnSync('pgrep', ['-af', marker], { encoding: 'utf8' });
  return res.stdout.trim();
}

describe('bwrap runner', () => {
  let work: { dir: string; cleanup: () => void };
  let outside: { dir: string; cleanup: () => void };
  let req: (command: string, extra?: Partial<RunRequest>) => RunRequest;

  beforeAll(() => {
    work = tempDir('bwrap-wt');
    outside = tempDir('bwrap-outside');
    execFileSync('git', ['init', '-q', work.dir]);
    writeFileSync(path.join(outside.dir, 'host-secret.txt'), 'host-only\n');
    req = (command, extra) => ({ workTree: work.dir, command, timeoutMs: 15_000, network: 'none', ...extra });
  });
  afterAll(() => {
    work.cleanup();
    outside.cleanup();
  });

  it('runs as an unprivileged uid and propagates exit codes', async () => {
    const id = await runner.run(req('id -u; id -g; hostname'));
    expect(id.exitCode).toBe(0);
    expect(id.output.trim().split('\n')).toEqual(['1000', '1000', 'sandbox']);
    const fail = await runner.run(req('echo oops >&2; exit 7'));
    expect(fail.exitCode).toBe(7);
    expect(fail.output).toContain('oops');
    expect(fail.timedOut).toBe(false);
  });

  it('refuses loopback connections to the host without network, allows them with full', async () => {
    const server = net.createServer((s) => {
      s.on('error', () => undefined);
      s.end('hello\n');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const probe = `node -e "require('net').connect(${port},'127.0.0.1').on('connect',()=>{console.log('CONNECTED');process.exit(0)}).on('error',(e)=>{console.log('ERR',e.code);process.exit(3)})"`;
    try {
      const none = await runner.run(req(probe));
      expect(none.output).not.toContain('CONNECTED');
      expect(none.exitCode).toBe(3);
      // The positive control shows the probe itself works.
      const full = await runner.run(req(probe, { network: 'full' }));
      expect(full.output).toContain('CONNECTED');
      expect(full.exitCode).toBe(0);
    } finally {
      server.close();
    }
  });

  it('cannot see or write host files outside the work tree; .git is read-only', async () => {
    const secret = path.join(outside.dir, 'host-secret.txt');
    const res = await runner.run(
      req(`cat ${secret}; echo pwned > ${secret}; echo new > ${outside.dir}/planted; echo hook > .git/hooks/post-checkout; echo '[core]' >> .git/config; echo ok > inside.txt; cat inside.txt`),
    );
    expect(res.output).not.toContain('host-only');
    expect(res.output).toContain('.git/hooks/post-checkout');
    expect(res.output).toMatch(/\.git\/config: Read-only file system/);
    expect(res.output).toContain('ok');
    expect(readFileSync(secret, 'utf8')).toBe('host-only\n');
    expect(spawnSync('test', ['-e', path.join(outside.dir, 'planted')]).status).not.toBe(0);
    expect(spawnSync('test', ['-e', path.join(work.dir, '.git/hooks/post-checkout')]).status).not.toBe(0);
    expect(readFileSync(path.join(work.dir, '.git/config'), 'utf8')).not.toMatch(/\[core\]\n$/);
    expect(readFileSync(path.join(work.dir, 'inside.txt'), 'utf8')).toBe('ok\n');
  });

  it('binds readOnlyPaths read-only', async () => {
    const res = await runner.run(req(`cat ${outside.dir}/host-secret.txt; echo x > ${outside.dir}/w && echo WROTE`, { readOnlyPaths: [outside.dir] }));
    expect(res.output).toContain('host-only');
    expect(res.output).not.toContain('WROTE');
  });

  it('does not pass host credentials into the sandbox', async () => {
    process.env.GITHUB_TOKEN = 'ghs_secretsecretsecret123';
    process.env.ANTHROPIC_API_KEY = 'sk-ant-secretsecret456';
    process.env.PRIVATE_KEY = '-----BEGIN RSA PRIVATE KEY-----xyz';
    process.env.WEBHOOK_SECRET = 'whsec-789';
    try {
      const res = await runner.run(req('env; cat /proc/1/environ 2>/dev/null | tr "\\0" "\\n"', { env: { EXTRA_FLAG: 'yes' } }));
      for (const s of ['ghs_secret', 'sk-ant-secret', 'PRIVATE KEY', 'whsec-789', 'GITHUB_TOKEN', 'ANTHROPIC', '/root']) {
        expect(res.output).not.toContain(s);
      }
      expect(res.output).toContain('EXTRA_FLAG=yes');
      expect(res.output).toContain(`HOME=${SAFE_ENV_BASE.HOME}`);
    } finally {
      delete process.env.GITHUB_TOKEN;
      delete process.env.ANTHROPIC_API_KEY;
      delete process.env.PRIVATE_KEY;
      delete process.env.WEBHOOK_SECRET;
    }
  });

  it('hides /root and the app directory', async () => {
    const res = await runner.run(req(`ls /root && echo ROOT_VISIBLE; ls ${APP_DIR}/package.json && echo APP_VISIBLE; ls ${APP_DIR}/.env.example && echo APP_VISIBLE; ls /etc/shadow && echo SHADOW; true`));
    expect(res.output).not.toMatch(/ROOT_VISIBLE|APP_VISIBLE|WORK_VISIBLE|SHADOW/);
  });

  it('refuses to bind /, the app directory or its parents, and a cwd outside the work tree', async () => {
    await expect(runner.run(req('true', { workTree: '/' }))).rejects.toThrow(/must not be \/|refusing/);
    await expect(runner.run(req('true', { readOnlyPaths: [APP_DIR] }))).rejects.toThrow(/refusing to bind/);
    await expect(runner.run(req('true', { readOnlyPaths: [path.dirname(APP_DIR)] }))).rejects.toThrow(/refusing to bind/);
    await expect(runner.run(req('true', { readOnlyPaths: ['/root'] }))).rejects.toThrow(/refusing to bind/);
    await expect(runner.run(req('true', { cwd: outside.dir }))).rejects.toThrow(/outside the work tree/);
    mkdirSync(path.join(work.dir, 'sub'), { recursive: true });
    symlinkSync(outside.dir, path.join(work.dir, 'escape'));
    await expect(runner.run(req('true', { cwd: path.join(work.dir, 'escape') }))).rejects.toThrow(/outside the work tree/);
    const sub = await runner.run(req('pwd', { cwd: path.join(work.dir, 'sub') }));
    expect(sub.output.trim()).toBe(path.join(work.dir, 'sub'));
  });

  it('refuses a work tree whose .git is a symlink', async () => {
    const other = tempDir('bwrap-symlink');
    try {
      symlinkSync(outside.dir, path.join(other.dir, '.git'));
      await expect(runner.run(req('true', { workTree: other.dir }))).rejects.toThrow(/symlink/);
    } finally {
      other.cleanup();
    }
  });

  describe('timeouts', () => {
    const markers: string[] = [];
    afterEach(() => {
      for (const m of markers.splice(0)) spawnSync('pkill', ['-KILL', '-f', m]);
    });

    it('kills a tree that ignores SIGTERM and leaves no process behind', async () => {
      const marker = `${4000 + Math.floor(Math.random() * 1000)}.${process.pid}`;
      markers.push(marker);
      // Seen while running, so "none left" afterwards means they were killed, not never matched.
      let during = '';
      setTimeout(() => (during = pgrep(marker)), 600);
      const res = await runner.run(
        req(`echo before; trap "" TERM; sh -c 'trap "" TERM; sleep ${marker}' & sleep ${marker}`, { timeoutMs: 1_000 }),
      );
      expect(res.timedOut).toBe(true);
      expect(res.exitCode).toBeNull();
      expect(res.output).toContain('before');
      expect(res.output).toContain('timed out');
      expect(during).toContain(`sleep ${marker}`);
      await new Promise((r) => setTimeout(r, 300));
      expect(pgrep(marker)).toBe('');
    });

    it('abort kills the whole tree', async () => {
      const marker = `${5000 + Math.floor(Math.random() * 1000)}.${process.pid}`;
      markers.push(marker);
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 500);
      const res = await runner.run(req(`sleep ${marker} & sleep ${marker}`, { timeoutMs: 60_000, signal: ac.signal }));
      expect(res.timedOut).toBe(false);
      expect(res.output).toContain('aborted');
      await new Promise((r) => setTimeout(r, 300));
      expect(pgrep(marker)).toBe('');
    });
  });

  it('caps output, keeping head and tail around an omitted-bytes marker', async () => {
    const res = await runner.run(req("printf START; head -c 300000 /dev/zero | tr '\\0' x; printf END", { maxOutputBytes: 1000 }));
    expect(res.exitCode).toBe(0);
    expect(res.omittedBytes).toBe(300_000 + 8 - 1000);
    expect(res.output.startsWith('START')).toBe(true);
    expect(res.output.endsWith('END')).toBe(true);
    expect(res.output).toContain(`[… ${res.omittedBytes} bytes omitted …]`);
  });

  it('builds an argv that binds nothing broad', () => {
    const argv = bwrapArgv({ workTree: work.dir, cwd: work.dir, command: 'true', network: 'none', env: {}, readOnlyPaths: [], timeoutMs: 5_000 });
    expect(argv).not.toContain('--share-net');
    for (let i = 0; i < argv.length; i++) {
      if (argv[i] === '--bind' || argv[i] === '--ro-bind' || argv[i] === '--ro-bind-try') {
        expect(['/', '/root', '/work', '/work/main', '/etc', '/home']).not.toContain(argv[i + 1]);
      }
    }
  });
});

describe('unsandboxed runner', () => {
  const runner2 = createRunner('unsandboxed', log);
  it('scrubs the environment, caps output and kills the tree on timeout', async () => {
    const work = tempDir('unsandboxed');
    const marker = `${6000 + Math.floor(Math.random() * 1000)}.${process.pid}`;
    process.env.GITHUB_TOKEN = 'ghs_secretsecretsecret123';
    try {
      const env = await runner2.run({ workTree: work.dir, command: 'env', timeoutMs: 5_000, network: 'none' });
      expect(env.output).not.toContain('ghs_secret');
      expect(env.output).toContain('CI=true');
      const res = await runner2.run({ workTree: work.dir, command: `trap "" TERM; sh -c 'trap "" TERM; sleep ${marker}' & sleep ${marker}`, timeoutMs: 800, network: 'none' });
      expect(res.timedOut).toBe(true);
      await new Promise((r) => setTimeout(r, 300));
      expect(pgrep(marker)).toBe('');
    } finally {
      delete process.env.GITHUB_TOKEN;
      spawnSync('pkill', ['-KILL', '-f', marker]);
      work.cleanup();
    }
  });
});
