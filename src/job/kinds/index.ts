import type { JobData } from '../../queue/jobs.js';
import { issueJob } from './issue.js';
import type { JobKind } from './kind.js';
import { reviseJob } from './revise.js';
import { ciFixJob } from './ci-fix.js';

export type { JobKind };

/** Every kind of job, by the `kind` of its job data. */
export const JOB_KINDS: Record<JobData['kind'], JobKind> = {
  issue: issueJob,
  revise: reviseJob,
  'ci-fix': ciFixJob,
};
