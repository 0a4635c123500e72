import { detectToolchain, type Toolchain } from './toolchains.js';
import type { BaseFileReader } from '../agent/context.js';
import type { RepoConfig } from '../config/repo-config.js';
import type { Trace } from '../agent/trace.js';
import type { EgressReport } from '../sandbox/egress/proxy.js';
import type { EgressPolicy, NetworkPolicy, Runner, RunResult } from '../sandbox/runner.js';

export interface Check {
  /** `setup`: an environment's setup command (config/environment.ts), with the install step's network. */
  name: 'setup' | 'install' | 'lint' | 'typecheck' | 'test';
  command: string;
  /** Where the command came from: `.github/agent.yml` or what was detected. */
  source: 'config' | 'detected';
  /** The install step's network (`install_network` in `.github/agent.yml`); every other check has none. */
  network?: NetworkPolicy;
}

/** `install_network`'s default: the package registries, through the egress proxy. */
export const DEFAULT_INSTALL_NETWORK: NetworkPolicy = 'registries';

export interface CheckResult {
  /** `ci`: a failed check of the repository's CI, read back for a CI fix (stages/ci-failures.ts). */
  name: Check['name'] | 'ci';
  command: string;
  ok: boolean;
  exitCode: number | null;
  timedOut: boolean;
  durationMs: number;
  /** The last lines of output, for people. */
  tail: string;
  /** The whole (sandbox-capped) output, for the failure parsers: a failure may be mid-log. */
  output: string;
  /** The install step's firewall report: what its egress let through and refused. */
  egress?: EgressReport;
  /** The install did not run: what the same install left for an earlier job was copied in. */
  reused?: boolean;
}

export interface ValidationReport {
  ok: boolean;
  results: CheckResult[];
  /** The first failing check, if any. */
  failed?: CheckResult;
}

/**
 * The commands that prove a change: `.github/agent.yml` where it names them, else what the
 * repository's files call for (stages/toolchains.ts: package.json scripts, Cargo, go.mod,
 * Python, Maven, Gradle), else a Makefile's test target. The toolchain also says what its
 * install writes and the variables every command needs.
 */
export async function detectChecks(
  read: BaseFileReader,
  config: RepoConfig,
  rootFiles?: readonly string[],
): Promise<{ install?: Check; checks: Check[]; toolchain?: Toolchain }> {
  const configured = config.commands ?? {};
  const files = rootFiles ?? (await listed(read));
  const toolchain = await detectToolchain(read, files);
  const detected: { install?: string; lint?: string; typecheck?: string; test?: string } = { ...toolchain };
  if (!detected.test) {
    const makefile = (await read('Makefile')) ?? '';
    if (/^test:/m.test(makefile)) detected.test = 'make test';
  }
  const pick = (name: Exclude<Check['name'], 'setup'>): Check | undefined => {
    const c = configured[name];
    if (c) return { name, command: c, source: 'config' };
    const d = detected[name];
    return d ? { name, command: d, source: 'detected' } : undefined;
  };
  const checks = (['lint', 'typecheck', 'test'] as const).map(pick).filter((c): c is Check => c !== undefined);
  const install = pick('install');
  if (install && config.install_network) install.network = config.install_network;
  return { install, checks, ...(toolchain ? { toolchain } : {}) };
}

/** Without a listing of the root, the names detection looks for, where they exist. */
async function listed(read: BaseFileReader): Promise<string[]> {
  const names = [
    'package.json',
    'pnpm-lock.yaml',
    'yarn.lock',
    'package-lock.json',
    'npm-shrinkwrap.json',
    'Cargo.toml',
    'go.mod',
    'pyproject.toml',
    'setup.py',
    'setup.cfg',
    'pytest.ini',
    'tox.ini',
    'requirements.txt',
    'uv.lock',
    'poetry.lock',
    'pom.xml',
    'build.gradle',
    'build.gradle.kts',
    'settings.gradle',
    'settings.gradle.kts',
    'gradlew',
  ];
  const found: string[] = [];
  for (const n of names) if ((await read(n)) !== undefined) found.push(n);
  return found;
}

