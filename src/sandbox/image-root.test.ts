import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/helpers/git-fixtures.js';
import { createRunner } from './create-runner.js';
import type { ImageRoot, RunRequest } from './runner.js';

// A real run on an image's root: a root filesystem made here from the host's dash and
// sleep and the libraries they link, with files of its own; no host system directory.

const log = pino({ level: 'silent' });
const runner = createRunner('bwrap', log);

/** Copies `program` and the libraries ldd names into `rootfs`, at the same paths. */
function install(rootfs: string, program: string, as: string): void {
  const copy = (from: string, to: string) => {
    mkdirSync(path.dirname(path.join(rootfs, to)), { recursive: true });
    copyFileSync(realpathSync(from), path.join(rootfs, to));
  };
  copy(program, as);
  const libs = execFileSync('ldd', [program], { encoding: 'utf8' }).match(/\/[^\s)]+/g) ?? [];
  for (const lib of libs) copy(lib, lib);
}

describe('bwrap on an image root', () => {
  let image: { dir: string; cleanup: () => void };
  let work: { dir: string; cleanup: () => void };
  let root: ImageRoot;
  const req = (command: string, extra: Partial<RunRequest> = {}): RunRequest => ({
    workTree: work.dir,
    command,
    timeoutMs: 20_000,
    network: 'none',
    root,
    ...extra,
  });

  beforeAll(() => {
    image = tempDir('image-root');
    work = tempDir('image-wt');
    execFileSync('git', ['init', '-q', work.dir]);
    const rootfs = path.join(image.dir, 'rootfs');
    install(rootfs, '/bin/sh', '/usr/bin/sh');
    install(rootfs, '/bin/sleep', '/usr/bin/sleep');
    symlinkSync('usr/bin', path.join(rootfs, 'bin'));
    mkdirSync(path.join(rootfs, 'etc'));
    writeFileSync(path.join(rootfs, 'etc/hello.txt'), 'from the image\n');
    writeFileSync(path.join(rootfs, 'etc/passwd'), 'imageuser:x:1000:1000::/home/imageuser:/bin/sh\n');
    mkdirSync(path.join(rootfs, 'opt/tool/bin'), { recursive: true });
    root = { rootfs, env: ['PATH=/opt/tool/bin:/usr/bin:/bin', 'LANG=C.UTF-8', 'HOME=/root'] };
  });
  afterAll(() => {
    image.cleanup();
    work.cleanup();
  });

  it("runs the image's programs and files, with the image's PATH, and none of the host's system", async () => {
    const r = await runner.run(
      req(
        [
          'read -r line < /etc/hello.txt; echo "$line"',
          'echo "PATH=$PATH LANG=$LANG HOME=$HOME"',
          'for p in /usr/bin/node /usr/bin/git /etc/hostname /lib/x86_64-linux-gnu/libstdc++.so.6; do [ -e "$p" ] && echo "host: $p"; done',
          'echo done',
        ].join('\n'),
      ),
    );
    expect(r.exitCode).toBe(0);
    expect(r.output.trim().split('\n')).toEqual([
      'from the image',
      // The image's PATH; HOME stays the sandbox's.
      'PATH=/opt/tool/bin:/usr/bin:/bin LANG=C.UTF-8 HOME=/tmp/home',
      'done',
    ]);
  });

  it("binds the sandbox's passwd over the image's, and keeps the work tree writable and the image read-only", async () => {
    const r = await runner.run(
      req(
        [
          'while read -r l; do case "$l" in sandbox:*) echo "$l";; esac; done < /etc/passwd',
          'echo x > "$PWD/written" && echo wrote',
          '(echo x > /etc/hello.txt) 2>/dev/null || echo read-only',
          'echo "$GIT_CONFIG_SYSTEM"',
        ].join('\n'),
      ),
    );
    expect(r.exitCode).toBe(0);
    expect(r.output.trim().split('\n')).toEqual([
      'sandbox:x:1000:1000:sandbox:/tmp/home:/bin/sh',
      'wrote',
      'read-only',
      // The image has no /etc/gitconfig to bind over: git reads the generated one here.
      '/run/issue-agent/gitconfig',
    ]);
  });

  it("lets an environment's setup write into its copy of the image, within the work tree's disk limit", async () => {
    const copy = path.join(image.dir, 'copy');
    execFileSync('cp', ['-a', root.rootfs, copy]);
    const writable: ImageRoot = { ...root, rootfs: copy, writable: true };
    const wrote = await runner.run(
      req('echo set-up > /etc/tool.conf && read -r l < /etc/tool.conf && echo "$l"', { root: writable }),
    );
    expect(wrote.output.trim()).toBe('set-up');
    expect(readFileSync(path.join(copy, 'etc/tool.conf'), 'utf8')).toBe('set-up\n');
    // The same copy for the job's commands: read-only.
    const later = await runner.run(
      req('(echo x > /etc/tool.conf) 2>/dev/null || echo read-only', { root: { ...writable, writable: false } }),
    );
    expect(later.output.trim()).toBe('read-only');
    // 1 MiB a step into the image's /etc, with a 4 MiB limit: stopped long before the 40th.
    const flood = await runner.run(
      req('i=0; while [ $i -lt 40 ]; do printf "%1048576s" x > /etc/f$i; i=$((i+1)); sleep 0.1; done; echo finished', {
        root: writable,
        limits: { maxWorkTreeBytes: 4 * 1024 * 1024 },
      }),
    );
    expect(flood.limit).toBe('disk');
    expect(flood.output).toContain('[killed: the setup added');
    expect(flood.output).not.toContain('finished');
  });

  it('follows no symlink of the image on the host, and takes names such as ..data as names', async () => {
    // A hostile image: its /etc points at a host directory that holds a passwd file, which
    // the host side must not look into (it would bind over it, and bwrap would fail).
    const hostDir = path.join(image.dir, 'host-private');
    mkdirSync(hostDir);
    writeFileSync(path.join(hostDir, 'passwd'), 'host\n');
    const rootfs = path.join(image.dir, 'hostile');
    install(rootfs, '/bin/sh', '/usr/bin/sh');
    symlinkSync('usr/bin', path.join(rootfs, 'bin'));
    symlinkSync(hostDir, path.join(rootfs, 'etc'));
    mkdirSync(path.join(rootfs, '..data'));
    writeFileSync(path.join(rootfs, '..data/x'), 'dotdot\n');
    const r = await runner.run(
      req('read -r x < "/..data/x"; echo "$x"; [ -e /etc/passwd ] || echo no-passwd', { root: { rootfs, env: [] } }),
    );
    expect(r.output.trim().split('\n')).toEqual(['dotdot', 'no-passwd']);
    expect(r.exitCode).toBe(0);
  });

  it("runs the install egress's forwarder on the host's node, which the image does not have", async () => {
    const r = await runner.run(req('echo "proxy $HTTPS_PROXY"', { network: 'registries', egress: { rules: [] } }));
    expect(r.output).not.toContain('forwarder did not start');
    expect(r.exitCode).toBe(0);
    expect(r.output.trim()).toBe('proxy http://127.0.0.1:3128');
  });
});
