import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { RecordSeal } from './record-seal.js';

export const QUEUE_NAME = 'agent-run';

const login = z.string().min(1).max(100);
const repoPart = z.string().regex(/^[A-Za-z0-9_.-]{1,100}$/, 'a GitHub owner or repository name');

/**
 * The issue's text as the writer who triggered saw it: a digest of its title and body, and
 * GitHub's `updated_at` of the trigger. At job start an issue whose text differs was edited
 * since; who edited it decides whether the job may run (`job/task-approval.ts`).
 */
export const IssueSnapshotSchema = z.strictObject({
  digest: z.string().regex(/^[0-9a-f]{64}$/, 'a SHA-256 in hex'),
  updatedAt: z.iso.datetime({ offset: true }),
});
export type IssueSnapshot = z.infer<typeof IssueSnapshotSchema>;

/** The digest of an issue's text: its title and body (null and empty are one). */
export function issueDigest(issue: { title: string; body?: string | null }): string {
  return createHash('sha256')
    .update(JSON.stringify([issue.title, issue.body ?? '']))
    .digest('hex');
}

/**
 * Job data: small, validated, and free of secrets (tokens are minted by the worker).
 * `issue` turns an issue into a PR; `revise` addresses review feedback on the app's PR
 * (`prNumber`), whose feedback waits in Redis so reviews sent meanwhile join the next job;
 * `ci-fix` answers failed checks on the app's PR at its head commit `headSha`.
 */
export const JobFields = z.object({
  kind: z.enum(['issue', 'revise', 'ci-fix']),
  installationId: z.number().int().positive(),
  owner: repoPart,
  repo: repoPart,
  /** For `issue`, the issue; for `revise`, the pull request (they share one numbering). */
  issueNumber: z.number().int().positive(),
  prNumber: z.number().int().positive().optional(),
  deliveryId: z.string().min(1).max(200),
  sender: login,
  attempt: z.number().int().positive(),
  /** Extra text from a writer's `/agent retry …`: part of the task. */
  instructions: z.string().max(4_000).optional(),
  /** For `issue`: the issue's text when the trigger was recorded (absent in jobs of older versions). */
  snapshot: IssueSnapshotSchema.optional(),
  /** For `ci-fix`: the pull request's head commit whose checks failed. */
  headSha: z
    .string()
    .regex(/^[0-9a-f]{40}$/, 'a commit SHA')
    .optional(),
});
export const JobDataSchema = JobFields.refine((d) => d.kind === 'issue' || d.prNumber === d.issueNumber, {
  message: 'a job on a pull request names it in both issueNumber and prNumber',
  path: ['prNumber'],
}).refine((d) => (d.kind === 'ci-fix') === (d.headSha !== undefined), {
  message: 'a ci-fix job, and only one, names the head commit it answers',
  path: ['headSha'],
});

/** Whether a kind of job works on one of the app's pull requests (its thread is the PR). */
export function onPullRequest(kind: JobData['kind']): boolean {
  return kind !== 'issue';
}
export type JobData = z.infer<typeof JobDataSchema>;

/** Job data as stored: the fields and their seal, bound to the job's id. */
export function sealJob(seal: RecordSeal, id: string, data: JobData): JobData & { seal: string } {
  return { ...data, seal: seal.mac('job', id, JSON.stringify(data)) };
}

/**
 * The job's data when it is well formed and its seal holds for this job id; else why not.
 * A job someone else wrote into Redis (or copied from another job) is never run.
 */
export function openJob(
  seal: RecordSeal,
  id: string,
  stored: unknown,
): { ok: true; data: JobData } | { ok: false; why: string } {
  const parsed = JobDataSchema.safeParse(stored);
  if (!parsed.success)
    return { ok: false, why: `its data does not fit the schema (${parsed.error.issues[0]?.message ?? 'invalid'})` };
  // The fields in the schema's order, as they were sealed when the job was added.
  const mac = (stored as { seal?: unknown }).seal;
  if (!seal.verify('job', id, JSON.stringify(parsed.data), mac))
    return { ok: false, why: mac === undefined ? 'its data carries no seal' : 'its seal does not match its data' };
  return { ok: true, data: parsed.data };
}

/** Identifies one issue across attempts. */
export function issueKey(d: Pick<JobData, 'owner' | 'repo' | 'issueNumber'>): string {
  return `${d.owner}/${d.repo}#${d.issueNumber}`.toLowerCase();
}

/**
 * The BullMQ job id: one per (repo, issue, attempt), so a redelivered webhook or a second
 * label for the same attempt finds the existing job instead of adding one. BullMQ refuses
 * ':' in custom ids, hence the slashes.
 */
export function jobId(
  d: Pick<JobData, 'owner' | 'repo' | 'issueNumber' | 'attempt'> & { kind?: JobData['kind'] },
): string {
  return d.kind === 'revise' || d.kind === 'ci-fix'
    ? `${d.owner}/${d.repo}/pulls/${d.issueNumber}/${d.kind}-${d.attempt}`.toLowerCase()
    : `${d.owner}/${d.repo}/issues/${d.issueNumber}/attempt-${d.attempt}`.toLowerCase();
}

/** The branches the app opens pull requests from: `agent/issue-<n>` and a slug of the title. */
export const APP_BRANCH = /^agent\/issue-\d+(-[a-z0-9-]+)?$/;

/**
 * Where a job's status comment is kept: its own, or for a CI fix the pull request's one CI
 * comment, which every CI-fix job of the PR and the web's "all checks passed" edit in turn.
 */
export function statusKeyOf(d: Pick<JobData, 'owner' | 'repo' | 'issueNumber' | 'attempt' | 'kind'>): string {
  return d.kind === 'ci-fix' ? ciStatusKey(d) : jobId(d);
}

/** The key of a pull request's one CI status comment. */
export function ciStatusKey(d: Pick<JobData, 'owner' | 'repo' | 'issueNumber'>): string {
  return `${d.owner}/${d.repo}/pulls/${d.issueNumber}/ci`.toLowerCase();
}

/**
 * Whether the app may push `branch` for this job: an issue job only to its own issue's
 * branches (`agent/issue-<n>-…`, `agent/wip/issue-<n>-…`), a revision or a CI fix only to
 * one of the app's issue branches (the pull request's head). Nothing read back from Redis or GitHub
 * can point a push at any other ref.
 */
export function isOwnBranch(job: Pick<JobData, 'kind' | 'issueNumber'>, branch: string): boolean {
  if (onPullRequest(job.kind)) return APP_BRANCH.test(branch);
  const n = job.issueNumber;
  return (
    new RegExp(`^agent/issue-${n}(-[a-z0-9-]+)?$`).test(branch) ||
    new RegExp(`^agent/wip/issue-${n}-attempt-\\d+$`).test(branch)
  );
}

/** The issue a branch of ours was made for: `agent/issue-<n>-…` → n. */
export function issueOfBranch(branch: string): number | undefined {
  const m = /^agent\/issue-(\d+)(?:-|$)/.exec(branch);
  return m ? Number(m[1]) : undefined;
}

/** The branch the agent pushes for an issue: `agent/issue-<n>-<slug>`, the slug the title's first five words. */
export function branchName(issueNumber: number, title: string): string {
  const slug = title
    .toLowerCase()
    .normalize('NFKD')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .split('-')
    .filter(Boolean)
    .slice(0, 5)
    .join('-')
    .slice(0, 40)
    .replace(/-+$/, '');
  return `agent/issue-${issueNumber}${slug ? `-${slug}` : ''}`;
}
