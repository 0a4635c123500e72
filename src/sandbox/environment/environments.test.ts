import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../../../test/helpers/git-fixtures.js';
import { hostProgramFiles, startTestRegistry, type TestRegistry } from '../../../test/helpers/oci-registry.js';
import { createRunner } from '../create-runner.js';
import { type ImageRoot, onRoot } from '../runner.js';
import { Environments, type SetupSpec } from './environments.js';
import { EnvironmentError, type PulledImage } from './image-store.js';

// Real parts: a registry on loopback, skopeo and umoci, cp, and setup commands run by the
// bwrap sandbox on a writable copy of the image.

const log = pino({ level: 'silent' });
const runner = createRunner('bwrap', log);

describe('set-up environments', () => {
  let registry: TestRegistry;
  let data: { dir: string; cleanup: () => void };
  let work: { dir: string; cleanup: () => void };
  let envs: Environments;
  let image: PulledImage;
  const runs: string[] = [];

  /** Runs each command in the sandbox on `root`, as the job does; a failure throws as the job's does. */
  const setupOf =
    (commands: string[]) =>
    async (root: ImageRoot): Promise<void> => {
      for (const command of commands) {
        runs.push(command);
        const r = await onRoot(runner, root).run({ workTree: work.dir, command, timeoutMs: 20_000, network: 'none' });
        if (r.exitCode !== 0)
          throw new EnvironmentError(
            'setup-failed',
            image.reference,
            `${command} failed (exit ${r.exitCode}): ${r.output}`,
            {
              command,
              tail: r.output,
            },
          );
      }
    };
  const spec = (
    commands: string[],
    inputs: Record<string, string> = {},
    repository = 'https://github.test/o/a.git',
  ): SetupSpec => ({
    repository,
    commands,
    inputs,
  });
  const ready = (commands: string[], inputs?: Record<string, string>, store = envs, repository?: string) =>
    store.ready(image, spec(commands, inputs, repository), setupOf(commands));

  beforeAll(async () => {
    registry = await startTestRegistry();
    data = tempDir('environments');
    work = tempDir('environments-wt');
    execFileSync('git', ['init', '-q', work.dir]);
    envs = Environments.open({ dataDir: data.dir, access: { insecureHosts: [registry.host] }, log });
    registry.push('tools', '1', {
      ...hostProgramFiles(['sh', 'mkdir', 'cat', 'touch']),
      'etc/motd': 'from the image\n',
      // Setup writes inside the image's own top-level directories, as in any distribution's image.
      'opt/README': 'third-party software\n',
    });
    image = await envs.images.pull(`${registry.host}/tools:1`);
  }, 60_000);
  afterAll(async () => {
    await registry.stop();
    data.cleanup();
    work.cleanup();
  });

  it('runs the setup once on a private copy of the image, and reuses it while nothing it depends on changes', async () => {
    const setup = ['mkdir -p /opt/tool', 'echo set up > /opt/tool/marker'];
    runs.length = 0;
    const first = await ready(setup, { 'requirements.txt': 'a1' });
    expect(first.setup).toMatchObject({ cached: false });
    expect(first.setup!.bytes).toBeGreaterThan(0);
    expect(runs).toEqual(setup);
    expect(readFileSync(path.join(first.root.rootfs, 'opt/tool/marker'), 'utf8')).toBe('set up\n');
    // The image itself is untouched: another repository's setup starts from it as pulled.
    expect(existsSync(path.join(image.rootfs, 'opt/tool'))).toBe(false);

    // The job's commands see what the setup made, and cannot change the environment.
    const seen = await onRoot(runner, first.root).run({
      workTree: work.dir,
      command: 'cat /opt/tool/marker /etc/motd; touch /opt/tool/other 2>&1 || echo refused',
      timeoutMs: 20_000,
      network: 'none',
    });
    expect(seen.output).toContain('set up\nfrom the image\n');
    expect(seen.output).toContain('refused');
    expect(existsSync(path.join(first.root.rootfs, 'opt/tool/other'))).toBe(false);

    runs.length = 0;
    const again = await ready(setup, { 'requirements.txt': 'a1' });
    expect(again.setup).toEqual({ ...first.setup, cached: true });
    expect(again.root.rootfs).toBe(first.root.rootfs);
    expect(runs).toEqual([]);

    // A changed manifest, changed commands, or another repository is a new environment:
    // setup runs a repository's own files, so its result is never another repository's.
    const changedInput = await ready(setup, { 'requirements.txt': 'b2' });
    const changedCommands = await ready([...setup, 'true'], { 'requirements.txt': 'a1' });
    const otherRepo = await ready(setup, { 'requirements.txt': 'a1' }, envs, 'https://github.test/o/b.git');
    for (const e of [changedInput, changedCommands, otherRepo]) expect(e.setup?.cached).toBe(false);
    expect(new Set([first, changedInput, changedCommands, otherRepo].map((e) => e.setup!.key)).size).toBe(4);
    expect(runs.length).toBe(setup.length * 3 + 1);
  });

  it('runs on the image as pulled when there is no setup', async () => {
    const plain = await envs.ready(image, spec([]), setupOf([]));
    expect(plain.root).toEqual({ rootfs: image.rootfs, env: image.env });
    expect(plain.setup).toBeUndefined();
  });

  it('keeps nothing of a setup that failed, and says which command', async () => {
    const before = readdirSync(path.join(data.dir, 'environments/setups'));
    const failed = await ready(['mkdir -p /opt/half', 'echo broken >&2; exit 3']).catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(EnvironmentError);
    expect(failed).toMatchObject({ kind: 'setup-failed', command: { command: 'echo broken >&2; exit 3' } });
    expect((failed as EnvironmentError).command?.tail).toContain('broken');
    expect(readdirSync(path.join(data.dir, 'environments/setups'))).toEqual(before);
    expect(readdirSync(path.join(data.dir, 'environments/tmp'))).toEqual([]);
  });

  it('lets two workers set up the same environment at once: both get it, one copy is kept', async () => {
    const other = Environments.open({ dataDir: data.dir, access: { insecureHosts: [registry.host] }, log });
    const setup = ['mkdir -p /opt/race', 'echo one > /opt/race/marker'];
    const before = readdirSync(path.join(data.dir, 'environments/setups')).length;
    const [a, b] = await Promise.all([ready(setup), ready(setup, {}, other)]);
    expect(a.root.rootfs).toBe(b.root.rootfs);
    expect(readFileSync(path.join(a.root.rootfs, 'opt/race/marker'), 'utf8')).toBe('one\n');
    expect(readdirSync(path.join(data.dir, 'environments/setups')).length).toBe(before + 1);
    expect(readdirSync(path.join(data.dir, 'environments/tmp'))).toEqual([]);
  });
});
