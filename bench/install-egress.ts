/**
 * The same dependency install (npm ci of express 4 and its ~65 packages, no cache) in the
 * sandbox through the egress proxy ('registries', the default) against the worker host's own
 * network ('full', the operator-only opt-in), alternating, fresh work tree and npm cache
 * each round. Goal: the proxy within 1.2× of the host network.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { hostRegistries } from '../src/sandbox/egress/host-registries.js';
import { parseRule } from '../src/sandbox/egress/allowlist.js';
import { createRunner } from '../src/sandbox/create-runner.js';
import type { NetworkPolicy } from '../src/sandbox/runner.js';
import { median, type Figure } from './table.js';

const run = promisify(execFile);
const ROUNDS = Number(process.env.BENCH_INSTALL_ROUNDS ?? 4);
const PACKAGE = { name: 'bench-install', version: '1.0.0', private: true, dependencies: { express: '4.21.2' } };

export async function installFigures(opts: { log: (line: string) => void }): Promise<Figure[]> {
  const root = mkdtempSync(path.join(tmpdir(), 'ia-bench-install-'));
  try {
    // The lock is made once, on the host, outside the measurement.
    const seed = path.join(root, 'seed');
    await run('mkdir', ['-p', seed]);
    writeFileSync(path.join(seed, 'package.json'), JSON.stringify(PACKAGE));
    await run('npm', ['install', '--package-lock-only', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: seed });
    const runner = createRunner('bwrap', pino({ level: 'silent' }));
    const egress = (await hostRegistries()).registries
      .filter((r) => r.ecosystem === 'npm')
      .map((r) => parseRule(r.url));
    const times: Record<'registries' | 'full', number[]> = { registries: [], full: [] };
    let packages = 0;
    for (let i = 0; i < ROUNDS; i++) {
      // Alternating, and the order flipped each round, so drift on a shared machine hits both.
      const order: Array<'registries' | 'full'> = i % 2 === 0 ? ['registries', 'full'] : ['full', 'registries'];
      for (const network of order) {
        const tree = path.join(root, `tree-${i}-${network}`);
        await run('mkdir', ['-p', tree]);
        await run('git', ['init', '-q', tree]);
        await run('cp', [path.join(seed, 'package.json'), path.join(seed, 'package-lock.json'), tree]);
        const r = await runner.run({
          workTree: tree,
          command: 'npm ci --ignore-scripts --no-audit --no-fund',
          timeoutMs: 300_000,
          network: network as NetworkPolicy,
          egress: { rules: egress },
        });
        if (r.exitCode !== 0) throw new Error(`npm ci (${network}) failed: ${r.output.slice(-1500)}`);
        if (network === 'registries' && r.egress?.refused.length)
          throw new Error(`the proxy refused: ${JSON.stringify(r.egress.refused)}`);
        packages = Number(/added (\d+) packages/.exec(r.output)?.[1] ?? packages);
        times[network].push(r.durationMs);
        opts.log(
          `  round ${i + 1}: ${network.padEnd(10)} ${r.durationMs.toFixed(0)} ms${r.egress ? ` (${r.egress.allowed} connections through the proxy)` : ''}`,
        );
        rmSync(tree, { recursive: true, force: true });
      }
    }
    const ours = median(times.registries);
    const baseline = median(times.full);
    const ratio = ours / baseline;
    opts.log(
      `npm ci of ${packages} packages: through the egress proxy ${ours.toFixed(0)} ms, host network ${baseline.toFixed(0)} ms (median of ${ROUNDS}), ${ratio.toFixed(2)}×`,
    );
    return [
      {
        figure: `npm ci, ${packages} packages, through the egress proxy`,
        ours,
        baseline,
        baselineName: 'host network',
        unit: 'ms',
        goal: { text: 'within 1.2×', met: ratio <= 1.2 },
      },
    ];
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
