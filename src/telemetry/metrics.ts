import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { TraceEvent } from '../agent/trace.js';
import type { JobData } from '../queue/jobs.js';
import type { Outcome } from '../queue/outcome.js';

/** How a job ended, as the `outcome` label names it: a closed set, so series stay few. */
export const JOB_OUTCOMES = [
  'pr',
  'revised',
  'stuck',
  'needs_info',
  'checkpoint',
  'stopped',
  'invalid_config',
  'ci_rerun',
  'superseded',
  'failed',
] as const;

/** How a pull request's failing CI was answered: fixed (green after a fix), re-run green, or escalated. */
export const CI_FIX_OUTCOMES = ['fixed', 'rerun_green', 'escalated'] as const;
export type CiFixOutcome = (typeof CI_FIX_OUTCOMES)[number];
export type JobOutcome = (typeof JOB_OUTCOMES)[number];

/** Every pipeline outcome has its label; `failed` is BullMQ's: an infrastructure failure after the last try. */
const OUTCOME_LABEL: Record<Outcome['kind'] | 'failed', JobOutcome> = {
  pr: 'pr',
  revised: 'revised',
  stuck: 'stuck',
  'needs-info': 'needs_info',
  checkpoint: 'checkpoint',
  stopped: 'stopped',
  'invalid-config': 'invalid_config',
  'ci-rerun': 'ci_rerun',
  superseded: 'superseded',
  failed: 'failed',
};

const JOB_KINDS: ReadonlyArray<JobData['kind']> = ['issue', 'revise', 'ci-fix'];

/** The queue states the `state` label takes; finished jobs are counted by `issue_agent_jobs_total`. */
export const QUEUE_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'waiting-children', 'paused'] as const;
export type QueueState = (typeof QUEUE_STATES)[number];

/**
 * Events the app handles keep their name; any other (the header is read before the
 * signature is checked, so anyone can send one) is `other`.
 */
const WEBHOOK_EVENTS = new Set([
  'issues',
  'issue_comment',
  'pull_request_review',
  'check_suite',
  'check_run',
  'workflow_run',
  'status',
  'ping',
  'installation',
  'installation_repositories',
]);

/** Usage fields of a model call, as the `type` label of the token counter names them. */
const TOKEN_TYPES: Record<string, string> = {
  input_tokens: 'input',
  output_tokens: 'output',
  cache_read_input_tokens: 'cache_read',
  cache_creation_input_tokens: 'cache_write',
};

/** What the queue gauges read at scrape time: a BullMQ Queue has both. */
export interface QueueSource {
  getJobCounts(...types: QueueState[]): Promise<Record<string, number>>;
  getWorkers(): Promise<Array<Record<string, string>>>;
}

/** A scrape never waits on a Redis that does not answer longer than this. */
const QUEUE_READ_TIMEOUT_MS = 2_000;

