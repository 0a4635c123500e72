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
  name: Check['name'];
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
}

export interface ValidationReport {
  ok: boolean;
  results: CheckResult[];
  /** The first failing check, if any. */
  failed?: CheckResult;
}

const NPM_PLACEHOLDER_TEST = /no test specified/;

/**
 * The commands that prove a change: `.github/agent.yml` where it names them, else what the
 * repository declares (package.json scripts, Makefile, pyproject, Cargo, go.mod).
 */
export async function detectChecks(
  read: BaseFileReader,
  config: RepoConfig,
): Promise<{ install?: Check; checks: Check[] }> {
  const configured = config.commands ?? {};
  const detected: { install?: string; lint?: string; typecheck?: string; test?: string } = {};
  const exists = async (p: string) => (await read(p)) !== undefined;
  const pkgText = await read('package.json');
  if (pkgText !== undefined) {
    let pkg: { scripts?: Record<string, string>; dependencies?: object; devDependencies?: object } = {};
    try {
      pkg = JSON.parse(pkgText);
    } catch {
      // An unparseable package.json is the repository's problem; its test command will say so.
    }
    const scripts = pkg.scripts ?? {};
    const hasDeps = Object.keys(pkg.dependencies ?? {}).length + Object.keys(pkg.devDependencies ?? {}).length > 0;
    const run = (await exists('pnpm-lock.yaml')) ? 'pnpm' : (await exists('yarn.lock')) ? 'yarn' : 'npm';
    if (hasDeps) {
      detected.install =
        run === 'pnpm'
          ? // --ignore-pnpmfile: the repository's .pnpmfile.cjs is code pnpm would run.
            'pnpm install --frozen-lockfile --ignore-scripts --ignore-pnpmfile'
          : run === 'yarn'
            ? // YARN_IGNORE_PATH: yarn would otherwise run the file the repository's yarn-path / yarnPath names.
              'YARN_IGNORE_PATH=1 yarn install --frozen-lockfile --ignore-scripts'
            : (await exists('package-lock.json')) || (await exists('npm-shrinkwrap.json'))
              ? 'npm ci --ignore-scripts --no-audit --no-fund'
              : 'npm install --ignore-scripts --no-audit --no-fund';
    }
    if (scripts.lint) detected.lint = `${run} run lint`;
    if (scripts.typecheck) detected.typecheck = `${run} run typecheck`;
    if (scripts.test && !NPM_PLACEHOLDER_TEST.test(scripts.test)) detected.test = `${run} test`;
  } else if (await exists('Cargo.toml')) {
    detected.test = 'cargo test --offline';
  } else if (await exists('go.mod')) {
    detected.test = 'go test ./...';
  } else if ((await exists('pyproject.toml')) || (await exists('pytest.ini'))) {
    detected.test = 'python3 -m pytest -q';
  }
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
  return { install, checks };
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
