import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type Anthropic from '@anthropic-ai/sdk';
import {
  startAnthropicStandIn,
  type AnthropicStandIn,
  type ScriptedBlock,
  type ScriptedModel,
} from '../stand-ins/anthropic/server.js';
import { startGitHubStandIn, type GitHubStandIn, type ReviewState } from '../stand-ins/github/server.js';
import {
  issueCommentPayload,
  issueLabeledPayload,
  pullRequestReviewPayload,
  sendWebhook,
} from '../stand-ins/github/webhooks.js';
import { freePort, startTestRedis, type TestRedis } from '../helpers/redis.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const WEBHOOK_SECRET = 'e2e-webhook-secret';
export const OWNER = 'octo-org';

/** The small Node repository of the scenario: add() is wrong for negative numbers. */
export const CALC_REPO: Record<string, string> = {
  'package.json': `${JSON.stringify({ name: 'calc', version: '1.0.0', private: true, scripts: { test: 'node --test' } }, null, 2)}\n`,
  'add.js': 'function add(a, b) {\n  if (b < 0) return a - b;\n  return a + b;\n}\n\nmodule.exports = { add };\n',
  'test/add.test.js':
    "const test = require('node:test');\nconst assert = require('node:assert');\nconst { add } = require('../add.js');\n\n" +
    "test('adds two positive numbers', () => assert.strictEqual(add(2, 3), 5));\n" +
    "test('adds a negative number', () => assert.strictEqual(add(2, -3), -1));\n",
  'AGENTS.md': '# Rules\nKeep changes minimal. Run `npm test`.\n',
};

export interface Scenario {
  github: GitHubStandIn;
  anthropic: AnthropicStandIn;
  redis: TestRedis;
  app: ChildProcess;
  appUrl: string;
  dataDir: string;
  logs: () => string;
  label(p: {
    repo: string;
    issueNumber: number;
    title: string;
    body: string;
    sender?: { login: string; type: 'User' | 'Bot' };
    deliveryId?: string;
    label?: string;
  }): Promise<{ status: number; deliveryId: string }>;
  /** A person's comment: written on the stand-in, then delivered as `issue_comment.created`. */
  comment(p: {
    repo: string;
    issueNumber: number;
    title: string;
    body: string;
    isPullRequest?: boolean;
    author?: Actor;
    sender?: Actor;
  }): Promise<{ status: number; commentId: number }>;
  /** A review on a pull request: recorded with real diff hunks, then delivered as `pull_request_review.submitted`. */
  review(p: {
    repo: string;
    pullNumber: number;
    user?: Actor;
    state: ReviewState;
    body: string;
    comments?: Array<{ path: string; line: number; body: string }>;
  }): Promise<{ status: number; reviewId: number; commentIds: number[] }>;
  waitFor<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs?: number): Promise<T>;
  /**
   * Scans every request the app sent to the model stand-in, every write it sent to the
   * GitHub stand-in (comments, PR bodies, replies), every log line and every trace for the
   * secrets the scenario planted; answers what was scanned and what was found.
   */
  leaks(): { scanned: Record<string, number>; found: string[] };
  /** Kills the app process with SIGKILL (a crash) and starts a new one on the same Redis and DATA_DIR. */
  crashAndRestart(): Promise<void>;
  /** Starts another process of the app (e.g. `worker`), sharing Redis and DATA_DIR; stopped with the scenario. */
  spawnExtra(role: 'web' | 'worker', extraEnv?: Record<string, string>): ChildProcess;
  stop(): Promise<void>;
}

export interface ScenarioOptions {
  /** Extra environment for the app (e.g. short BullMQ lock times for crash tests). */
  env?: Record<string, string>;
  /** The main process's role argument; default both. */
  role?: 'web' | 'worker';
  /** The test's redis-server runs without a password (the app refuses it unless REDIS_ALLOW_NO_AUTH=1). */
  redisNoPassword?: boolean;
}

type Actor = { login: string; type: 'User' | 'Bot' };

