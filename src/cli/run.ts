import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type Logger, pino } from 'pino';
import { traceFileName } from '../agent/trace.js';
import { ConfigError, parseEnv, registryAccess } from '../config/env.js';
import { parseRepoConfig, REPO_CONFIG_PATH, RepoConfigError, type RepoConfig } from '../config/repo-config.js';
import { LocalRepo } from '../github/local-repo.js';
import { createLogger } from '../telemetry/logger.js';
import { branchName, jobId, type JobData } from '../queue/jobs.js';
import { registerSecret, sanitise } from '../util/sanitise.js';
import { git } from '../sandbox/git.js';
import { type InstallNetworkPolicy, operatorInstallPolicy } from '../sandbox/egress/policy.js';
import { createRunner } from '../sandbox/create-runner.js';
import { Environments } from '../sandbox/environment/environments.js';
import type { Runner } from '../sandbox/runner.js';
import type { Outcome } from '../queue/outcome.js';
import { runJob } from '../job/lifecycle.js';
import { problemLine } from './config-check.js';
import { EXIT } from './exit-codes.js';
import { Progress } from './progress.js';

export interface RunOptions {
  repo: string;
  task?: string;
  issueFile?: string;
  base?: string;
  number?: number;
  report?: string;
  sandbox: 'bwrap' | 'none';
  dataDir?: string;
  verbose?: boolean;
}

export interface RunIo {
  out: (text: string) => void;
  err: (text: string) => void;
  tty: boolean;
  env: Record<string, string | undefined>;
  /** Reads standard input (for `--issue-file -`). */
  stdin: () => string;
  /** Ctrl-C: the first stops the job at its next step, the second quits. */
  onInterrupt: (handler: () => void) => () => void;
}

/** A reason not to start: said on stderr, exit 2, nothing spent. */
export class CannotStart extends Error {}

