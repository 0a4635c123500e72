import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { REPO_CONFIG_PATH } from '../config/repo-config.js';
import { checkConfigFile } from './config-check.js';
import { EXIT } from './exit-codes.js';
import type { RunOptions } from './run.js';
import { printTrace } from './trace.js';

// src/cli/ and dist/cli/ are both two levels below the package root.
const VERSION = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

function positiveInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1)
    throw new InvalidArgumentError('expected a whole number above 0');
  return n;
}

const RUN_HELP = `
The task is the issue: its first line is the title, the rest the description. The
work happens in a clone of the checkout's last commit on the base branch; the
checkout's files and checked-out branch are never touched. The change is pushed
into the checkout as a new branch agent/issue-<n>-<slug>, and a report (plan,
diff stat, validation results, spend) is written beside it.

Environment:
  ANTHROPIC_API_KEY    required: the model key (the Anthropic SDK's name)
  ANTHROPIC_BASE_URL   a gateway or proxy for the Messages API
  MODEL_FRONTIER, MODEL_MID, MODEL_FAST
                       model ids per tier, as for the app (${REPO_CONFIG_PATH}
                       may override them)
  LOG_LEVEL            level of the pino logs on stderr (default: warn)
  REGISTRY_AUTH_FILE, REGISTRY_INSECURE_HOSTS, ENVIRONMENTS_MAX_GB
                       for an image under environment: in ${REPO_CONFIG_PATH},
                       as for the app (README, Environments)

Exit codes:
  0    a branch and its report were left
  1    the job stopped without a branch (stuck, or it needs more information);
       the reason is printed and written to the report
  2    nothing ran: bad arguments, no model key, not a checkout, an invalid
       ${REPO_CONFIG_PATH}, or no sandbox
  130  stopped with Ctrl-C

Examples:
  issue-agent run --task "add() is wrong for negative numbers"
  issue-agent run --repo ../calc --issue-file task.md --sandbox none`;

const CONFIG_CHECK_HELP = `
Exit codes:
  0  valid: a summary of what the file sets is printed
  1  invalid: each problem is printed as
     "line N, field x: problem — expected: …"
  2  the file cannot be read`;

/** The `issue-agent` command line: `run`, `trace`, `inbox`, `config check`. */
export function buildProgram(): Command {
  const program = new Command()
    .name('issue-agent')
    .version(VERSION)
    .description(
      'Turns scoped GitHub issues into tested pull requests. `npm start` runs the GitHub App; these commands run a task on a local checkout and inspect jobs and config.',
    )
    .showHelpAfterError('(add --help for usage)')
    // Usage errors exit 2, like "nothing ran" of `run`; help and --version exit 0.
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : EXIT.cannotStart));

  addRunCommand(program);
  addTraceCommand(program);
  addInboxCommand(program);
  addConfigCommand(program);
  return program;
}

/** `run`: the pipeline on a local checkout, without GitHub or Redis. */
function addRunCommand(program: Command): void {
  program
    .command('run')
    .description(
      'run scope → plan → code → validate on a local checkout, without GitHub or Redis; leaves a branch and a report',
    )
    .option('--repo <path>', 'the git checkout to work on', '.')
    .addOption(
      new Option('--task <text>', 'the task: first line the title, the rest the description').conflicts('issueFile'),
    )
    .option('--issue-file <file>', 'read the task from a file ("-" reads standard input)')
    .option(
      '--base <branch>',
      'the branch to start from and read rules and config from (default: the checked-out branch)',
    )
    .option(
      '--number <n>',
      'the task number in the branch name agent/issue-<n>-<slug> (default: one more than the highest agent/issue-N branch)',
      positiveInt,
    )
    .option('--report <file>', 'where to write the report (default: <git dir>/issue-agent/report-<branch>.md)')
    .addOption(
      new Option(
        '--sandbox <backend>',
        'how repository commands run: bwrap (bubblewrap) or none (no isolation: trusted code only)',
      )
        .choices(['bwrap', 'none'])
        .default('bwrap'),
    )
    .option('--data-dir <dir>', 'mirrors, work trees and traces (default: $DATA_DIR or <git dir>/issue-agent)')
    .option('--verbose', "log the pipeline's details (pino JSON) to stderr")
    .addHelpText('after', RUN_HELP)
    .action(async (opts: RunOptions) => {
      // Loaded here: the pipeline's modules are not needed by help, trace or config check.
      const { runLocal } = await import('./run.js');
      const code = await runLocal(opts, {
        out: (t) => process.stdout.write(t),
        err: (t) => process.stderr.write(t),
        tty: Boolean(process.stdout.isTTY) && process.env.TERM !== 'dumb',
        env: process.env,
        stdin: () => readFileSync(0, 'utf8'),
        onInterrupt: (handler) => {
          process.on('SIGINT', handler);
          return () => process.off('SIGINT', handler);
        },
      });
      // Keep-alive sockets or a lingering child must not keep a finished run open.
      process.exit(code);
    });
}

/** `trace`: a job's trace as a timeline. */
function addTraceCommand(program: Command): void {
  program
    .command('trace')
    .description("print a job's trace as a timeline (stage, step, tool, outcome, tokens, cost)")
    .argument(
      '<job>',
      'a job id such as owner/repo/issues/12/attempt-1, or a trace file (`run` prints the path of its own)',
    )
    .option('--json', 'print the raw JSONL trace')
    .option('--data-dir <dir>', 'where traces are kept (default: $DATA_DIR or .data)')
    .action((job: string, opts: { json?: boolean; dataDir?: string }) => {
      try {
        process.stdout.write(
          `${printTrace(job, { json: opts.json, dataDir: path.resolve(opts.dataDir ?? process.env.DATA_DIR ?? '.data') })}\n`,
        );
      } catch (err) {
        process.stderr.write(`issue-agent trace: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exitCode = 1;
      }
    });
}

/** `inbox`: the webhook work in Redis, and putting dead work back. */
function addInboxCommand(program: Command): void {
  program
    .command('inbox')
    .description(
      'show the webhook work waiting in Redis, being handled and dead (failed every try), and put dead work back',
    )
    .option('--redis <url>', 'the Redis the app uses (default: $REDIS_URL or redis://127.0.0.1:6379)')
    .option('--requeue-dead', 'move every dead item back to the inbox, for a running web process to do again')
    .action(async (opts: { redis?: string; requeueDead?: boolean }) => {
      const { inboxCommand } = await import('./inbox.js');
      try {
        process.exitCode = await inboxCommand(
          { redis: opts.redis ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', requeueDead: opts.requeueDead },
          (t) => process.stdout.write(t),
        );
      } catch (err) {
        process.stderr.write(`issue-agent inbox: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exitCode = 1;
      }
    });
}

/** `config check`: a repository's config as the app reads it. */
function addConfigCommand(program: Command): void {
  const config = program.command('config').description(`work with a repository's ${REPO_CONFIG_PATH}`);
  config
    .command('check')
    .description(
      `validate a ${REPO_CONFIG_PATH} exactly as the app reads it, and explain each problem with its line and field`,
    )
    .argument('[path]', `the file, or a checkout to read ${REPO_CONFIG_PATH} from`, REPO_CONFIG_PATH)
    .addHelpText('after', CONFIG_CHECK_HELP)
    .action((target: string) => {
      const r = checkConfigFile(target);
      process.stdout.write(r.stdout);
      process.stderr.write(r.stderr);
      process.exitCode = r.code;
    });
}
