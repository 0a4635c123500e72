import { Queue, type ConnectionOptions } from 'bullmq';
import type { ChainableCommander, Redis } from 'ioredis';
import { StatusRefs } from './status-ref.js';
import { z } from 'zod';
import { JobDataSchema, QUEUE_NAME, issueKey, jobId, sealJob, type JobData } from './jobs.js';
import type { RecordSeal } from './record-seal.js';

export type EnqueueResult =
  | { kind: 'enqueued'; jobId: string; attempt: number }
  | { kind: 'duplicate-delivery'; deliveryId: string }
  | { kind: 'already-active'; jobId: string; attempt: number };

export type ReviseResult =
  | { kind: 'enqueued'; jobId: string; attempt: number }
  | { kind: 'duplicate-delivery'; deliveryId: string }
  /** A revise job is queued or running: the feedback joins it (queued) or the next one. */
  | { kind: 'batched'; jobId: string };

export type CiFixResult =
  | { kind: 'enqueued'; jobId: string; attempt: number }
  | { kind: 'duplicate-delivery'; deliveryId: string }
  /** This head commit has had its CI-fix job (and no re-run since asks for another). */
  | { kind: 'handled' }
  /** A CI-fix job of the pull request is queued or running. */
  | { kind: 'busy'; jobId: string }
  /** The app stopped watching this pull request's CI (an escalation, or `/agent stop`). */
  | { kind: 'stopped'; why: string };

export type StopResult =
  | { kind: 'removed'; jobId: string }
  | { kind: 'stopping'; jobId: string }
  | { kind: 'nothing-running' }
  | { kind: 'duplicate-delivery'; deliveryId: string };

/** Review feedback waiting for a revise job: one submitted review, or a writer's `/agent retry` text. */
export const FeedbackSchema = z.strictObject({
  reviewId: z.number().int().positive().optional(),
  text: z.string().max(4_000).optional(),
  sender: z.string().min(1).max(100),
});
export type Feedback = z.infer<typeof FeedbackSchema>;

/**
 * What the app knows of one pull request's CI, kept under the PR's lock: the head commit
 * last answered, whether that answer was a re-run (whose result may ask for one more job),
 * the fixes pushed (bounded by `ci.max_fix_attempts`), the failure fingerprints seen before
 * a fix, the checks re-run (once each per commit), and whether the watch stopped.
 */
export const CiStateSchema = z.strictObject({
  sha: z.string().max(40).optional(),
  rerunPending: z.boolean().default(false),
  fixes: z.number().int().min(0).default(0),
  /** CI-fix jobs since the PR was last green: the rounds to green. */
  jobs: z.number().int().min(0).default(0),
  reruns: z.array(z.string().max(300)).max(500).default([]),
  fingerprints: z
    .array(
      z.strictObject({
        fp: z.string().max(64),
        sha: z.string().max(40),
        check: z.string().max(300),
        /** The app pushed its fix of `sha`: only then is the same failure again a failed fix. */
        pushed: z.boolean().default(false),
      }),
    )
    .max(200)
    .default([]),
  green: z.string().max(40).optional(),
  stopped: z.string().max(500).optional(),
  /** A red head that came while a job ran on the PR: answered when that job ends. */
  queued: z.string().max(40).optional(),
  /** What the last CI-fix job did: a green after a fix counts as fixed, after re-runs only as re-run green. */
  last: z.enum(['fixed', 'rerun']).optional(),
});
export type CiState = z.infer<typeof CiStateSchema>;

/** What a CI-fix job did, for the record its next job and the web read. */
export type CiRecord =
  /** A fix of head `on` begins: it counts as an attempt from here, once per head (a resumed job counts once). */
  | { kind: 'fixing'; on: string; fingerprints: Array<{ fp: string; check: string }> }
  /** Jobs of head `on` are about to be re-run, each once. */
  | { kind: 'rerun'; on: string; checks: string[] }
  /** The job found nothing failed on head `on` (re-run by hand meanwhile): its next red result is answered again. */
  | { kind: 'rearm'; on: string }
  /** The fix of head `on` was pushed. */
  | { kind: 'pushed'; on: string }
  /** The fix of head `on` ended without a push (the head moved, a stop): the attempt is given back. */
  | { kind: 'abandoned'; on: string }
  | { kind: 'stopped'; why: string };