/** A task's text as an issue: the first line (without a leading `#`) is the title, the rest the body. */
export function taskFrom(text: string): { title: string; body: string } {
  const lines = text.replace(/\r\n?/g, '\n').trim().split('\n');
  const title = (lines[0] ?? '').replace(/^#+\s*/, '').trim();
  if (!title) throw new CannotStart('the task is empty: its first line is the title, the rest the description');
  return { title, body: lines.slice(1).join('\n').trim() };
}

async function gitOut(args: string[], cwd: string): Promise<string> {
  return (await git(args, { cwd })).stdout.trim();
}

/** The checkout's top directory, its git directory and the branch to start from. */
async function resolveCheckout(
  repo: string,
  base: string | undefined,
): Promise<{ dir: string; gitDir: string; base: string; baseSha: string; dirty: boolean }> {
  const at = path.resolve(repo);
  if (!existsSync(at)) throw new CannotStart(`--repo ${repo}: no such directory`);
  let dir: string;
  try {
    dir = await gitOut(['rev-parse', '--show-toplevel'], at);
  } catch {
    throw new CannotStart(`--repo ${repo}: not a git checkout (git rev-parse --show-toplevel failed in ${at})`);
  }
  const gitDir = path.resolve(dir, await gitOut(['rev-parse', '--git-common-dir'], dir));
  let branch = base;
  if (branch === undefined) {
    branch = await gitOut(['symbolic-ref', '--short', '-q', 'HEAD'], dir).catch(() => '');
    if (!branch)
      throw new CannotStart(`${dir} has a detached HEAD: check out the branch to start from, or name it with --base`);
  }
  const baseSha = await gitOut(['rev-parse', '--verify', '-q', `refs/heads/${branch}^{commit}`], dir).catch(() => '');
  if (!baseSha)
    throw new CannotStart(
      `${dir} has no branch "${branch}" with a commit${base === undefined ? ' yet: commit something first' : ''}`,
    );
  const dirty = (await gitOut(['status', '--porcelain', '--untracked-files=no'], dir)) !== '';
  return { dir, gitDir, base: branch, baseSha, dirty };
}

/** One more than the highest `agent/issue-N-…` (or `agent/wip/issue-N-…`) branch in the checkout. */
async function nextTaskNumber(dir: string): Promise<number> {
  const refs = (await gitOut(['for-each-ref', '--format=%(refname:short)', 'refs/heads/agent/'], dir)).split('\n');
  const numbers = refs
    .map((r) => /^agent\/(?:wip\/)?issue-(\d+)(?:-|$)/.exec(r)?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number);
  return Math.max(0, ...numbers) + 1;
}

function localUser(env: Record<string, string | undefined>): string {
  let name = env.USER ?? env.LOGNAME;
  try {
    name ??= os.userInfo().username;
  } catch {
    // no passwd entry (a container): the default below
  }
  return (name ?? '').replace(/[^A-Za-z0-9-]/g, '') || 'you';
}

/** The spend note the pipeline writes at the end of its trace. */
function spendOf(traceFile: string): string | undefined {
  if (!existsSync(traceFile)) return undefined;
  const notes = readFileSync(traceFile, 'utf8')
    .split('\n')
    .filter((l) => l.includes('"message":"spend"'))
    .map(
      (l) =>
        JSON.parse(l) as {
          detail?: { modelCalls: number; inputTokens: number; outputTokens: number; costUsd: number; seconds: number };
        },
    );
  const d = notes.at(-1)?.detail;
  if (!d) return undefined;
  return `${d.modelCalls} model call${d.modelCalls === 1 ? '' : 's'}, ${d.inputTokens.toLocaleString('en-US')} input tokens, ${d.outputTokens.toLocaleString('en-US')} output tokens, $${d.costUsd.toFixed(4)}, ${d.seconds.toFixed(1)} s`;
}

/**
 * `issue-agent run`: the app's pipeline (scope → plan → code ⇄ validate → deliver) on a
 * local checkout, without GitHub or Redis. The checkout is the remote: the branch is pushed
 * into it and the pull request body becomes a report file. Answers the exit code.
 */
export async function runLocal(opts: RunOptions, io: RunIo): Promise<number> {
  try {
    return await run(opts, io);
  } catch (err) {
    if (err instanceof CannotStart || err instanceof ConfigError) {
      io.err(`issue-agent run: ${err.message}\n`);
      return EXIT.cannotStart;
    }
    throw err;
  }
}

type Checkout = Awaited<ReturnType<typeof resolveCheckout>>;
/** The environment, with the model key a run cannot start without. */
type CliEnv = ReturnType<typeof parseEnv> & { ANTHROPIC_API_KEY: string };
type Task = ReturnType<typeof taskFrom>;

/** Where one run works: its checkout, branch, job, and the files it writes. */
interface LocalRun {
  checkout: Checkout;
  task: Task;
  number: number;
  branch: string;
  dataDir: string;
  reportPath: string;
  job: JobData;
  traceFile: string;
}

async function run(opts: RunOptions, io: RunIo): Promise<number> {
  const task = taskFrom(readTaskText(opts, io));
  if (opts.number !== undefined && !(Number.isInteger(opts.number) && opts.number > 0))
    throw new CannotStart(`--number ${opts.number}: expected a whole number above 0`);
  const env = readEnv(io);
  const where = await planRun(opts, io, task);
  const { checkout, number, branch } = where;
  const host = new LocalRepo({
    dir: checkout.dir,
    ref: { owner: where.job.owner, repo: where.job.repo },
    baseBranch: checkout.base,
    task: { number, ...task, author: where.job.sender },
    reportPath: where.reportPath,
  });
  const repoConfig = await readRepoConfig(host, checkout.base, env);

  const log = createLogger(
    opts.verbose ? 'debug' : io.env.LOG_LEVEL ? env.LOG_LEVEL : 'warn',
    pino.destination({ fd: 2, sync: true }),
  );
  const runner = sandboxFor(opts, env, log, io);
  const installNetwork = await operatorInstallPolicy(env, log);
  const progress = new Progress({ write: io.out, tty: io.tty });
  const say = (line: string) => progress.line(line);
  say(
    `issue-agent run: task #${number} "${task.title}" on ${checkout.base} (${checkout.baseSha.slice(0, 12)}) of ${checkout.dir}`,
  );
  // What the pipeline will use: the repository's models over the environment's.
  const models = { frontier: env.MODEL_FRONTIER, mid: env.MODEL_MID, fast: env.MODEL_FAST, ...repoConfig.models };
  say(`  branch ${branch} · sandbox ${runner.backend} · models ${models.frontier} / ${models.mid} / ${models.fast}`);
  if (checkout.dirty)
    say(`  note: uncommitted changes are not part of the run; it starts from the last commit on ${checkout.base}`);

  const outcome = await runLocalJob(where, { env, runner, installNetwork, host, log, io, progress });
  if (typeof outcome === 'number') return outcome;
  progress.stop();
  return report(where, outcome, host, say);
}

/** The task's text, from --task or --issue-file (exactly one). */
function readTaskText(opts: RunOptions, io: RunIo): string {
  if ((opts.task === undefined) === (opts.issueFile === undefined))
    throw new CannotStart('give the task with exactly one of --task TEXT or --issue-file FILE');
  if (opts.issueFile === undefined) return opts.task ?? '';
  try {
    return opts.issueFile === '-' ? io.stdin() : readFileSync(opts.issueFile, 'utf8');
  } catch (err) {
    throw new CannotStart(
      `--issue-file ${opts.issueFile}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : String(err)}`,
    );
  }
}

/** The environment the CLI uses, with the model key it cannot run without. */
function readEnv(io: RunIo): CliEnv {
  // Only what the CLI uses is read, so an unrelated variable of the app's cannot stop it.
  const pick = (names: string[]) => Object.fromEntries(names.map((n) => [n, io.env[n]]));
  const env = parseEnv(
    pick([
      'ANTHROPIC_API_KEY',
      'ANTHROPIC_BASE_URL',
      'MODEL_FRONTIER',
      'MODEL_MID',
      'MODEL_FAST',
      'LOG_LEVEL',
      'REGISTRY_AUTH_FILE',
      'REGISTRY_INSECURE_HOSTS',
      'ENVIRONMENTS_MAX_GB',
      'SANDBOX_EGRESS_PRIVATE_NETWORKS',
    ]),
  );
  const key = env.ANTHROPIC_API_KEY;
  if (!key) {
    throw new CannotStart(
      'ANTHROPIC_API_KEY is not set: the pipeline calls the model with it. Export it (and ANTHROPIC_BASE_URL for a gateway or proxy), then run again.',
    );
  }
  registerSecret(key);
  return { ...env, ANTHROPIC_API_KEY: key };
}

/** The checkout, the task's number and branch, the next attempt's job, and where it writes. */
async function planRun(opts: RunOptions, io: RunIo, task: Task): Promise<LocalRun> {
  const checkout = await resolveCheckout(opts.repo, opts.base);
  const name =
    path
      .basename(checkout.dir)
      .replace(/[^A-Za-z0-9_.-]/g, '-')
      .slice(0, 100) || 'repo';
  const number = opts.number ?? (await nextTaskNumber(checkout.dir));
  const branch = branchName(number, task.title);
  const dataDir = path.resolve(opts.dataDir ?? io.env.DATA_DIR ?? path.join(checkout.gitDir, 'issue-agent'));
  const reportPath = path.resolve(
    opts.report ?? path.join(checkout.gitDir, 'issue-agent', `report-${branch.replace(/\//g, '-')}.md`),
  );
  const owner = 'local';
  const sender = localUser(io.env);
  let attempt = 1;
  while (
    existsSync(path.join(dataDir, 'traces', traceFileName(jobId({ owner, repo: name, issueNumber: number, attempt }))))
  )
    attempt++;
  const job: JobData = {
    kind: 'issue',
    installationId: 1,
    owner,
    repo: name,
    issueNumber: number,
    deliveryId: 'cli',
    sender,
    attempt,
  };
  const traceFile = path.join(dataDir, 'traces', traceFileName(jobId(job)));
  return { checkout, task, number, branch, dataDir, reportPath, job, traceFile };
}

/** The repository's config on the base branch; an invalid one stops the run before anything starts. */
async function readRepoConfig(host: LocalRepo, base: string, env: CliEnv): Promise<RepoConfig> {
  // The pipeline would explain an invalid file in a comment; here it is said before anything starts.
  try {
    return parseRepoConfig(await host.fileText(REPO_CONFIG_PATH, base), {
      allowHostNetwork: env.SANDBOX_ALLOW_HOST_NETWORK,
    });
  } catch (err) {
    if (!(err instanceof RepoConfigError)) throw err;
    const lines = err.problems.map((p) => `  ${problemLine(p)}`);
    throw new CannotStart(
      `${REPO_CONFIG_PATH} on ${base} is invalid, so nothing ran:\n${lines.join('\n')}\nFix it (issue-agent config check checks the file), commit, and run again.`,
    );
  }
}

/** The sandbox --sandbox asks for, with a warning when it is none. */
function sandboxFor(opts: RunOptions, env: CliEnv, log: Logger, io: RunIo): Runner {
  let runner: Runner;
  try {
    runner = createRunner(opts.sandbox === 'none' ? 'unsandboxed' : 'bwrap', log, {
      allowRootMapped: env.SANDBOX_ALLOW_ROOT_MAPPED,
    });
  } catch (err) {
    throw new CannotStart(
      `${err instanceof Error ? err.message : String(err)}\n(--sandbox none runs without isolation, for trusted repositories only)`,
    );
  }
  if (opts.sandbox === 'none') {
    io.err(
      "issue-agent run: WARNING: --sandbox none: the repository's install, tests and the agent's commands run on this machine without isolation, with network and your files in reach. Use it only for code you trust.\n",
    );
  }
  return runner;
}

/** Runs the job (job/lifecycle.ts) until it ends or Ctrl-C stops it; a job that throws answers its exit code. */
async function runLocalJob(
  { job, dataDir, traceFile }: LocalRun,
  deps: {
    env: CliEnv;
    runner: Runner;
    installNetwork: InstallNetworkPolicy;
    host: LocalRepo;
    log: Logger;
    io: RunIo;
    progress: Progress;
  },
): Promise<Outcome | number> {
  const { env, io, progress } = deps;
  const stop = new AbortController();
  const offInterrupt = io.onInterrupt(() => {
    if (stop.signal.aborted) process.exit(EXIT.interrupted);
    progress.line('stopping at the next step (Ctrl-C again quits at once, leaving the work tree behind)');
    stop.abort('you (Ctrl-C)');
  });
  try {
    return await runJob(job, {
      config: {
        dataDir,
        models: { frontier: env.MODEL_FRONTIER, mid: env.MODEL_MID, fast: env.MODEL_FAST },
        anthropicApiKey: env.ANTHROPIC_API_KEY,
        anthropicBaseUrl: env.ANTHROPIC_BASE_URL,
      },
      runner: deps.runner,
      environments: Environments.open({
        dataDir,
        access: registryAccess(env),
        log: deps.log,
        maxBytes: env.ENVIRONMENTS_MAX_GB * 1024 ** 3,
        runner: deps.runner,
      }),
      installNetwork: deps.installNetwork,
      gh: deps.host,
      bot: { name: 'issue-agent', email: 'issue-agent@localhost' },
      statusRef: { get: async () => undefined, set: async (id) => id },
      closesIssue: false,
      alwaysKeepWip: true,
      costCaps: { jobUsd: env.MAX_JOB_COST_USD, dailyUsd: env.MAX_DAILY_COST_USD },
      log: deps.log,
      signal: stop.signal,
      statusIntervalMs: 0,
      onStatus: (s) => progress.status(s),
    });
  } catch (err) {
    progress.stop();
    io.err(`issue-agent run: the job failed: ${sanitise(err instanceof Error ? err.message : String(err))}\n`);
    if (existsSync(traceFile)) io.err(`  trace: issue-agent trace ${traceFile}\n`);
    return EXIT.noBranch;
  } finally {
    offInterrupt();
  }
}

/** Says what the run left (a branch, or the report of why not) and answers the exit code. */
async function report(
  { checkout, task, branch, reportPath, job, traceFile }: LocalRun,
  outcome: Outcome,
  host: LocalRepo,
  say: (line: string) => void,
): Promise<number> {
  const spend = spendOf(traceFile);
  const tail = [...(spend ? [`  spend: ${spend}`] : []), `  trace: issue-agent trace ${traceFile}`];
  if (outcome.kind === 'pr' && host.delivered) {
    const sha = await gitOut(['rev-parse', '--verify', '-q', `refs/heads/${branch}`], checkout.dir).catch(() => '');
    say(`done: branch ${branch}${sha ? ` (${sha.slice(0, 12)})` : ''} in ${checkout.dir}`);
    say(`  report: ${reportPath}`);
    for (const l of [...tail, `  see it: git -C ${checkout.dir} diff ${checkout.base}...${branch}`]) say(l);
    return EXIT.branch;
  }

  // No branch: the report is what the issue would have been told.
  const headline = await noBranch(outcome, job, checkout.dir, say);
  await mkdir(path.dirname(reportPath), { recursive: true });
  await writeFile(reportPath, sanitise(`# ${task.title}\n\n${headline}\n\n${host.finalStatus ?? ''}\n`));
  say(`  report: ${reportPath}`);
  for (const l of tail) say(l);
  return outcome.kind === 'stopped'
    ? EXIT.interrupted
    : outcome.kind === 'invalid-config'
      ? EXIT.cannotStart
      : EXIT.noBranch;
}

/** Says why there is no branch; answers the report's first line. */
async function noBranch(outcome: Outcome, job: JobData, dir: string, say: (line: string) => void): Promise<string> {
  switch (outcome.kind) {
    case 'stuck': {
      say(`stuck (${outcome.reason}): ${outcome.evidence}`);
      if (outcome.failingCommand) say(`  failing command: ${outcome.failingCommand}`);
      const wip = `agent/wip/issue-${job.issueNumber}-attempt-${job.attempt}`;
      const pushed = await gitOut(['rev-parse', '--verify', '-q', `refs/heads/${wip}`], dir).catch(() => '');
      if (pushed) say(`  work in progress: branch ${wip} (${pushed.slice(0, 12)}) in ${dir}`);
      return `No branch: the job stopped (${outcome.reason}).`;
    }
    case 'needs-info':
      say('needs more information before it can start:');
      for (const [i, q] of outcome.questions.entries()) say(`  ${i + 1}. ${q}`);
      say('  Answer them in the task text and run again.');
      return 'No branch: the task needs more information.';
    case 'stopped':
      say(`stopped by ${outcome.by}; nothing was pushed`);
      return `No branch: stopped by ${outcome.by}.`;
    case 'invalid-config':
      say(`${REPO_CONFIG_PATH} is invalid (${outcome.problems} problems); nothing ran`);
      return `No branch: ${REPO_CONFIG_PATH} is invalid.`;
    default:
      say(`ended without a branch (${outcome.kind})`);
      return `No branch (${outcome.kind}).`;
  }
}
