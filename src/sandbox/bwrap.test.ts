import { fileURLToPath } from 'node:url';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { BwrapRunner } from './bwrap.js';
import { hostUidFor, SHM_SIZE_BYTES } from './bwrap-argv.js';
import { sandboxArgv } from './bwrap-host.js';
import { probeBwrap } from './bwrap-probe.js';
import { resolveLimits } from './limits.js';
import { createRunner } from './create-runner.js';
import { SAFE_ENV_BASE, type RunRequest } from './runner.js';
import { tempDir } from '../../test/helpers/git-fixtures.js';

// The project's own checkout, wherever it is cloned (CI clones it elsewhere).
const APP_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

const log = pino({ level: 'silent' });
const runner = createRunner('bwrap', log) as BwrapRunner;
const isRoot = process.getuid?.() === 0;

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
      req(
        `cat ${secret}; echo pwned > ${secret}; echo new > ${outside.dir}/planted; echo hook > .git/hooks/post-checkout; echo '[core]' >> .git/config; echo ok > inside.txt; cat inside.txt`,
      ),
    );
    expect(res.output).not.toContain('host-only');
    expect(res.output).toContain('.git/hooks/post-checkout');
    // Refused either way: read-only mount, or (as an unprivileged host uid) not the file's owner.
    expect(res.output).toMatch(/\.git\/config: (Read-only file system|Permission denied)/);
    expect(res.output).toContain('ok');
    expect(readFileSync(secret, 'utf8')).toBe('host-only\n');
    expect(spawnSync('test', ['-e', path.join(outside.dir, 'planted')]).status).not.toBe(0);
    expect(spawnSync('test', ['-e', path.join(work.dir, '.git/hooks/post-checkout')]).status).not.toBe(0);
    expect(readFileSync(path.join(work.dir, '.git/config'), 'utf8')).not.toMatch(/\[core\]\n$/);
    expect(readFileSync(path.join(work.dir, 'inside.txt'), 'utf8')).toBe('ok\n');
  });

  it('binds readOnlyPaths read-only', async () => {
    // Like the git mirror: readable by others. Its parents (mkdtemp, 0700) need not be.
    chmodSync(outside.dir, 0o755);
    const res = await runner.run(
      req(`cat ${outside.dir}/host-secret.txt; echo x > ${outside.dir}/w && echo WROTE`, {
        readOnlyPaths: [outside.dir],
      }),
    );
    expect(res.output).toContain('host-only');
    expect(res.output).not.toContain('WROTE');
  });

  it('does not pass host credentials into the sandbox', async () => {
    process.env.GITHUB_TOKEN = 'ghs_secretsecretsecret123';
    process.env.ANTHROPIC_API_KEY = 'sk-ant-secretsecret456';
    process.env.PRIVATE_KEY = '-----BEGIN RSA PRIVATE KEY-----xyz';
    process.env.WEBHOOK_SECRET = 'whsec-789';
    try {
      const res = await runner.run(
        req('env; cat /proc/1/environ 2>/dev/null | tr "\\0" "\\n"', { env: { EXTRA_FLAG: 'yes' } }),
      );
      for (const s of [
        'ghs_secret',
        'sk-ant-secret',
        'PRIVATE KEY',
        'whsec-789',
        'GITHUB_TOKEN',
        'ANTHROPIC',
        '/root',
      ]) {
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

  it('keeps /dev read-only, /dev/shm small, and /etc/ssl to its certificates', async () => {
    const res = await runner.run(
      req(
        'head -c 100000000 /dev/zero 2>&1 >/dev/shm/fill; du -sb /dev/shm; echo x > /dev/planted; echo ok > /dev/null && echo NULL-OK; ls /etc/ssl',
      ),
    );
    // Filled to its size (du counts the directory's own few bytes too), and no further.
    const used = Number(/^(\d+)\s+\/dev\/shm$/m.exec(res.output)?.[1]);
    expect(used).toBeGreaterThanOrEqual(SHM_SIZE_BYTES);
    expect(used).toBeLessThan(SHM_SIZE_BYTES + 4096);
    expect(res.output).toMatch(/No space left on device/);
    expect(res.output).toMatch(/cannot create \/dev\/planted: Read-only file system/);
    expect(res.output).toContain('NULL-OK');
    expect(res.output).not.toMatch(/^private$/m);
  });

  it('hides /root and the app directory', async () => {
    const res = await runner.run(
      req(
        `ls /root && echo ROOT_VISIBLE; ls ${APP_DIR}/package.json && echo APP_VISIBLE; ls ${APP_DIR}/.env.example && echo APP_VISIBLE; ls /etc/shadow && echo SHADOW; true`,
      ),
    );
    expect(res.output).not.toMatch(/ROOT_VISIBLE|APP_VISIBLE|WORK_VISIBLE|SHADOW/);
  });

  it('refuses to bind /, the app directory or its parents, and a cwd outside the work tree', async () => {
    await expect(runner.run(req('true', { workTree: '/' }))).rejects.toThrow(/must not be \/|refusing/);
    await expect(runner.run(req('true', { readOnlyPaths: [APP_DIR] }))).rejects.toThrow(/refusing to bind/);
    await expect(runner.run(req('true', { readOnlyPaths: [path.dirname(APP_DIR)] }))).rejects.toThrow(
      /refusing to bind/,
    );
    await expect(runner.run(req('true', { readOnlyPaths: ['/root'] }))).rejects.toThrow(/refusing to bind/);
    await expect(runner.run(req('true', { cwd: outside.dir }))).rejects.toThrow(/outside the work tree/);
    mkdirSync(path.join(work.dir, 'sub'), { recursive: true });
    symlinkSync(outside.dir, path.join(work.dir, 'escape'));
    await expect(runner.run(req('true', { cwd: path.join(work.dir, 'escape') }))).rejects.toThrow(
      /outside the work tree/,
    );
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
    const res = await runner.run(
      req("printf START; head -c 300000 /dev/zero | tr '\\0' x; printf END", { maxOutputBytes: 1000 }),
    );
    expect(res.exitCode).toBe(0);
    expect(res.omittedBytes).toBe(300_000 + 8 - 1000);
    expect(res.output.startsWith('START')).toBe(true);
    expect(res.output.endsWith('END')).toBe(true);
    expect(res.output).toContain(`[… ${res.omittedBytes} bytes omitted …]`);
  });

  it('runs as a host uid of its own when the worker is root, and the host still reads, commits and removes the tree', async () => {
    expect(runner.mode).toBe(isRoot ? 'host-uid' : 'self');
    const res = await runner.run(
      req('mkdir -p made/deep && echo sandbox > made/deep/file.txt && git status --short made && id -u'),
    );
    expect(res.exitCode).toBe(0);
    // git inside trusts the host-owned .git (the generated /etc/gitconfig).
    expect(res.output).toContain('?? made/');
    const owner = statSync(path.join(work.dir, 'made/deep/file.txt')).uid;
    if (isRoot) {
      expect(owner).toBe(hostUidFor(work.dir));
      // The tree's root stays the host's, so the host's git trusts it.
      expect(statSync(work.dir).uid).toBe(0);
    } else {
      expect(owner).toBe(process.getuid?.());
    }
    const git = (...args: string[]) =>
      execFileSync('git', ['-C', work.dir, '-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], {
        encoding: 'utf8',
      });
    git('add', 'made');
    git('commit', '-qm', 'from the sandbox');
    expect(git('show', '--stat', 'HEAD')).toContain('made/deep/file.txt');
    // A file the host writes (the file tools run on the host) is handed to the sandbox before the next command.
    writeFileSync(path.join(work.dir, 'host-made.txt'), 'host\n');
    const edit = await runner.run(req('echo more >> host-made.txt && cat host-made.txt'));
    expect(edit.output).toContain('more');
    execFileSync('rm', ['-rf', path.join(work.dir, 'made'), path.join(work.dir, 'host-made.txt')]);
    expect(existsSync(path.join(work.dir, 'made'))).toBe(false);
  });

  it('shows only its own processes in /proc', async () => {
    const res = await runner.run(
      req(
        `ls /proc | grep -cE '^[0-9]+$'; cat /proc/1/cmdline | tr '\\0' ' '; echo; test -e /proc/${process.pid}/environ && echo SAW_PID; ps -e -o comm= 2>/dev/null | sort -u | tr '\\n' ' '`,
      ),
    );
    const [count] = res.output.split('\n');
    // bwrap's init, the shell and its pipeline: a handful, not the host's hundreds.
    expect(Number(count)).toBeLessThan(10);
    expect(res.output).toContain('bwrap');
    expect(res.output).not.toMatch(/vitest|node .*vitest|systemd|init\b/);
  });

  describe('limits', () => {
    it('a fork bomb dies alone: contained at the process limit, killed with a marker, the host unharmed and nothing left behind', async () => {
      let hostForked = false;
      const probe = setTimeout(() => (hostForked = spawnSync('true').status === 0), 500);
      const res = await runner.run(
        req(`bash -c ':(){ :|:& };:'; sleep 30`, { timeoutMs: 20_000, limits: { maxProcesses: 200 } }),
      );
      clearTimeout(probe);
      expect(res.limit).toBe('processes');
      // Killed by the watchdog, or ended when the command's own shell could not fork `sleep`.
      expect(res.output).toMatch(
        /\[killed: the command reached its limit of 200 processes|\[limit: .*refused at the limit of 200 processes/,
      );
      expect(res.timedOut).toBe(false);
      expect(hostForked || spawnSync('true').status === 0).toBe(true);
      if (isRoot) {
        // Nothing of the sandbox's host uid still runs (a zombie waiting for the host's init to reap it is not running).
        const states = spawnSync('ps', ['-o', 'stat=', '-U', String(hostUidFor(work.dir))], { encoding: 'utf8' })
          .stdout.split('\n')
          .filter(Boolean);
        expect(states.filter((st) => !st.startsWith('Z'))).toEqual([]);
      }
    });

    it('memory: a process past the limit is killed and the output says so', async () => {
      const alloc = `node -e "const a=[];for(let i=0;i<64;i++)a.push(Buffer.alloc(16<<20,1));console.log('ALLOCATED')"`;
      if (runner.enforcement.memory.startsWith('cgroup')) {
        const res = await runner.run(req(alloc, { limits: { maxMemoryBytes: 256 * 1024 * 1024 } }));
        expect(res.output).not.toContain('ALLOCATED');
        expect(res.limit).toBe('memory');
        expect(res.output).toContain(
          "[killed: out of memory: a process was killed for passing the command's 256 MiB memory limit",
        );
      } else {
        // Without a cgroup only the address space of each process is capped.
        const res = await runner.run(req(alloc, { limits: { maxAddressSpaceBytes: 1024 * 1024 * 1024 } }));
        expect(res.output).not.toContain('ALLOCATED');
        expect(res.exitCode).not.toBe(0);
      }
    });

    it('file size: a write past RLIMIT_FSIZE stops there, with a marker', async () => {
      const res = await runner.run(
        req('head -c 5000000 /dev/zero > big.bin; echo after', { limits: { maxFileBytes: 1024 * 1024 } }),
      );
      expect(res.limit).toBe('file-size');
      expect(res.output).toContain('[killed: a process wrote a file past the 1 MiB file size limit (RLIMIT_FSIZE)]');
      expect(statSync(path.join(work.dir, 'big.bin')).size).toBeLessThanOrEqual(1024 * 1024);
      execFileSync('rm', ['-f', path.join(work.dir, 'big.bin')]);
    });

    it('CPU time: a busy loop past RLIMIT_CPU is killed with a marker', async () => {
      const res = await runner.run(req('while :; do :; done', { limits: { maxCpuSeconds: 1 } }));
      expect(res.limit).toBe('cpu');
      expect(res.output).toContain('[killed: a process used its 1 s of CPU time');
    });

    it('disk: a command that fills the work tree past its limit is killed, with a marker', async () => {
      const res = await runner.run(
        req('mkdir -p fill; i=0; while :; do i=$((i+1)); head -c 2000000 /dev/zero > fill/f$i; sleep 0.02; done', {
          timeoutMs: 30_000,
          limits: { maxWorkTreeBytes: 40 * 1024 * 1024 },
        }),
      );
      expect(res.limit).toBe('disk');
      expect(res.timedOut).toBe(false);
      expect(res.output).toMatch(/\[killed: the work tree uses [\d.]+ MiB, over its disk limit of 40 MiB/);
      execFileSync('rm', ['-rf', path.join(work.dir, 'fill')]);
    });

    it('defaults are set and requests may tighten them', () => {
      const d = resolveLimits(60_000, 2);
      expect(d).toMatchObject({
        maxProcesses: 1024,
        maxMemoryBytes: 8 * 1024 ** 3,
        maxAddressSpaceBytes: 16 * 1024 ** 3,
        maxFileBytes: 1024 ** 3,
        maxWorkTreeBytes: 10 * 1024 ** 3,
        maxCpuSeconds: 121,
      });
      expect(resolveLimits(60_000, 2, { maxProcesses: 100 }, { maxCpuSeconds: 5 })).toMatchObject({
        maxProcesses: 100,
        maxCpuSeconds: 5,
      });
      expect(() => resolveLimits(1_000, 1, { maxFileBytes: 0 })).toThrow(/maxFileBytes must be a positive number/);
    });
  });

  it('builds an argv that binds nothing broad', () => {
    const { tools, mode } = probeBwrap(process.env.PATH ?? '/usr/bin:/bin');
    const argv = sandboxArgv({
      tools,
      mode,
      workTree: work.dir,
      cwd: work.dir,
      command: 'true',
      network: 'none',
      env: {},
      readOnlyPaths: [],
      limits: resolveLimits(5_000, 2),
    });
    expect(argv).not.toContain('--share-net');
    expect(argv).toContain('--unshare-all');
    for (let i = 0; i < argv.length; i++) {
      if (argv[i] === '--bind' || argv[i] === '--ro-bind' || argv[i] === '--ro-bind-try') {
        expect(['/', '/root', '/work', '/work/main', '/etc', '/home']).not.toContain(argv[i + 1]);
      }
    }
  });
});

describe('start-up', () => {
  it("refuses to start when the App's key or .env would be visible in the sandbox, naming the file", () => {
    const lines: string[] = [];
    const capture = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) });
    // /usr is bound read-only into every sandbox; a key kept under it would be readable there.
    expect(() => createRunner('bwrap', capture, { secretFiles: ['/usr/share/issue-agent/app.pem'] })).toThrow(
      '/usr/share/issue-agent/app.pem is inside /usr, which the sandbox binds read-only',
    );
    expect(() => createRunner('bwrap', capture, { secretFiles: ['/etc/ssl/certs/app.pem'] })).toThrow(
      /inside \/etc\/ssl\/certs/,
    );
    // The app's own directory is hidden from the sandbox, and /etc/ssl/private is not bound.
    expect(() =>
      createRunner('bwrap', capture, {
        secretFiles: [path.join(APP_DIR, '.env'), '/etc/ssl/private/app.pem', '/root/app.pem'],
      }),
    ).not.toThrow();
  });

  it('fails naming the install commands when bwrap is missing, and the opt-out', () => {
    const empty = tempDir('no-bwrap');
    try {
      expect(() => createRunner('bwrap', log, { searchPath: empty.dir })).toThrow(
        /apt-get install bubblewrap.*dnf install bubblewrap.*SANDBOX=unsandboxed/s,
      );
      // bwrap alone is not enough: the limits need util-linux's prlimit.
      const onlyBwrap = path.join(empty.dir, 'only-bwrap');
      mkdirSync(onlyBwrap);
      symlinkSync(
        execFileSync('sh', ['-c', 'command -v bwrap'], { encoding: 'utf8' }).trim(),
        path.join(onlyBwrap, 'bwrap'),
      );
      expect(() => createRunner('bwrap', log, { searchPath: onlyBwrap })).toThrow(/prlimit.*util-linux/);
    } finally {
      empty.cleanup();
    }
  });
});

describe('without setpriv (util-linux too old or trimmed)', () => {
  it('still sandboxes, and as root says loudly that the process limit is not enforced', async () => {
    const bin = tempDir('no-setpriv');
    const work = tempDir('no-setpriv-wt');
    try {
      for (const tool of ['bwrap', 'prlimit'])
        symlinkSync(
          execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim(),
          path.join(bin.dir, tool),
        );
      const lines: string[] = [];
      const capture = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) });
      if (isRoot) {
        // Root-only files in bound directories would be readable: refused unless the operator allows it.
        expect(() => createRunner('bwrap', capture, { searchPath: bin.dir })).toThrow(
          /cannot start the sandbox as an unprivileged uid .* set SANDBOX_ALLOW_ROOT_MAPPED=1/,
        );
      }
      const r = createRunner('bwrap', capture, { searchPath: bin.dir, allowRootMapped: true }) as BwrapRunner;
      expect(r.mode).toBe(isRoot ? 'root-mapped' : 'self');
      if (isRoot) {
        expect(r.enforcement.processes).toMatch(/^NOT by RLIMIT_NPROC/);
        expect(lines.join('\n')).toMatch(/process-count limit is NOT enforced/);
      }
      const res = await r.run({
        workTree: work.dir,
        command: 'id -u; echo ok > f',
        timeoutMs: 10_000,
        network: 'none',
      });
      expect(res.output).toContain('1000');
      expect(readFileSync(path.join(work.dir, 'f'), 'utf8')).toBe('ok\n');
    } finally {
      bin.cleanup();
      work.cleanup();
    }
  });
});

describe('unsandboxed runner', () => {
  it('warns loudly, once per process, that nothing is isolated', () => {
    const lines: string[] = [];
    const capture = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) });
    createRunner('unsandboxed', capture);
    createRunner('none', capture);
    const warnings = lines.map((l) => JSON.parse(l) as { level: number; msg: string }).filter((l) => l.level === 40);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.msg).toMatch(/NO SANDBOX.*WITHOUT isolation/);
  });

  it('scrubs the environment, caps output and kills the tree on timeout', async () => {
    const runner2 = createRunner('unsandboxed', log);
    const work = tempDir('unsandboxed');
    const marker = `${6000 + Math.floor(Math.random() * 1000)}.${process.pid}`;
    process.env.GITHUB_TOKEN = 'ghs_secretsecretsecret123';
    try {
      const env = await runner2.run({ workTree: work.dir, command: 'env', timeoutMs: 5_000, network: 'none' });
      expect(env.output).not.toContain('ghs_secret');
      expect(env.output).toContain('CI=true');
      const res = await runner2.run({
        workTree: work.dir,
        command: `trap "" TERM; sh -c 'trap "" TERM; sleep ${marker}' & sleep ${marker}`,
        timeoutMs: 800,
        network: 'none',
      });
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
