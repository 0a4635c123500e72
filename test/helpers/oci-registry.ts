import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from './redis.js';

/** A real OCI registry (Debian's docker-registry, distribution 2.8) on loopback, over plain HTTP. */
export interface TestRegistry {
  /** `127.0.0.1:<port>`. */
  host: string;
  /** Builds an image from files (path → content) and pushes it as `name:tag`; answers its digest. */
  push(name: string, tag: string, files: Record<string, string>, env?: string[]): string;
  stop(): Promise<void>;
}

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
  return {
    host,
    push(name, tag, files, env = ['PATH=/usr/bin:/bin']) {
      const work = path.join(dir, `build-${n++}`);
      const run = (file: string, args: string[]) => execFileSync(file, args, { cwd: work, stdio: 'pipe' });
      mkdirSync(work);
      run('umoci', ['init', '--layout', 'layout']);
      run('umoci', ['new', '--image', 'layout:img']);
      run('umoci', ['unpack', '--rootless', '--image', 'layout:img', 'bundle']);
      for (const [p, content] of Object.entries(files)) {
        mkdirSync(path.dirname(path.join(work, 'bundle/rootfs', p)), { recursive: true });
        writeFileSync(path.join(work, 'bundle/rootfs', p), content);
      }
      run('umoci', ['repack', '--image', 'layout:img', 'bundle']);
      run('umoci', ['config', '--image', 'layout:img', ...env.flatMap((e) => ['--config.env', e])]);
      run('skopeo', [
        'copy',
        '--quiet',
        '--dest-tls-verify=false',
        'oci:layout:img',
        `docker://${host}/${name}:${tag}`,
      ]);
      const digest = run('skopeo', [
        'inspect',
        '--tls-verify=false',
        '--format',
        '{{.Digest}}',
        `docker://${host}/${name}:${tag}`,
      ]);
      return digest.toString().trim();
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