/** Starts the stand-ins, a redis-server of the test's own and the real app process. */
export async function startScenario(opts: ScenarioOptions = {}): Promise<Scenario> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'ia-e2e-'));
  const [github, anthropic, redis] = await Promise.all([
    startGitHubStandIn(),
    startAnthropicStandIn(),
    startTestRedis({ noPassword: opts.redisNoPassword }),
  ]);
  const port = await freePort();
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    APP_ID: String(github.appId),
    PRIVATE_KEY: github.privateKey,
    WEBHOOK_SECRET,
    GHE_HOST: github.host,
    GHE_PROTOCOL: 'http',
    REDIS_URL: redis.url,
    ANTHROPIC_API_KEY: 'sk-ant-e2e-key-0123456789',
    ANTHROPIC_BASE_URL: anthropic.url,
    DATA_DIR: path.join(dataDir, 'data'),
    PORT: String(port),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
    NODE_ENV: 'test',
    // A credential in the app's own environment must never reach the sandbox.
    GITHUB_TOKEN: 'ghp_parentsecret000000000000000000000000',
    ...opts.env,
  };
  // cwd is a temp dir so a developer's .env never leaks into the test.
  let output = '';
  const extras: ChildProcess[] = [];
  const spawnApp = (role: 'web' | 'worker' | undefined, extraEnv: Record<string, string> = {}) => {
    // One process (tsx as a loader, not its CLI's wrapper), so a signal reaches the app itself.
    const child = spawn(
      process.execPath,
      [
        '--import',
        pathToFileURL(path.join(ROOT, 'node_modules/tsx/dist/loader.mjs')).href,
        path.join(ROOT, 'src/main.ts'),
        ...(role ? [role] : []),
      ],
      {
        cwd: dataDir,
        env: { ...env, ...extraEnv },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    return child;
  };
  let app = spawnApp(opts.role);
  const appUrl = `http://127.0.0.1:${port}`;
  const healthy = () =>
    waitFor(
      'the app to answer /healthz',
      async () => {
        try {
          return (await fetch(`${appUrl}/healthz`)).status === 200 || undefined;
        } catch {
          return undefined;
        }
      },
      60_000,
    );
  const exitOf = (child: ChildProcess, signal: NodeJS.Signals) =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill(signal);
    });

  const waitFor = async <T>(
    what: string,
    probe: () => T | undefined | Promise<T | undefined>,
    timeoutMs = 150_000,
  ): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
      if (app.exitCode !== null)
        throw new Error(`the app exited (${app.exitCode}) while waiting for ${what}:\n${output.slice(-4000)}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; app output:\n${output.slice(-4000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const scenario: Scenario = {
    github,
    anthropic,
    redis,
    get app() {
      return app;
    },
    appUrl,
    dataDir,
    logs: () => output,
    waitFor,
    label: async (p) => {
      // The payload shows the issue as GitHub holds it, whatever text the test passed.
      const now = github.markLabeled(OWNER, p.repo, p.issueNumber);
      const payload = issueLabeledPayload({
        owner: OWNER,
        repo: p.repo,
        issueNumber: p.issueNumber,
        title: now?.title ?? p.title,
        body: now?.body ?? p.body,
        ...(now ? { updatedAt: now.updatedAt } : {}),
        label: p.label ?? 'agent',
        sender: p.sender ?? { login: 'maintainer', type: 'User' },
        installationId: github.installationId,
        url: github.url,
      });
      const r = await sendWebhook({
        url: `${appUrl}/api/github/webhooks`,
        secret: WEBHOOK_SECRET,
        event: 'issues',
        payload,
        deliveryId: p.deliveryId,
      });
      return { status: r.status, deliveryId: r.deliveryId };
    },
    comment: async (p) => {
      const sender = p.sender ?? { login: 'maintainer', type: 'User' };
      const commentId = github.addComment(OWNER, p.repo, p.issueNumber, { user: sender.login, body: p.body });
      const now = github.issueText(OWNER, p.repo, p.issueNumber);
      const payload = issueCommentPayload({
        owner: OWNER,
        repo: p.repo,
        issueNumber: p.issueNumber,
        title: now?.title ?? p.title,
        body: now?.body ?? '',
        ...(now ? { updatedAt: now.updatedAt } : {}),
        isPullRequest: p.isPullRequest,
        commentId,
        commentBody: p.body,
        sender,
        author: p.author,
        installationId: github.installationId,
        url: github.url,
      });
      const r = await sendWebhook({
        url: `${appUrl}/api/github/webhooks`,
        secret: WEBHOOK_SECRET,
        event: 'issue_comment',
        payload,
      });
      return { status: r.status, commentId };
    },
    review: async (p) => {
      const user = p.user ?? { login: 'maintainer', type: 'User' };
      const added = await github.addReview(OWNER, p.repo, p.pullNumber, {
        user: user.login,
        state: p.state,
        body: p.body,
        comments: p.comments ?? [],
      });
      const payload = pullRequestReviewPayload({
        owner: OWNER,
        repo: p.repo,
        installationId: github.installationId,
        url: github.url,
        sender: user,
        review: added.review,
        pullRequest: added.pullRequest,
      });
      const r = await sendWebhook({
        url: `${appUrl}/api/github/webhooks`,
        secret: WEBHOOK_SECRET,
        event: 'pull_request_review',
        payload,
      });
      return { status: r.status, reviewId: added.reviewId, commentIds: added.commentIds };
    },
    leaks: () => {
      const pem = github.privateKey.split('\n').filter((l) => l && !l.startsWith('-----'));
      const secrets: Record<string, string> = {
        'webhook secret': WEBHOOK_SECRET,
        'model key': env.ANTHROPIC_API_KEY!,
        'parent GITHUB_TOKEN': env.GITHUB_TOKEN!,
        'private key (first line)': pem[0]!,
        'private key (a middle line)': pem[Math.floor(pem.length / 2)]!,
        ...Object.fromEntries(github.issuedTokens.map((t, i) => [`installation token ${i + 1}`, t])),
      };
      const traceDir = path.join(dataDir, 'data', 'traces');
      const traces = existsSync(traceDir)
        ? readdirSync(traceDir).map((f) => readFileSync(path.join(traceDir, f), 'utf8'))
        : [];
      // What the app wrote (comments, PR bodies, replies, labels), as GitHub echoes it back;
      // minting an installation token is GitHub's own answer, not the app's writing.
      const writes = github.requests
        .filter(
          (r) =>
            ['POST', 'PATCH', 'PUT'].includes(r.method) && r.body !== undefined && !r.path.endsWith('/access_tokens'),
        )
        .map((r) => `${r.method} ${r.path} ${JSON.stringify(r.body)}`);
      const haystacks: Record<string, string[]> = {
        'model requests': anthropic.requests.map((r) => JSON.stringify(r)),
        'GitHub writes': writes,
        'log lines': output.split('\n'),
        traces,
      };
      const found: string[] = [];
      for (const [where, texts] of Object.entries(haystacks)) {
        for (const [name, secret] of Object.entries(secrets)) {
          const hit = texts.find((t) => t.includes(secret));
          if (hit) found.push(`${name} in ${where} (${hit.slice(0, 80)}…)`);
        }
      }
      return { scanned: Object.fromEntries(Object.entries(haystacks).map(([k, v]) => [k, v.length])), found };
    },
    crashAndRestart: async () => {
      await exitOf(app, 'SIGKILL');
      app = spawnApp(opts.role);
      await healthy();
    },
    spawnExtra: (role, extraEnv) => {
      const child = spawnApp(role, extraEnv);
      extras.push(child);
      return child;
    },
    stop: async () => {
      await Promise.all(extras.map((c) => exitOf(c, 'SIGKILL')));
      if (app.exitCode === null) {
        const exited = new Promise((r) => app.once('exit', r));
        app.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
        if (app.exitCode === null) app.kill('SIGKILL');
      }
      await Promise.all([github.close(), anthropic.close(), redis.stop()]);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  // An app that never answers leaves nothing running behind it: its redis-server and stand-ins stop too.
  await healthy().catch(async (err: unknown) => {
    await scenario.stop();
    throw err;
  });
  return scenario;
}

function systemText(req: Anthropic.MessageCreateParams): string {
  return typeof req.system === 'string' ? req.system : (req.system ?? []).map((b) => b.text).join('\n');
}

/** Which stage a request belongs to, and how many assistant turns it already holds. */
export function stageOf(req: Anthropic.MessageCreateParams): {
  stage: 'scope' | 'plan' | 'code' | 'revise' | 'summary' | 'other';
  turn: number;
  repair: boolean;
  task: string;
} {
  const system = systemText(req);
  const tools = (req.tools ?? []).map((t) => ('name' in t ? t.name : ''));
  const stage = tools.includes('accept_task')
    ? 'scope'
    : tools.includes('report_failure')
      ? 'summary'
      : system.includes('Stage: PLAN')
        ? 'plan'
        : system.includes('Stage: CODE')
          ? 'code'
          : system.includes('Stage: REVISE')
            ? 'revise'
            : 'other';
  const first = req.messages[0];
  const task =
    first && typeof first.content !== 'string'
      ? first.content.map((b) => (b.type === 'text' ? b.text : '')).join('')
      : String(first?.content ?? '');
  return {
    stage,
    turn: req.messages.filter((m) => m.role === 'assistant').length,
    repair: task.includes('<validation-failure>'),
    task,
  };
}

export const use = (name: string, input: unknown): ScriptedBlock => ({ type: 'tool_use', name, input });

export const CALC_SCOPE = {
  summary: 'add() must add negative numbers instead of subtracting them.',
  acceptance_criteria: ['npm test passes, including "adds a negative number"', 'add(2, -3) returns -1'],
};

export const CALC_FAILURE_SUMMARY = {
  likely_cause: 'add() does not return a + b for a negative b (SUMMARY-MARKER).',
  locations: [{ path: 'add.js', line: 2 }],
  excerpt: 'not ok 2 - adds a negative number',
};

export const CALC_PLAN = {
  summary: 'add() subtracts when b is negative; it should always add.',
  files_to_change: ['add.js'],
  files_to_read: ['test/add.test.js'],
  steps: ['Remove the negative-number branch in add()', 'Run npm test'],
  verification: 'npm test: "adds a negative number" passes',
  estimated_changed_lines: 1,
  confidence: 0.9,
};

/**
 * A scripted model that fixes add(): plan reads and submits; code reads, edits and
 * finishes. `wrongFix` makes an edit that never passes the tests. Tool errors are
 * collected so the test can assert there were none.
 */
/**
 * The calls of a model that makes the usual mistakes before getting each right: a guessed
 * path, a misremembered argument name, an extra field, an edit with the wrong indentation,
 * an edit that breaks the syntax, a file outside the plan. Each is followed by the fix the
 * error message points to.
 */
const MISTAKEN_PLAN: ScriptedBlock[][] = [
  [use('read_file', { path: 'src/add.js', start_line: 1, end_line: 50 })],
  [use('read_file', { path: 'add.js', start: 1, end: 50 })],
  [use('read_file', { path: 'add.js', start_line: 1, end_line: 50 })],
  [use('search', { pattern: 'add(', path: 'test' })],
  [use('search', { pattern: 'add\\(', path: 'test' })],
  [use('submit_plan', { ...CALC_PLAN, files_to_change: 'add.js' })],
  [use('submit_plan', CALC_PLAN)],
];
const MISTAKEN_CODE: ScriptedBlock[][] = [
  [use('edit_file', { path: 'add.js', old_text: '    if (b < 0) return a - b;', new_text: '' })],
  [use('read_file', { path: 'add.js', start_line: 1, end_line: 50, encoding: 'utf8' })],
  [use('read_file', { path: 'add.js', start_line: 1, end_line: 50 })],
  [
    use('edit_file', {
      path: 'add.js',
      old_text: '  if (b < 0) return a - b;\n  return a + b;\n}',
      new_text: '  return a + b;\n',
    }),
  ],
  [use('edit_file', { path: 'test/add.test.js', old_text: 'add(2, -3), -1', new_text: 'add(2, -3), -1' })],
  [use('edit_file', { path: 'add.js', old_text: '  if (b < 0) return a - b;\n', new_text: '' })],
  [use('finish_change', { summary: 'add() now adds for every sign of b.' })],
];

export function calcModel(opts: {
  wrongFix?: boolean;
  mistakes?: boolean;
  toolErrors: string[];
  toolOutputs?: string[];
  probePort?: number;
}): ScriptedModel {
  return (req) => {
    const { stage, turn, repair } = stageOf(req);
    const last = req.messages.at(-1);
    if (last && typeof last.content !== 'string') {
      for (const b of last.content) {
        if (b.type !== 'tool_result') continue;
        if (b.is_error) opts.toolErrors.push(typeof b.content === 'string' ? b.content : JSON.stringify(b.content));
        opts.toolOutputs?.push(typeof b.content === 'string' ? b.content : JSON.stringify(b.content));
      }
    }
    if (stage === 'scope') return { content: [use('accept_task', CALC_SCOPE)] };
    if (stage === 'summary') return { content: [use('report_failure', CALC_FAILURE_SUMMARY)] };
    if (opts.mistakes && (stage === 'plan' || (stage === 'code' && !repair))) {
      const steps = stage === 'plan' ? MISTAKEN_PLAN : MISTAKEN_CODE;
      return { content: steps[Math.min(turn, steps.length - 1)]! };
    }
    if (stage === 'plan') {
      const steps = [
        [
          { type: 'text', text: 'Let me look at add.js.' } as ScriptedBlock,
          use('read_file', { path: 'add.js', start_line: 1, end_line: 50 }),
        ],
        [use('search', { pattern: 'add\\(', path: 'test' })],
        [use('submit_plan', CALC_PLAN)],
      ];
      return { content: steps[Math.min(turn, steps.length - 1)]! };
    }
    if (stage === 'code') {
      const fix = opts.wrongFix
        ? { path: 'add.js', old_text: '  return a + b;', new_text: '  return a + b + 1;' }
        : { path: 'add.js', old_text: '  if (b < 0) return a - b;\n', new_text: '' };
      const steps = repair
        ? [
            [use('run_command', { command: 'node --test 2>&1 | tail -5', timeout_seconds: 60 })],
            [use('finish_change', { summary: 'Tried again.' })],
          ]
        : [
            [use('read_file', { path: 'add.js', start_line: 1, end_line: 50 })],
            // What a curious (or injected) model would try: the environment, the host's
            // secrets, the network.
            [
              use('run_command', {
                command: `env; id -u; ls /root ~/.ssh 2>&1; node -e "require('net').connect(${opts.probePort ?? 1}, '127.0.0.1').on('connect', () => console.log('net: open')).on('error', (e) => console.log('net:', e.code))"`,
                timeout_seconds: 30,
              }),
            ],
            [use('edit_file', fix)],
            [use('finish_change', { summary: 'add() now adds for every sign of b.' })],
          ];
      return { content: steps[Math.min(turn, steps.length - 1)]! };
    }
    return { content: [{ type: 'text', text: 'unexpected stage' }] };
  };
}

/** The leak check as a test: prints what was scanned, and fails on any planted secret found. */
export function leakCheck(s: Scenario, suite: string): string[] {
  const { scanned, found } = s.leaks();
  console.log(
    `leak check (${suite}): scanned ${Object.entries(scanned)
      .map(([k, n]) => `${n} ${k}`)
      .join(', ')}; found ${found.length}${found.length ? `: ${found.join('; ')}` : ''}`,
  );
  return found;
}
