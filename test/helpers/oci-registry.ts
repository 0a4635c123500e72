import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from './redis.js';

/** A real OCI registry (Debian's docker-registry, distribution 2.8) on loopback, over plain HTTP. */
export interface TestRegistry {
  /** `127.0.0.1:<port>`. */
  host: string;
  /** Builds an image from files (path → content, or content and mode) and pushes it as `name:tag`; answers its digest. */
  push(name: string, tag: string, files: Record<string, ImageFile>, env?: string[]): string;
  /** Builds an image whose root filesystem is a copy of `rootfs` and pushes it as `name:tag`; answers its digest. */
  pushDir(name: string, tag: string, rootfs: string, env?: string[]): string;
  stop(): Promise<void>;
}

export type ImageFile = string | { data: string | Buffer; mode: number } | { link: string };

export async function startTestRegistry(): Promise<TestRegistry> {
  const dir = mkdtempSync(path.join(tmpdir(), 'oci-registry-'));
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  writeFileSync(
    path.join(dir, 'config.yml'),
    `version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\nhttp:\n  addr: ${host}\nlog:\n  level: error\n`,
  );
  const child: ChildProcess = spawn('docker-registry', ['serve', path.join(dir, 'config.yml')], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    const up = await fetch(`http://${host}/v2/`).then(
      (r) => r.ok,
      () => false,
    );
    if (up) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  let n = 0;
  const build = (name: string, tag: string, env: string[], fill: (rootfs: string) => void): string => {
    const work = path.join(dir, `build-${n++}`);
    const run = (file: string, args: string[]) => execFileSync(file, args, { cwd: work, stdio: 'pipe' });
    mkdirSync(work);
    run('umoci', ['init', '--layout', 'layout']);
    run('umoci', ['new', '--image', 'layout:img']);
    run('umoci', ['unpack', '--rootless', '--image', 'layout:img', 'bundle']);
    fill(path.join(work, 'bundle/rootfs'));
    run('umoci', ['repack', '--image', 'layout:img', 'bundle']);
    run('umoci', ['config', '--image', 'layout:img', ...env.flatMap((e) => ['--config.env', e])]);
    run('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', 'oci:layout:img', `docker://${host}/${name}:${tag}`]);
    const digest = run('skopeo', [
      'inspect',
      '--tls-verify=false',
      '--format',
      '{{.Digest}}',
      `docker://${host}/${name}:${tag}`,
    ]);
    rmSync(work, { recursive: true, force: true });
    return digest.toString().trim();
  };
  return {
    host,
    push(name, tag, files, env = ['PATH=/usr/bin:/bin']) {
      return build(name, tag, env, (rootfs) => {
        for (const [p, file] of Object.entries(files)) {
          const to = path.join(rootfs, p);
          mkdirSync(path.dirname(to), { recursive: true });
          if (typeof file === 'string') writeFileSync(to, file);
          else if ('link' in file) symlinkSync(file.link, to);
          else writeFileSync(to, file.data, { mode: file.mode });
        }
      });
    },
    pushDir(name, tag, rootfs, env = ['PATH=/usr/bin:/bin']) {
      return build(name, tag, env, (into) => {
        execFileSync('cp', ['-a', '--', `${rootfs}/.`, into]);
      });
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const gone = new Promise((r) => child.once('exit', r));
        child.kill('SIGKILL');
        await gone;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Files for an image that holds some of the host's programs (at /usr/bin/<name>) and the
 * libraries they link, at the same paths, with /bin a link to usr/bin: a shell and a few
 * tools on a root filesystem of their own, without a distribution.
 */
export function hostProgramFiles(programs: string[]): Record<string, ImageFile> {
  const files: Record<string, ImageFile> = { bin: { link: 'usr/bin' } };
  for (const program of programs) {
    const real = realpathSync(execFileSync('sh', ['-c', `command -v ${program}`], { encoding: 'utf8' }).trim());
    files[`usr/bin/${program}`] = { data: readFileSync(real), mode: 0o755 };
    const libs = execFileSync('ldd', [real], { encoding: 'utf8' }).match(/\/[^\s)]+/g) ?? [];
    for (const lib of libs) files[lib.slice(1)] = { data: readFileSync(realpathSync(lib)), mode: 0o755 };
  }
  return files;
}
