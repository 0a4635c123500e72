/**
 * Time to a ready environment, for a first job and a repeat job of the same repository: the
 * image pulled from a registry on loopback and unpacked, its setup run on a copy, the
 * dependency install run in the work tree (first job), against the registry asked for the
 * digest, the set-up environment and the install taken from the caches (repeat job). The
 * parts are the ones a job uses (image-store, environments, deps-cache, runCheck), on a
 * Debian python3 + pytest image made with mmdebstrap. Goal: repeat ≤ 10% of the first.
 * Also the disk each cache holds per environment.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { createRunner } from '../src/sandbox/create-runner.js';
import { DepsCache } from '../src/sandbox/environment/deps-cache.js';
import { Environments } from '../src/sandbox/environment/environments.js';
import { onRoot } from '../src/sandbox/runner.js';
import { runCheck } from '../src/stages/validate.js';
import { Trace } from '../src/agent/trace.js';
import { startTestRegistry } from '../test/helpers/oci-registry.js';
import { pythonRootfs } from '../test/helpers/python-image.js';
import { median, type Figure } from './table.js';

const ROUNDS = Number(process.env.BENCH_ENV_ROUNDS ?? 3);
/** Real work for a setup: byte-compile the image's standard library into the copy. */
const SETUP = 'python3 -m compileall -q -j 0 /usr/lib/python3.11 >/dev/null 2>&1; python3 -c "import pytest"';
/** Real work for an install: a virtual environment in the tree, with the image's pytest copied in and compiled. */
const INSTALL =
  'python3 -m venv --without-pip .issue-agent/venv && cp -r /usr/lib/python3/dist-packages/. "$(.issue-agent/venv/bin/python3 -c \'import sysconfig; print(sysconfig.get_paths()["purelib"])\')" && .issue-agent/venv/bin/python3 -m compileall -q .issue-agent/venv >/dev/null';

export async function environmentFigures(opts: { log: (line: string) => void }): Promise<Figure[]> {
  const log = pino({ level: 'silent' });
  const t0 = Date.now();
  const rootfs = pythonRootfs();
  opts.log(
    `environments: the python3 + pytest image's root filesystem ready in ${Date.now() - t0} ms (made once per machine)`,
  );
  const registry = await startTestRegistry();
  registry.pushDir('bench/py', '3.11', rootfs, ['PATH=/usr/local/bin:/usr/bin:/bin', 'LANG=C.UTF-8']);
  const runner = createRunner('bwrap', log);
  const first: number[] = [];
  const repeat: number[] = [];
  let usage: Awaited<ReturnType<Environments['usage']>> | undefined;
  try {
    for (let round = 0; round < ROUNDS; round++) {
      // A fresh DATA_DIR each round: the first job finds nothing cached.
      const dataDir = mkdtempSync(path.join(tmpdir(), 'ia-bench-env-'));
      try {
        const envs = Environments.open({ dataDir, access: { insecureHosts: [registry.host] }, log });
        const job = async (n: number): Promise<number> => {
          const tree = path.join(dataDir, 'worktrees', `job-${n}`);
          mkdirSync(tree, { recursive: true });
          execFileSync('git', ['init', '-q', tree]);
          writeFileSync(path.join(tree, 'requirements.txt'), 'pytest\n');
          const started = Date.now();
          const image = await envs.images.pull(`${registry.host}/bench/py:3.11`);
          const ready = await envs.ready(
            image,
            { repository: 'bench', commands: [SETUP], inputs: { 'requirements.txt': 'a' } },
            async (root) => {
              const r = await onRoot(runner, root).run({
                workTree: tree,
                command: SETUP,
                timeoutMs: 600_000,
                network: 'none',
              });
              if (r.exitCode !== 0) throw new Error(`setup failed: ${r.output}`);
            },
          );
          const key = DepsCache.key({
            repository: 'bench',
            environment: ready.setup!.key,
            command: INSTALL,
            manifests: { 'requirements.txt': 'a' },
          });
          if (!(await envs.deps.restore(key, tree))) {
            const installed = await runCheck(
              {
                runner: onRoot(runner, ready.root),
                workTree: tree,
                sandboxReadOnlyPaths: [],
                trace: new Trace(dataDir, `bench-${n}`),
                stage: 'install',
              },
              { name: 'install', command: INSTALL, source: 'config', network: 'none' },
            );
            if (!installed.ok) throw new Error(`install failed: ${installed.tail}`);
            await envs.deps.save(key, tree, ['.issue-agent/venv']);
          }
          return Date.now() - started;
        };
        first.push(await job(1));
        repeat.push(await job(2));
        usage = await envs.usage();
        opts.log(`  round ${round + 1}: first job ${first.at(-1)} ms, repeat job ${repeat.at(-1)} ms`);
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
    }
  } finally {
    await registry.stop();
  }
  const f = median(first);
  const r = median(repeat);
  const ratio = r / f;
  opts.log(
    `environments: time to a ready environment (pull, setup, install), median of ${ROUNDS}: first job ${f} ms, repeat job ${r} ms (${(100 * ratio).toFixed(1)}% of the first; goal ≤ 10%)`,
  );
  opts.log(
    `  disk per cached environment: image ${mib(usage!.images.bytes)}, set-up environment ${mib(usage!.setups.bytes)}, kept install ${mib(usage!.deps.bytes)}`,
  );
  return [
    {
      figure: 'environment ready, repeat job',
      ours: r,
      baseline: f,
      baselineName: 'first job (pull, setup, install)',
      unit: 'ms',
      goal: { text: 'repeat ≤ 10% of the first', met: ratio <= 0.1 },
    },
    { figure: 'disk per cached image', ours: usage!.images.bytes, baseline: NaN, unit: 'bytes' },
    { figure: 'disk per set-up environment', ours: usage!.setups.bytes, baseline: NaN, unit: 'bytes' },
    { figure: 'disk per kept install', ours: usage!.deps.bytes, baseline: NaN, unit: 'bytes' },
  ];
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