function tailOf(output: string, lines = 60): string {
  const all = output.trimEnd().split('\n');
  return all.length <= lines
    ? all.join('\n')
    : [`[… ${all.length - lines} earlier lines omitted …]`, ...all.slice(-lines)].join('\n');
}

export function toCheckResult(check: Check, r: RunResult): CheckResult {
  return {
    name: check.name,
    command: check.command,
    ok: r.exitCode === 0 && !r.timedOut,
    exitCode: r.exitCode,
    timedOut: r.timedOut,
    durationMs: r.durationMs,
    tail: tailOf(r.output),
    output: r.output,
    ...(r.egress ? { egress: r.egress } : {}),
  };
}

export interface ValidateDeps {
  runner: Runner;
  workTree: string;
  sandboxReadOnlyPaths: string[];
  trace: Trace;
  stage: string;
  timeoutMs?: number;
  /** Kills the running check when the job is asked to stop. */
  signal?: AbortSignal;
  /** Where the install step's egress may go (network 'registries'): the operator's list, narrowed by the repository's. */
  egress?: EgressPolicy;
}

/** Runs one check in the sandbox; only the install step may reach the network, and only as the repository's install_network allows. */
export async function runCheck(deps: ValidateDeps, check: Check): Promise<CheckResult> {
  const installs = check.name === 'install' || check.name === 'setup';
  const r = await deps.runner.run({
    workTree: deps.workTree,
    command: check.command,
    timeoutMs: deps.timeoutMs ?? 15 * 60 * 1000,
    network: installs ? (check.network ?? DEFAULT_INSTALL_NETWORK) : 'none',
    ...(installs && deps.egress ? { egress: deps.egress } : {}),
    readOnlyPaths: deps.sandboxReadOnlyPaths,
    signal: deps.signal,
  });
  deps.trace.write({
    type: 'command',
    stage: deps.stage,
    name: check.name,
    command: check.command,
    exitCode: r.exitCode,
    timedOut: r.timedOut,
    durationMs: r.durationMs,
    output: r.output,
    ...(r.egress ? { egress: r.egress } : {}),
  });
  // Paths are shown relative to the repository: shorter for the model, and the host's
  // directory layout stays out of comments.
  return toCheckResult(check, {
    ...r,
    output: r.output.split(`${deps.workTree}/`).join('').split(deps.workTree).join('.'),
  });
}

/** Runs every check, deterministically and in order; all run so the report is whole. */
export async function validateStage(deps: ValidateDeps, checks: Check[]): Promise<ValidationReport> {
  const results: CheckResult[] = [];
  for (const check of checks) {
    if (deps.signal?.aborted) break;
    results.push(await runCheck(deps, check));
  }
  const failed = results.find((r) => !r.ok);
  // A stopped run never counts as green, whatever ran before the stop.
  return { ok: failed === undefined && !deps.signal?.aborted, results, failed };
}

const HIGHLIGHT = /^\s*(not ok \d+|✖|×|FAIL\b|FAILED\b|ERROR\b|error(\[\w+\])?:|\w*Error:|--- FAIL|panicked at)/i;

/** For people: the lines that name what failed, then the last lines of output. */
export function failureExcerpt(r: CheckResult, tailLines = 15): string {
  const lines = r.tail.split('\n');
  const highlights = [...new Set(lines.filter((l) => HIGHLIGHT.test(l)))].slice(0, 10);
  const tail = lines.slice(-tailLines);
  const head = highlights.filter((h) => !tail.includes(h));
  return [...head, ...(head.length ? ['…'] : []), ...tail].join('\n');
}

/**
 * What identifies a failure across rounds: the failing commands and the lines that name
 * what failed, with numbers (durations, counts, addresses) blanked out.
 */
export function failureSignature(report: ValidationReport): string {
  return report.results
    .filter((r) => !r.ok)
    .map((r) => {
      const named = r.tail
        .split('\n')
        .filter((l) => HIGHLIGHT.test(l))
        .slice(0, 5);
      return [r.command, ...(named.length ? named : r.tail.split('\n').slice(-3))]
        .map((l) =>
          l
            .replace(/\d+(\.\d+)?/g, '#')
            .replace(/\s+/g, ' ')
            .trim(),
        )
        .join('\n');
    })
    .join('\n');
}