const ACTIVE_STATES = new Set(['active', 'waiting', 'delayed', 'prioritized', 'waiting-children']);
const QUEUED_STATES = new Set(['waiting', 'delayed', 'prioritized', 'waiting-children']);
const DELIVERY_TTL_S = 7 * 24 * 3600;
const MARKER_TTL_S = 24 * 3600;
// A pull request's CI record outlives any one job: as long as a PR is likely to stay open.
const CI_STATE_TTL_S = 90 * 24 * 3600;
const LOCK_MS = 30_000;
const LOCK_RETRY_MS = 100;
// Moves the waiting feedback to the job's own list the first time; later calls read that.
const TAKE = `if redis.call('exists', KEYS[2]) == 0 and redis.call('exists', KEYS[1]) == 1 then redis.call('rename', KEYS[1], KEYS[2]) redis.call('expire', KEYS[2], ARGV[1]) end return redis.call('lrange', KEYS[2], 0, -1)`;
// One round trip before a trigger's work: -1 when the delivery (KEYS[1], when ARGV[5] is '1')
// was seen, -2 when another process holds the lock (KEYS[2]); otherwise the lock is ours, the
// delivery is recorded, and the answer is the last attempt (KEYS[3]).
const BEGIN = `
local dedupe = ARGV[5] == '1'
if dedupe and redis.call('exists', KEYS[1]) == 1 then return -1 end
if not redis.call('set', KEYS[2], ARGV[1], 'PX', ARGV[2], 'NX') then return -2 end
if dedupe then redis.call('set', KEYS[1], ARGV[4], 'EX', ARGV[3]) end
return tonumber(redis.call('get', KEYS[3]) or '0')`;
// Releases the lock only if it is still ours.
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0`;

/** The Lua commands above, defined on the connection so they travel as EVALSHA (ioredis loads them again after a Redis restart). */
interface QueueCommands {
  agentBegin(
    delivery: string,
    lock: string,
    attempt: string,
    token: string,
    lockMs: number,
    deliveryTtl: number,
    what: string,
    dedupe: '0' | '1',
  ): Promise<number>;
  agentRelease(lock: string, token: string): Promise<number>;
  agentTakeFeedback(waiting: string, taken: string, ttlS: string): Promise<string[]>;
}

type IssueTrigger = Omit<JobData, 'attempt' | 'kind' | 'prNumber'> & { kind?: 'issue' };
type ReviseTrigger = Omit<JobData, 'attempt' | 'kind' | 'prNumber' | 'instructions' | 'snapshot'> & {
  feedback: Feedback;
};

/**
 * The agent-run queue with the rules that keep one result per trigger: a delivery id is
 * handled once, and an issue or pull request has at most one unfinished job. A trigger
 * after the last attempt finished starts the next attempt.
 */
export class AgentQueue {
  readonly queue: Queue<JobData>;
  readonly statusRefs: StatusRefs;

  constructor(
    connection: ConnectionOptions,
    private readonly redis: Redis,
    /** Seals each job's data, so workers run only jobs this app added. */
    private readonly seal: RecordSeal,
    private readonly prefix = 'issue-agent',
  ) {
    this.statusRefs = new StatusRefs(redis, prefix);
    redis.defineCommand('agentBegin', { numberOfKeys: 3, lua: BEGIN });
    redis.defineCommand('agentRelease', { numberOfKeys: 1, lua: RELEASE });
    redis.defineCommand('agentTakeFeedback', { numberOfKeys: 2, lua: TAKE });
    this.queue = new Queue<JobData>(QUEUE_NAME, {
      connection,
      prefix: prefix,
      defaultJobOptions: {
        // Infrastructure failures (a worker crash, a Redis blip) retry; the agent's own
        // failures end in an escalation inside the job, so they never reach this.
        attempts: 3,
        backoff: { type: 'exponential', delay: 5_000 },
        removeOnComplete: { age: 30 * 24 * 3600, count: 5_000 },
        removeOnFail: { age: 30 * 24 * 3600, count: 5_000 },
      },
    });
  }

  private keyOf(kind: JobData['kind'], d: Pick<JobData, 'owner' | 'repo' | 'issueNumber'>, what: string): string {
    return `${this.prefix}:${kind === 'issue' ? '' : `${kind}-`}${what}:${issueKey(d)}`;
  }

  private get commands(): QueueCommands {
    return this.redis as unknown as QueueCommands;
  }

  /**
   * Runs `fn` under the lock of one issue or pull request, which makes check → increment →
   * add atomic across web and worker processes. With a `deliveryId`, `fn` runs once per
   * delivery: a redelivered webhook answers `duplicate-delivery`; when `fn` throws nothing
   * was enqueued, so the delivery id is released for a retry. `fn` gets the last attempt
   * of `kind`, read in the same round trip that takes the lock.
   */
  private async locked<T>(
    kind: JobData['kind'],
    d: Pick<JobData, 'owner' | 'repo' | 'issueNumber'>,
    opts: { deliveryId?: string; what?: string },
    fn: (lastAttempt: number) => Promise<T>,
  ): Promise<T | { kind: 'duplicate-delivery'; deliveryId: string }> {
    const key = issueKey(d);
    const lockKey = `${this.prefix}:lock:${key}`;
    // Without a delivery id the script reads no delivery key; the lock's key stands in, so
    // every key it is given is one of the app's (for Redis ACLs that allow only those).
    const deliveryKey = opts.deliveryId ? `${this.prefix}:delivery:${opts.deliveryId}` : undefined;
    const token = `${process.pid}-${Date.now()}-${Math.random()}`;
    let last = -2;
    for (let waited = 0; last === -2; waited += LOCK_RETRY_MS) {
      if (waited >= LOCK_MS)
        throw new Error(`could not lock ${lockKey} within ${LOCK_MS / 1000}s; is another process stuck?`);
      if (waited > 0) await new Promise((r) => setTimeout(r, LOCK_RETRY_MS));
      last = await this.commands.agentBegin(
        deliveryKey ?? lockKey,
        lockKey,
        this.keyOf(kind, d, 'attempt'),
        token,
        LOCK_MS,
        DELIVERY_TTL_S,
        opts.what ?? key,
        deliveryKey ? '1' : '0',
      );
    }
    if (last === -1) return { kind: 'duplicate-delivery', deliveryId: opts.deliveryId! };
    try {
      return await fn(last);
    } catch (err) {
      if (deliveryKey) await this.redis.del(deliveryKey).catch(() => {});
      throw err;
    } finally {
      await this.commands.agentRelease(lockKey, token);
    }
  }

  /** `locked` without a delivery id: nothing to deduplicate, so no duplicate answer. */
  private async lockedOnly<T>(
    kind: JobData['kind'],
    d: Pick<JobData, 'owner' | 'repo' | 'issueNumber'>,
    fn: (lastAttempt: number) => Promise<T>,
  ): Promise<T> {
    return (await this.locked(kind, d, {}, fn)) as T;
  }

  /** `webComments`: the web writes the status comment once it has answered the webhook. */
  /**
   * Adds the job. Before it exists, in one round trip: its attempt is recorded (a failed add
   * only skips a number) and, when the web writes the status comment, that comment is marked
   * pending, so a worker that starts at once waits for it instead of adding one.
   */
  private async add(data: JobData, webComments = true, extra?: (m: ChainableCommander) => void): Promise<string> {
    const full = JobDataSchema.parse(data);
    const id = jobId(full);
    const before = this.redis.multi().set(this.keyOf(full.kind, full, 'attempt'), String(full.attempt));
    if (webComments) this.statusRefs.markPendingIn(before, id);
    extra?.(before);
    await before.exec();
    await this.queue.add(full.kind, sealJob(this.seal, id, full), { jobId: id });
    return id;
  }

  /**
   * Enqueues the next attempt for an issue unless this delivery was seen or the issue has
   * an unfinished job.
   */
  async enqueue(data: IssueTrigger): Promise<EnqueueResult> {
    return this.locked('issue', data, { deliveryId: data.deliveryId }, async (current): Promise<EnqueueResult> => {
      if (current > 0) {
        const id = jobId({ ...data, attempt: current });
        // A job that has posted its last word is over for people, though BullMQ may not
        // have recorded it as completed yet.
        const [state, ending] = await Promise.all([
          this.queue.getJobState(id),
          this.redis.exists(`${this.prefix}:ending:${id}`),
        ]);
        if (ACTIVE_STATES.has(state) && ending !== 1) return { kind: 'already-active', jobId: id, attempt: current };
      }
      const attempt = current + 1;
      const id = await this.add({ ...data, kind: 'issue', attempt });
      return { kind: 'enqueued', jobId: id, attempt };
    });
  }

  /**
   * Adds review feedback for a pull request of the app's. One revise job runs per PR at a
   * time; feedback that arrives while one is queued joins it, while one runs waits for the
   * next, which the running job enqueues when it ends (`finishRevise`).
   */
  async enqueueRevise(data: ReviseTrigger): Promise<ReviseResult> {
    const { feedback, ...trigger } = data;
    return this.locked(
      'revise',
      data,
      { deliveryId: data.deliveryId, what: `${issueKey(data)}:revise` },
      async (last): Promise<ReviseResult> => {
        const [, running] = (await this.redis
          .multi()
          .rpush(this.keyOf('revise', data, 'feedback'), JSON.stringify(FeedbackSchema.parse(feedback)))
          .get(this.keyOf('revise', data, 'active'))
          .exec())!.map(([err, value]) => {
          if (err) throw err;
          return value;
        }) as [number, string | null];
        if (running && ACTIVE_STATES.has(await this.queue.getJobState(running)))
          return { kind: 'batched', jobId: running };
        // A CI fix holds the PR's branch: the feedback waits for it (finishCiFix starts the revision).
        const fixing = await this.redis.get(this.keyOf('ci-fix', data, 'active'));
        if (fixing && ACTIVE_STATES.has(await this.queue.getJobState(fixing)))
          return { kind: 'batched', jobId: fixing };
        return this.startRevise(trigger, last);
      },
    );
  }

  private async startRevise(
    trigger: Omit<ReviseTrigger, 'feedback'>,
    last: number,
    webComments = true,
  ): Promise<{ kind: 'enqueued'; jobId: string; attempt: number }> {
    const attempt = last + 1;
    const data: JobData = { ...trigger, kind: 'revise', prNumber: trigger.issueNumber, attempt };
    // A writer's review or retry hands the PR back to the app: its CI watch starts afresh,
    // its bound and fingerprints too; what is waiting or re-run on a head stays.
    const ci = await this.ciState(trigger);
    await this.saveCiState(
      trigger,
      CiStateSchema.parse({
        sha: ci.sha,
        queued: ci.queued,
        rerunPending: ci.rerunPending,
        reruns: ci.reruns,
        green: ci.green,
      }),
    );
    const id = await this.add(data, webComments, (m) =>
      m.set(this.keyOf('revise', trigger, 'active'), jobId(data), 'EX', MARKER_TTL_S),
    );
    return { kind: 'enqueued', jobId: id, attempt };
  }

  /**
   * The feedback a revise job addresses: everything waiting for the PR, taken at once and
   * kept under the job's id, so a retry of the same job (after a crash) addresses the same.
   */
  async takeFeedback(d: Pick<JobData, 'owner' | 'repo' | 'issueNumber'>, forJob: string): Promise<Feedback[]> {
    const listKey = this.keyOf('revise', d, 'feedback');
    const takenKey = `${this.prefix}:revise-taken:${forJob}`;
    const items = await this.commands.agentTakeFeedback(listKey, takenKey, String(MARKER_TTL_S * 7));
    // A review redelivered by GitHub was pushed twice: it is addressed once.
    const seen = new Set<number>();
    return items.flatMap((raw) => {
      const parsed = FeedbackSchema.safeParse(JSON.parse(raw));
      if (!parsed.success) return [];
      const { reviewId } = parsed.data;
      if (reviewId !== undefined) {
        if (seen.has(reviewId)) return [];
        seen.add(reviewId);
      }
      return [parsed.data];
    });
  }

  /**
   * Called when a revise job ends, however it ends: feedback that arrived while it ran
   * starts the next job; otherwise the PR has no revise job any more.
   */
  async finishRevise(job: JobData): Promise<{ next?: string }> {
    return this.lockedOnly('revise', job, async (last) => {
      const activeKey = this.keyOf('revise', job, 'active');
      if ((await this.redis.get(activeKey)) !== jobId(job)) return {};
      if ((await this.redis.llen(this.keyOf('revise', job, 'feedback'))) > 0) {
        const next = await this.startRevise(triggerAfter(job), last, false);
        return { next: next.jobId };
      }
      await this.redis.del(activeKey);
      return {};
    });
  }

  /** The pull request's CI record; a record that does not parse (damaged or forged) stops the watch. */
  async ciState(d: Pick<JobData, 'owner' | 'repo' | 'issueNumber'>): Promise<CiState> {
    const raw = await this.redis.get(this.keyOf('ci-fix', d, 'state'));
    if (raw === null) return CiStateSchema.parse({});
    try {
      return CiStateSchema.parse(JSON.parse(raw));
    } catch {
      return CiStateSchema.parse({ stopped: 'its CI record in Redis could not be read' });
    }
  }

  private async saveCiState(d: Pick<JobData, 'owner' | 'repo' | 'issueNumber'>, state: CiState): Promise<void> {
    await this.redis.set(
      this.keyOf('ci-fix', d, 'state'),
      JSON.stringify(CiStateSchema.parse(state)),
      'EX',
      CI_STATE_TTL_S,
    );
  }

  /**
   * Failed checks on the head commit `sha` of one of the app's pull requests: a CI-fix job,
   * once per head commit (one more only after that commit's checks were re-run), one at a
   * time per PR, none once the watch stopped.
   */
  async enqueueCiFix(
    data: Omit<JobData, 'attempt' | 'kind' | 'prNumber' | 'headSha'>,
    sha: string,
  ): Promise<CiFixResult> {
    return this.locked('ci-fix', data, { deliveryId: data.deliveryId, what: `${issueKey(data)}:ci` }, async (last) => {
      const state = await this.ciState(data);
      if (state.stopped) return { kind: 'stopped', why: state.stopped };
      if (state.sha === sha && !state.rerunPending) return { kind: 'handled' };
      const activeKey = this.keyOf('ci-fix', data, 'active');
      // One job on the PR's branch at a time, a revision's or a CI fix's: both push to it.
      for (const key of [activeKey, this.keyOf('revise', data, 'active')]) {
        const running = await this.redis.get(key);
        if (running && ACTIVE_STATES.has(await this.queue.getJobState(running))) {
          // The commit is answered when that job ends, if it is still the head (finishCiFix).
          await this.saveCiState(data, { ...state, queued: sha });
          return { kind: 'busy', jobId: running };
        }
      }
      const job: JobData = { ...data, kind: 'ci-fix', prNumber: data.issueNumber, headSha: sha, attempt: last + 1 };
      // A failed add leaves the record as it was, so the next CI result tries again.
      const id = await this.add(job, false, (m) => m.set(activeKey, jobId(job), 'EX', MARKER_TTL_S));
      await this.saveCiState(data, { ...state, sha, rerunPending: false, jobs: state.jobs + 1, queued: undefined });
      return { kind: 'enqueued', jobId: id, attempt: job.attempt };
    });
  }

  /** Records what a CI-fix job did: a pushed fix, re-runs asked for, or the watch stopped. */
  async recordCi(d: Pick<JobData, 'owner' | 'repo' | 'issueNumber'>, record: CiRecord): Promise<CiState> {
    return this.lockedOnly('ci-fix', d, async () => {
      const state = await this.ciState(d);
      if (record.kind === 'stopped') state.stopped = record.why;
      else if (record.kind === 'rearm') state.rerunPending ||= state.sha === record.on;
      else if (record.kind === 'pushed') {
        state.fingerprints = state.fingerprints.map((f) => (f.sha === record.on ? { ...f, pushed: true } : f));
        // The push starts CI on a new head: a red head that waited is no longer the one to answer.
        state.queued = undefined;
      } else if (record.kind === 'abandoned') {
        if (state.fingerprints.some((f) => f.sha === record.on && !f.pushed)) {
          state.fixes = Math.max(0, state.fixes - 1);
          state.fingerprints = state.fingerprints.filter((f) => f.sha !== record.on);
        }
      } else if (record.kind === 'rerun') {
        state.rerunPending = state.sha === record.on;
        state.last = 'rerun';
        const entries = record.checks.map((c) => `${record.on}:${c}`.slice(0, 300));
        state.reruns = [...new Set([...state.reruns, ...entries])].slice(-500);
      } else if (!state.fingerprints.some((f) => f.sha === record.on)) {
        state.fixes += 1;
        state.last = 'fixed';
        state.fingerprints = [
          ...state.fingerprints,
          ...record.fingerprints.map((f) => ({
            fp: f.fp,
            check: f.check.slice(0, 300),
            sha: record.on,
            pushed: false,
          })),
        ].slice(-200);
      }
      await this.saveCiState(d, state);
      return state;
    });
  }

  /**
   * Every check on `sha` passed: answers the record as it stood the first time this is said
   * of `sha` (the rounds it took), and undefined after, so green is announced once per commit.
   */
  async ciGreen(d: Pick<JobData, 'owner' | 'repo' | 'issueNumber'>, sha: string): Promise<CiState | undefined> {
    return this.lockedOnly('ci-fix', d, async () => {
      const state = await this.ciState(d);
      if (state.green === sha) return undefined;
      // The fixes held: a failure seen before is new again if it comes back later.
      await this.saveCiState(d, {
        ...state,
        green: sha,
        jobs: 0,
        rerunPending: false,
        last: undefined,
        fingerprints: [],
      });
      return state;
    });
  }

  /**
   * Called when a CI-fix or revise job ends, however it ends: the PR has no CI-fix job
   * running any more, and a red head that came meanwhile is answered now (the job checks it
   * is still the head). Answers the next job's id, if one was added.
   */
  async finishCiFix(job: JobData): Promise<{ next?: string }> {
    const after = triggerAfter(job);
    if (job.kind === 'ci-fix') {
      const revision = await this.lockedOnly('revise', job, async (last) => {
        const activeKey = this.keyOf('ci-fix', job, 'active');
        if ((await this.redis.get(activeKey)) === jobId(job)) await this.redis.del(activeKey);
        // Review feedback that waited for this fix starts its revision now.
        const reviseActive = await this.redis.get(this.keyOf('revise', job, 'active'));
        if (reviseActive && ACTIVE_STATES.has(await this.queue.getJobState(reviseActive))) return undefined;
        if ((await this.redis.llen(this.keyOf('revise', job, 'feedback'))) === 0) return undefined;
        return (await this.startRevise(after, last, false)).jobId;
      });
      if (revision) return { next: revision };
    }
    const { queued } = await this.ciState(job);
    if (!queued) return {};
    const next = await this.enqueueCiFix(after, queued);
    return next.kind === 'enqueued' ? { next: next.jobId } : {};
  }

  /**
   * `/agent stop`: a queued job is removed; a running one is asked to stop at its next step.
   * `kind` says whether the thread is an issue or one of the app's pull requests. With a
   * `deliveryId`, a second request from the same delivery answers `duplicate-delivery`
   * (a stop done again must not then say that nothing was running).
   */
  async requestStop(
    kind: JobData['kind'],
    d: Pick<JobData, 'owner' | 'repo' | 'issueNumber'>,
    by: string,
    deliveryId?: string,
  ): Promise<StopResult> {
    return this.locked(kind, d, { deliveryId }, async (attempt): Promise<StopResult> => {
      const id =
        kind !== 'issue'
          ? await this.redis.get(this.keyOf(kind, d, 'active'))
          : attempt > 0
            ? jobId({ ...d, attempt })
            : null;
      if (!id) return { kind: 'nothing-running' };
      const state = await this.queue.getJobState(id);
      // A job that a worker took between the two reads is locked: remove() answers 0, and
      // the job is asked to stop instead.
      if (QUEUED_STATES.has(state) && (await this.queue.remove(id).catch(() => 0)) === 1) {
        if (kind !== 'issue') await this.redis.del(this.keyOf(kind, d, 'active'), this.keyOf(kind, d, 'feedback'));
        return { kind: 'removed', jobId: id };
      }
      if (!QUEUED_STATES.has(state) && state !== 'active') {
        return { kind: 'nothing-running' };
      }
      await this.redis.set(`${this.prefix}:stop:${id}`, by, 'EX', MARKER_TTL_S);
      return { kind: 'stopping', jobId: id };
    });
  }

  /** The job has nothing left but its final status: a new trigger may start the next attempt. */
  async markEnding(id: string): Promise<void> {
    await this.redis.set(`${this.prefix}:ending:${id}`, '1', 'EX', MARKER_TTL_S);
  }

  /** True for the one process that reports a job's end when no worker code ran it (a stall). */
  async claimFinalisation(id: string): Promise<boolean> {
    return (await this.redis.set(`${this.prefix}:finalised:${id}`, '1', 'EX', MARKER_TTL_S, 'NX')) === 'OK';
  }

  /**
   * True once per delivery: for answers that are not queue work (help, an invalid config),
   * so an event carried out twice (its drainer died after answering) answers once.
   */
  async claimAnswer(deliveryId: string): Promise<boolean> {
    return (await this.redis.set(`${this.prefix}:answered:${deliveryId}`, '1', 'EX', DELIVERY_TTL_S, 'NX')) === 'OK';
  }

  /** Who asked the job to stop, if anyone. */
  async stopRequestedBy(id: string): Promise<string | undefined> {
    return (await this.redis.get(`${this.prefix}:stop:${id}`)) ?? undefined;
  }

  async clearStop(id: string): Promise<void> {
    await this.redis.del(`${this.prefix}:stop:${id}`);
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}

/** The trigger of a job a finished job starts: the same pull request and sender, its own delivery. */
function triggerAfter(job: JobData) {
  return {
    installationId: job.installationId,
    owner: job.owner,
    repo: job.repo,
    issueNumber: job.issueNumber,
    deliveryId: `after-${jobId(job)}`,
    sender: job.sender,
  };
}
