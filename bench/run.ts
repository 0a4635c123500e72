/**
 * Benchmarks, printed as figures and as ratios against baselines measured in the same run,
 * then as one summary table. Never asserted: the machines are noisy.
 *
 *   npm run bench                       (BENCH_RUNS=5 for more samples of the scenario)
 *   BENCH_ONLY=webhooks,git npm run bench   (parts: webhooks, git, install, environments, logs, compaction, scenario)
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Queue, Worker } from 'bullmq';
import { calcModel, CALC_REPO, OWNER, startScenario } from '../test/e2e/harness.js';
import { jobId } from '../src/queue/jobs.js';
import { tallyToolCalls, type ToolTally } from '../src/agent/tools/stats.js';
import { formatFailureReport, parseFailureOutput } from '../src/stages/failure-report.js';
import { runLongStage } from '../test/helpers/long-stage.js';
import { gitFigures } from './git-checkout.js';
import { environmentFigures } from './environments.js';
import { installFigures } from './install-egress.js';
import { formatTable, median, type Figure } from './table.js';
import { webhookFigures } from './webhook-load.js';

// Async on purpose: the stand-ins serve git from this very process.
const run = promisify(execFile);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const ONLY = process.env.BENCH_ONLY?.split(',').map((p) => p.trim());
const part = (name: string) => !ONLY || ONLY.includes(name);
const summary: Figure[] = [];

/** Input tokens per step of a 61-step coding stage, with compaction and without (the baseline). */
async function compactionFigures(): Promise<void> {
  const withIt = await runLongStage({ compaction: true });
  const without = await runLongStage({ compaction: false });
  const at = (r: { inputPerStep: number[] }, n: number) => r.inputPerStep[n - 1] ?? NaN;
  console.log('long coding stage (61 steps: reads, noisy commands, edits), input tokens per step');
  console.log('  step        10       30       60   cache reads');
  for (const [name, r] of [
    ['compaction', withIt],
    ['none', without],
  ] as const) {
    console.log(
      `  ${name.padEnd(10)} ${String(at(r, 10)).padStart(6)}  ${String(at(r, 30)).padStart(7)}  ${String(at(r, 60)).padStart(7)}   ${(100 * r.cacheReadShare) | 0}%`,
    );
  }
  console.log(
    `  step 60 with compaction is ${(at(withIt, 60) / at(without, 60)).toFixed(2)}× the input without it; ${(at(withIt, 60) / at(withIt, 10)).toFixed(2)}× its own step 10`,
  );
  summary.push({
    figure: 'long stage, input tokens at step 60',
    ours: at(withIt, 60),
    baseline: at(without, 60),
    baselineName: 'no compaction',
    unit: 'tokens',
  });
}

