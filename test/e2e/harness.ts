import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type Anthropic from '@anthropic-ai/sdk';
import { startAnthropicStandIn, type AnthropicStandIn, type ScriptedBlock, type ScriptedModel } from '../stand-ins/anthropic/server.js';
import { startGitHubStandIn, type GitHubStandIn } from '../stand-ins/github/server.js';
import { issueLabeledPayload, sendWebhook } from '../stand-ins/github/webhooks.js';
import { freePort, startTestRedis } from '../helpers/redis.js';
import type { RedisHandle } from '../../src/queue/redis.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const WEBHOOK_SECRET = 'e2e-webhook-secret';
export const OWNER = 'octo-org';

/** The small Node repository of the scenario: add() is wrong for negative numbers. */
export const CALC_REPO: Record<string, string> = {
  'package.json': JSON.stringify({ name: 'calc', version: '1.0.0', private: true, scripts: { test: 'node --test' } }, null, 2) + '\n',
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
  redis: RedisHandle;
  app: ChildProcess;
  appUrl: string;
  dataDir: string;
  logs: () => string;
  label(p: { repo: string; issueNumber: number; title: string; body: string; sender?: { login: string; type: 'User' | 'Bot' }; deliveryId?: string; label?: string }): Promise<{ status: number; deliveryId: string }>;
  waitFor<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs?: number): Promise<T>;
  stop(): Promise<void>;
}

/** Starts the stand-ins, a redis-server of the test's own and the real app process. */
export async function startScenario(): Promise<Scenario> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'ia-e2e-'));
  const [github, anthropic, redis] = await Promise.all([startGitHubStandIn(), startAnthropicStandIn(), startTestRedis()]);
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
  };
  // cwd is a temp dir so a developer's .env never leaks into the test.
  const app = spawn(process.execPath, [path.join(ROOT, 'node_modules/tsx/dist/cli.mjs'), path.join(ROOT, 'src/main.ts')], { cwd: dataDir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  app.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  app.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const appUrl = `http://127.0.0.1:${port}`;

  const waitFor = async <T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 150_000): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
      if (app.exitCode !== null) throw new Error(`the app exited (${app.exitCode}) while waiting for ${what}:\n${output.slice(-4000)}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; app output:\n${output.slice(-4000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const scenario: Scenario = {
    github,
    anthropic,
    redis,
    app,
    appUrl,
    dataDir,
    logs: () => output,
    waitFor,
    label: async (p) => {
      const payload = issueLabeledPayload({
        owner: OWNER,
        repo: p.repo,
        issueNumber: p.issueNumber,
        title: p.title,
        body: p.body,
        label: p.label ?? 'agent',
        sender: p.sender ?? { login: 'maintainer', type: 'User' },
        installationId: github.installationId,
        url: github.url,
      });
      const r = await sendWebhook({ url: `${appUrl}/api/github/webhooks`, secret: WEBHOOK_SECRET, event: 'issues', payload, deliveryId: p.deliveryId });
      return { status: r.status, deliveryId: r.deliveryId };
    },
    stop: async () => {
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
  await waitFor('the app to answer /healthz', async () => {
    try {
      return (await fetch(`${appUrl}/healthz`)).status === 200 || undefined;
    } catch {
      return undefined;
    }
  }, 60_000);
  return scenario;
}

function systemText(req: Anthropic.MessageCreateParams): string {
  return typeof req.system === 'string' ? req.system : (req.system ?? []).map((b) => b.text).join('\n');
}

/** Which stage a request belongs to, and how many assistant turns it already holds. */
export function stageOf(req: Anthropic.MessageCreateParams): { stage: 'scope' | 'plan' | 'code' | 'summary' | 'other'; turn: number; repair: boolean } {
  const system = systemText(req);
  const tools = (req.tools ?? []).map((t) => ('name' in t ? t.name : ''));
  const stage = tools.includes('accept_task') ? 'scope' : tools.includes('report_failure') ? 'summary' : system.includes('Stage: PLAN') ? 'plan' : system.includes('Stage: CODE') ? 'code' : 'other';
  const first = req.messages[0];
  const task = first && typeof first.content !== 'string' ? first.content.map((b) => (b.type === 'text' ? b.text : '')).join('') : String(first?.content ?? '');
  return { stage, turn: req.messages.filter((m) => m.role === 'assistant').length, repair: task.includes('<validation-failure>') };
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
  [use('edit_file', { path: 'add.js', old_text: '  if (b < 0) return a - b;\n  return a + b;\n}', new_text: '  return a + b;\n' })],
  [use('edit_file', { path: 'test/add.test.js', old_text: 'add(2, -3), -1', new_text: 'add(2, -3), -1' })],
  [use('edit_file', { path: 'add.js', old_text: '  if (b < 0) return a - b;\n', new_text: '' })],
  [use('finish_change', { summary: 'add() now adds for every sign of b.' })],
];

export function calcModel(opts: { wrongFix?: boolean; mistakes?: boolean; toolErrors: string[]; toolOutputs?: string[]; probePort?: number }): ScriptedModel {
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
        [{ type: 'text', text: 'Let me look at add.js.' } as ScriptedBlock, use('read_file', { path: 'add.js', start_line: 1, end_line: 50 })],
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
        ? [[use('run_command', { command: 'node --test 2>&1 | tail -5', timeout_seconds: 60 })], [use('finish_change', { summary: 'Tried again.' })]]
        : [
            [use('read_file', { path: 'add.js', start_line: 1, end_line: 50 })],
            // What a curious (or injected) model would try: the environment, the host's
            // secrets, the network.
            [use('run_command', { command: `env; id -u; ls /root ~/.ssh 2>&1; node -e "require('net').connect(${opts.probePort ?? 1}, '127.0.0.1').on('connect', () => console.log('net: open')).on('error', (e) => console.log('net:', e.code))"`, timeout_seconds: 30 })],
            [use('edit_file', fix)],
            [use('finish_change', { summary: 'add() now adds for every sign of b.' })],
          ];
      return { content: steps[Math.min(turn, steps.length - 1)]! };
    }
    return { content: [{ type: 'text', text: 'unexpected stage' }] };
  };
}