/** Resolves to undefined when `p` fails or takes longer than `ms`. */
export async function within<T>(ms: number, p: Promise<T>): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
    timer.unref();
  });
  try {
    return await Promise.race([p.catch(() => undefined), late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Worker processes (any host) connected to the queue, from Redis's client list; undefined
 * where Redis does not list clients (some managed services) or does not answer.
 */
export async function connectedWorkers(
  queue: Pick<QueueSource, 'getWorkers'>,
  timeoutMs = QUEUE_READ_TIMEOUT_MS,
): Promise<number | undefined> {
  const clients = await within(timeoutMs, queue.getWorkers());
  // Where CLIENT LIST is refused BullMQ answers one placeholder without a client id.
  if (!clients || clients.some((c) => c.id === undefined)) return undefined;
  return clients.length;
}

/**
 * The app's Prometheus metrics, one registry per process. The pipeline is measured from
 * its trace events (see `observeTrace`), the worker reports how jobs end, the web how long
 * webhooks take, and the queue gauges ask Redis at scrape time.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly jobs: Counter<'kind' | 'outcome'>;
  private readonly jobSeconds: Histogram<'kind' | 'outcome'>;
  private readonly stageSeconds: Histogram<'stage' | 'result'>;
  private readonly modelTokens: Counter<'tier' | 'model' | 'type'>;
  private readonly modelCost: Counter<'tier' | 'model'>;
  private readonly modelSeconds: Histogram<'tier' | 'model'>;
  private readonly toolCalls: Counter<'tool' | 'outcome'>;
  private readonly rounds: Counter<'result'>;
  private readonly roundsToPass: Histogram;
  private readonly ciFixes: Counter<'outcome'>;
  private readonly ciRoundsToGreen: Histogram;
  private readonly webhookSeconds: Histogram<'event' | 'status'>;
  private readonly inboxSeconds: Histogram<'outcome'>;
  /** Validation rounds so far per job (per trace), to observe how many a job needed. */
  private readonly roundsOf = new WeakMap<object, number>();
  private queueWatched = false;

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    this.jobs = new Counter({
      name: 'issue_agent_jobs_total',
      help: 'Jobs finished, by kind (issue, revise) and outcome (failed: an infrastructure failure after the last try).',
      labelNames: ['kind', 'outcome'],
      registers,
    });
    this.jobSeconds = new Histogram({
      name: 'issue_agent_job_duration_seconds',
      help: 'Wall-clock time of a job attempt that ended, by kind and outcome.',
      labelNames: ['kind', 'outcome'],
      buckets: [10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200],
      registers,
    });
    this.stageSeconds = new Histogram({
      name: 'issue_agent_stage_duration_seconds',
      help: 'Time per pipeline stage run (scope, install, baseline, plan, code, validate, summary), by its result.',
      labelNames: ['stage', 'result'],
      buckets: [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200],
      registers,
    });
    this.modelTokens = new Counter({
      name: 'issue_agent_model_tokens_total',
      help: 'Model tokens by tier, model and type (input, output, cache_read, cache_write).',
      labelNames: ['tier', 'model', 'type'],
      registers,
    });
    this.modelCost = new Counter({
      name: 'issue_agent_model_cost_usd_total',
      help: 'Model cost in US dollars by tier and model (0 for a model without a known price).',
      labelNames: ['tier', 'model'],
      registers,
    });
    this.modelSeconds = new Histogram({
      name: 'issue_agent_model_call_duration_seconds',
      help: 'Time per model call (retries included) by tier and model; its _count is the number of calls.',
      labelNames: ['tier', 'model'],
      buckets: [0.5, 1, 2.5, 5, 10, 20, 40, 60, 120, 300],
      registers,
    });
    this.toolCalls = new Counter({
      name: 'issue_agent_tool_calls_total',
      help: 'Tool calls by tool and outcome (ok, or the error code the model was answered with).',
      labelNames: ['tool', 'outcome'],
      registers,
    });
    this.rounds = new Counter({
      name: 'issue_agent_validation_rounds_total',
      help: 'Code-then-validate rounds run, by whether the checks passed.',
      labelNames: ['result'],
      registers,
    });
    this.roundsToPass = new Histogram({
      name: 'issue_agent_validation_rounds_to_pass',
      help: 'Validation rounds a job needed until its checks passed.',
      buckets: [1, 2, 3, 4, 5, 7, 10],
      registers,
    });
    this.ciFixes = new Counter({
      name: 'issue_agent_ci_fix_total',
      help: "Failing CI on the app's own pull requests, by how it ended: fixed (green after the app's fix), rerun_green (green after re-running jobs that failed on a runner error), escalated.",
      labelNames: ['outcome'],
      registers: [this.registry],
    });
    this.ciRoundsToGreen = new Histogram({
      name: 'issue_agent_ci_rounds_to_green',
      help: "CI-fix jobs a pull request of the app's took from failing checks to all checks passed.",
      buckets: [1, 2, 3, 4, 5, 6, 8, 10],
      registers: [this.registry],
    });
    this.webhookSeconds = new Histogram({
      name: 'issue_agent_webhook_duration_seconds',
      help: 'Time from a webhook request to its answer (signature check and handler included), by event and HTTP status.',
      labelNames: ['event', 'status'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.inboxSeconds = new Histogram({
      name: 'issue_agent_inbox_wait_seconds',
      help: "Time from a webhook's answer to its queue work done (enqueue, stop), by outcome (done, or dead after every try failed).",
      labelNames: ['outcome'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 120],
      registers,
    });
    // Known series start at 0, so a rate of a job outcome or a round result exists before the first one.
    for (const kind of JOB_KINDS) for (const outcome of JOB_OUTCOMES) this.jobs.inc({ kind, outcome }, 0);
    for (const result of ['passed', 'failed']) this.rounds.inc({ result }, 0);
    for (const outcome of CI_FIX_OUTCOMES) this.ciFixes.inc({ outcome }, 0);
  }

  /** Counts what a trace records: stage ends, model calls, tool calls. `job` is the trace it came from. */
  observeTrace(event: TraceEvent, job: object): void {
    switch (event.type) {
      case 'stage': {
        if (event.phase !== 'end') return;
        const result = event.result ?? 'done';
        if (event.durationMs !== undefined)
          this.stageSeconds.observe({ stage: event.stage, result }, event.durationMs / 1000);
        if (event.stage === 'validate' && (result === 'passed' || result === 'failed')) {
          this.rounds.inc({ result });
          const n = (this.roundsOf.get(job) ?? 0) + 1;
          this.roundsOf.set(job, n);
          if (result === 'passed') this.roundsToPass.observe(n);
        }
        return;
      }
      case 'model': {
        const labels = { tier: event.tier, model: event.model };
        for (const [field, type] of Object.entries(TOKEN_TYPES)) {
          const n = event.usage[field];
          if (n !== undefined && n >= 0) this.modelTokens.inc({ ...labels, type }, n);
        }
        this.modelCost.inc(labels, Math.max(0, event.costUsd));
        this.modelSeconds.observe(labels, event.durationMs / 1000);
        return;
      }
      case 'tool': {
        // A tool name the model made up is not ours to turn into a series.
        const tool = event.errorCode === 'unknown_tool' ? 'unknown' : event.tool;
        this.toolCalls.inc({ tool, outcome: event.ok ? 'ok' : (event.errorCode ?? 'error') });
        return;
      }
      default:
        return;
    }
  }

  /** A job ended: with the pipeline's outcome, or `failed` when its last try threw. */
  jobFinished(kind: JobData['kind'], outcome: Outcome['kind'] | 'failed', seconds?: number): void {
    const labels = { kind, outcome: OUTCOME_LABEL[outcome] };
    this.jobs.inc(labels);
    if (seconds !== undefined) this.jobSeconds.observe(labels, seconds);
  }

  /** A CI-fix job escalated (the worker), or a PR with CI-fix rounds went green (the web). */
  ciFixEnded(outcome: CiFixOutcome, rounds?: number): void {
    this.ciFixes.inc({ outcome });
    if (rounds !== undefined) this.ciRoundsToGreen.observe(rounds);
  }

  /** A webhook request was answered. */
  webhookHandled(event: string | undefined, status: number, seconds: number): void {
    this.webhookSeconds.observe(
      { event: event && WEBHOOK_EVENTS.has(event) ? event : 'other', status: String(status) },
      seconds,
    );
  }

  /** An inbox item's queue work was done (or given up). */
  inboxHandled(outcome: 'done' | 'dead', seconds: number): void {
    this.inboxSeconds.observe({ outcome }, Math.max(0, seconds));
  }

  /** The inbox's items by state (waiting, handling, dead), read from Redis at each scrape; absent when Redis does not answer. */
  watchInbox(
    inbox: { depth(): Promise<Record<'waiting' | 'handling' | 'dead', number>> },
    timeoutMs = QUEUE_READ_TIMEOUT_MS,
  ): void {
    new Gauge({
      name: 'issue_agent_inbox_items',
      help: 'Webhook work recorded in the inbox and not yet done, by state: waiting, handling (taken by a web process), dead (failed every try; see the log).',
      labelNames: ['state'],
      registers: [this.registry],
      async collect() {
        this.reset();
        const depth = await within(timeoutMs, inbox.depth());
        if (!depth) return;
        for (const [state, n] of Object.entries(depth)) this.set({ state }, n);
      },
    });
  }

  /**
   * Queue depth by state and the workers connected to the queue, read from Redis at each
   * scrape. One process per deployment should watch (the web): the values are the queue's,
   * not the process's.
   */
  watchQueue(queue: QueueSource, timeoutMs = QUEUE_READ_TIMEOUT_MS): void {
    if (this.queueWatched) return;
    this.queueWatched = true;
    new Gauge({
      name: 'issue_agent_queue_jobs',
      help: 'Jobs in the agent-run queue by state (waiting, active, delayed, …), read at scrape time; absent when Redis does not answer.',
      labelNames: ['state'],
      registers: [this.registry],
      async collect() {
        this.reset();
        const counts = await within(timeoutMs, queue.getJobCounts(...QUEUE_STATES));
        if (!counts) return;
        for (const state of QUEUE_STATES) this.set({ state }, counts[state] ?? 0);
      },
    });
    new Gauge({
      name: 'issue_agent_queue_workers',
      help: 'Worker processes connected to the agent-run queue (all hosts), read at scrape time; absent where Redis does not list clients.',
      registers: [this.registry],
      async collect() {
        const n = await connectedWorkers(queue, timeoutMs);
        // Unknown is no sample, not a 0 that reads as "no workers".
        if (n === undefined) this.remove();
        else this.set(n);
      },
    });
  }

  /** The environment caches' entries and disk use (images, set-up environments, kept installs), read at each scrape. */
  watchEnvironments(source: { usage(): Promise<Record<string, { entries: number; bytes: number }>> }): void {
    const usage = () => within(QUEUE_READ_TIMEOUT_MS, source.usage());
    new Gauge({
      name: 'issue_agent_environment_cache_bytes',
      help: 'Disk used under DATA_DIR/environments by kind: images (unpacked), setups (set-up environments), deps (kept installs).',
      labelNames: ['kind'],
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const [kind, u] of Object.entries((await usage()) ?? {})) this.set({ kind }, u.bytes);
      },
    });
    new Gauge({
      name: 'issue_agent_environment_cache_entries',
      help: 'Entries under DATA_DIR/environments by kind: images, setups, deps.',
      labelNames: ['kind'],
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const [kind, u] of Object.entries((await usage()) ?? {})) this.set({ kind }, u.entries);
      },
    });
  }

  /** The Prometheus text exposition of everything above, and the default process metrics. */
  async text(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