/** Raw bytes of a 10,000-line failing log against the report the coder receives. */
async function logReportFigures(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'ia-bench-log-'));
  try {
    const lines = ["const test = require('node:test');", "const assert = require('node:assert');"];
    for (let i = 0; i < 2500; i++)
      lines.push(
        i === 1250
          ? "test('the one that fails', () => { assert.strictEqual(1 + 1, 3); });"
          : `test('passes number ${i}', () => { assert.ok(true); });`,
      );
    writeFileSync(path.join(dir, 'big.test.js'), `${lines.join('\n')}\n`);
    const out = await run(process.execPath, ['--test', '--test-reporter=tap'], {
      cwd: dir,
      maxBuffer: 64 * 1024 * 1024,
    }).catch((e: { stdout: string }) => e);
    const log = out.stdout;
    const report = formatFailureReport(parseFailureOutput(log, 'npm test'));
    summary.push({
      figure: "failing test log → coder's report",
      ours: Buffer.byteLength(report),
      baseline: Buffer.byteLength(log),
      baselineName: 'raw log',
      unit: 'bytes',
    });
    console.log(
      `failing test log: ${log.split('\n').length} lines, ${Buffer.byteLength(log)} bytes raw → ${Buffer.byteLength(report)} bytes of report (${((100 * Buffer.byteLength(report)) / Buffer.byteLength(log)).toFixed(2)}%), naming "${report.includes('the one that fails') ? 'the one that fails' : 'NOT FOUND'}"`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The end-to-end scenario: figures of real jobs, and the tool, token and cache figures of their traces. */
async function scenarioFigures(): Promise<void> {
  const s = await startScenario();
  const webhookToStart: number[] = [];
  const labelToPr: number[] = [];
  const answered: number[] = [];
  const healthz: number[] = [];
  try {
    s.anthropic.setModel(calcModel({ toolErrors: [] }));
    for (let i = 0; i < RUNS; i++) {
      const repo = `calc-${i}`;
      await s.github.addRepo({ owner: OWNER, repo, files: CALC_REPO });
      s.github.setPermission(OWNER, repo, 'maintainer', 'write');
      s.github.addIssue(OWNER, repo, {
        number: 1,
        title: 'add() is wrong for negative numbers',
        body: 'x',
        user: 'maintainer',
      });
      const sent = Date.now();
      await s.label({ repo, issueNumber: 1, title: 'add() is wrong for negative numbers', body: 'x' });
      answered.push(Date.now() - sent);
      const h = Date.now();
      await fetch(`${s.appUrl}/healthz`);
      healthz.push(Date.now() - h);
      await s.waitFor('the PR', () => s.github.pulls(OWNER, repo)[0]);
      labelToPr.push(Date.now() - sent);
      // The job ends after the PR (labels, the final status): wait so runs do not overlap.
      await s.waitFor(
        'the final status',
        () => s.github.comments(OWNER, repo, 1)[0]?.body.includes('✅ done') || undefined,
      );
      console.error(`run ${i + 1}/${RUNS}: label → PR ${labelToPr.at(-1)} ms`);
      const q = new Queue('agent-run', { connection: { url: s.redis.url }, prefix: 'issue-agent' });
      const job = await q.getJob(jobId({ owner: OWNER, repo, issueNumber: 1, attempt: 1 }));
      await q.close();
      webhookToStart.push((job?.processedOn ?? NaN) - sent);
    }

    console.error('baselines…');
    // Tool calls over the scenarios: the clean runs above plus one with the usual mistakes.
    s.anthropic.setModel(calcModel({ mistakes: true, toolErrors: [] }));
    await s.github.addRepo({ owner: OWNER, repo: 'calc-mistakes', files: CALC_REPO });
    s.github.setPermission(OWNER, 'calc-mistakes', 'maintainer', 'write');
    s.github.addIssue(OWNER, 'calc-mistakes', {
      number: 1,
      title: 'add() is wrong for negative numbers',
      body: 'x',
      user: 'maintainer',
    });
    await s.label({ repo: 'calc-mistakes', issueNumber: 1, title: 'add() is wrong for negative numbers', body: 'x' });
    await s.waitFor(
      'the final status',
      () => s.github.comments(OWNER, 'calc-mistakes', 1)[0]?.body.includes('✅ done') || undefined,
    );
    // One pass over the jobs' traces: tool calls per job (a recovery never spans two jobs,
    // so tallies are made per job, then summed) and the prompt-cache share of input tokens.
    const traceDir = path.join(s.dataDir, 'data', 'traces');
    const calls: Array<{ tool: string; ok: boolean }> = [];
    const tallies: Record<string, ToolTally> = {};
    let cacheRead = 0;
    let cacheWrite = 0;
    let allInput = 0;
    let output = 0;
    let modelCalls = 0;
    for (const f of readdirSync(traceDir)) {
      const events = readFileSync(path.join(traceDir, f), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { type: string; tool?: string; ok?: boolean; usage?: Record<string, number> });
      const jobCalls = events.filter((e) => e.type === 'tool').map((e) => ({ tool: e.tool!, ok: e.ok! }));
      calls.push(...jobCalls);
      for (const [tool, t] of Object.entries(tallyToolCalls(jobCalls))) {
        tallies[tool] ??= { calls: 0, firstTry: 0, recovered: 0, failed: 0, errors: 0 };
        const sum = tallies[tool];
        for (const k of Object.keys(t) as Array<keyof ToolTally>) sum[k] += t[k];
      }
      for (const e of events) {
        if (e.type !== 'model' || !e.usage) continue;
        cacheRead += e.usage.cache_read_input_tokens ?? 0;
        cacheWrite += e.usage.cache_creation_input_tokens ?? 0;
        allInput +=
          (e.usage.input_tokens ?? 0) +
          (e.usage.cache_read_input_tokens ?? 0) +
          (e.usage.cache_creation_input_tokens ?? 0);
        output += e.usage.output_tokens ?? 0;
        modelCalls++;
      }
    }

    // Baseline 1: the bare queue hop, enqueue → a worker starts it, on the same Redis.
    const hops: number[] = [];
    const q = new Queue('bench-hop', { connection: { url: s.redis.url } });
    const w = new Worker('bench-hop', async (job) => hops.push(Date.now() - job.data.sent), {
      connection: { url: s.redis.url, maxRetriesPerRequest: null },
    });
    for (let i = 0; i < RUNS * 3; i++) {
      await q.add('hop', { sent: Date.now() });
      while (hops.length <= i) await new Promise((r) => setTimeout(r, 5));
    }
    await w.close();
    await q.close();

    console.error(`queue hop: ${hops.length} samples`);
    // Baseline 2: the irreducible work by hand: clone the repository and run its tests twice
    // (before and after the change), with no sandbox, no queue and no model.
    const byHand: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const dir = mkdtempSync(path.join(tmpdir(), 'ia-bench-'));
      const started = Date.now();
      const token = s.github.issuedTokens.at(-1)!;
      await run(
        'git',
        [
          '-c',
          `http.extraHeader=Authorization: Basic ${Buffer.from(`x-access-token:${token}`).toString('base64')}`,
          'clone',
          '-q',
          `${s.github.url}/${OWNER}/calc-0.git`,
          dir,
        ],
        { env: { ...process.env, GIT_TERMINAL_PROMPT: '0' } },
      );
      for (let k = 0; k < 2; k++) {
        try {
          await run('npm', ['test'], { cwd: dir });
        } catch {
          // Red before the fix, as in the scenario.
        }
      }
      byHand.push(Date.now() - started);
      rmSync(dir, { recursive: true, force: true });
    }

    const fmt = (ms: number) => `${ms.toFixed(0)} ms`;
    console.log(`end-to-end scenario, ${RUNS} runs (medians)`);
    console.log(
      `  webhook answered      ${fmt(median(answered))}   GET /healthz ${fmt(median(healthz))}   ratio ${(median(answered) / Math.max(1, median(healthz))).toFixed(1)}×`,
    );
    console.log(
      `  webhook → job start   ${fmt(median(webhookToStart))}   bare BullMQ hop ${fmt(median(hops))}   ratio ${(median(webhookToStart) / median(hops)).toFixed(1)}×`,
    );
    console.log(
      `  label → PR            ${fmt(median(labelToPr))}   clone + 2× npm test by hand ${fmt(median(byHand))}   ratio ${(median(labelToPr) / median(byHand)).toFixed(1)}×`,
    );
    const pct = (n: number, d: number) => `${((100 * n) / Math.max(1, d)).toFixed(0)}%`;
    console.log(
      `tool calls over ${RUNS + 1} jobs (${RUNS} clean, 1 with eight scripted mistakes): ${calls.length} calls, ${pct(calls.filter((c) => c.ok).length, calls.length)} ok`,
    );
    console.log('  tool             calls  right first try  recovered  failed');
    for (const [tool, t] of Object.entries(tallies).sort(([a], [b]) => a.localeCompare(b))) {
      console.log(
        `  ${tool.padEnd(16)} ${String(t.calls).padStart(5)}  ${pct(t.firstTry, t.calls).padStart(15)}  ${String(t.recovered).padStart(9)}  ${String(t.failed).padStart(6)}`,
      );
    }
    console.log(
      `prompt cache over those jobs: ${pct(cacheRead + cacheWrite, allInput)} of ${allInput} input tokens cache-eligible (${pct(cacheRead, allInput)} read, ${pct(cacheWrite, allInput)} written)`,
    );
    console.log(
      `tokens per step (model call) over those jobs: ${(allInput / Math.max(1, modelCalls)).toFixed(0)} input (cache included), ${(output / Math.max(1, modelCalls)).toFixed(0)} output, ${modelCalls} calls`,
    );
    console.log(
      `  samples: webhook→start [${webhookToStart.map(fmt).join(', ')}], label→PR [${labelToPr.map(fmt).join(', ')}]`,
    );
    const okCalls = calls.filter((c) => c.ok).length;
    const firstTry = Object.values(tallies).reduce((n, t) => n + t.firstTry, 0);
    summary.push(
      {
        figure: 'webhook answered, one trigger, idle app',
        ours: median(answered),
        baseline: median(healthz),
        baselineName: 'GET /healthz',
        unit: 'ms',
      },
      {
        figure: 'webhook → job start',
        ours: median(webhookToStart),
        baseline: median(hops),
        baselineName: 'bare BullMQ hop',
        unit: 'ms',
      },
      {
        figure: 'label → PR',
        ours: median(labelToPr),
        baseline: median(byHand),
        baselineName: 'clone + 2× npm test',
        unit: 'ms',
      },
      {
        figure: `tool calls ok (${calls.length} calls, ${RUNS + 1} jobs)`,
        ours: (100 * okCalls) / Math.max(1, calls.length),
        baseline: NaN,
        unit: '%',
      },
      {
        figure: 'tool calls right first try',
        ours:
          (100 * firstTry) /
          Math.max(
            1,
            Object.values(tallies).reduce((n, t) => n + t.calls, 0),
          ),
        baseline: NaN,
        unit: '%',
      },
      {
        figure: 'input tokens per step (model call)',
        ours: allInput / Math.max(1, modelCalls),
        baseline: NaN,
        unit: 'tokens',
      },
      {
        figure: 'output tokens per step (model call)',
        ours: output / Math.max(1, modelCalls),
        baseline: NaN,
        unit: 'tokens',
      },
      {
        figure: 'prompt cache reads, share of input',
        ours: (100 * cacheRead) / Math.max(1, allInput),
        baseline: NaN,
        unit: '%',
      },
    );
  } finally {
    await s.stop();
  }
}

async function main(): Promise<void> {
  const started = Date.now();
  const progress = (line: string) => console.error(line);
  if (part('webhooks')) summary.push(...(await webhookFigures({ log: (l) => console.log(l) })));
  if (part('git')) summary.push(...(await gitFigures({ log: (l) => console.log(l) })));
  if (part('install')) summary.push(...(await installFigures({ log: (l) => console.log(l) })));
  if (part('environments')) summary.push(...(await environmentFigures({ log: (l) => console.log(l) })));
  if (part('logs')) await logReportFigures();
  if (part('compaction')) await compactionFigures();
  if (part('scenario')) await scenarioFigures();
  progress(`bench took ${((Date.now() - started) / 1000).toFixed(0)} s`);
  console.log('');
  console.log('summary (ratio = ours / baseline; the baselines are measured in this run, on this machine)');
  console.log(formatTable(summary));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
