import type { GitHubRepo } from './facade.js';

/**
 * What the pipeline needs from where a repository lives: GitHubRepo for the app, LocalRepo
 * for the CLI's local checkout. The pipeline depends on this, never on Octokit.
 */
export type RepoHost = Pick<
  GitHubRepo,
  | 'ref'
  | 'repoInfo'
  | 'issue'
  | 'issueEdits'
  | 'permission'
  | 'comment'
  | 'updateComment'
  | 'deleteComment'
  | 'addLabels'
  | 'removeLabel'
  | 'fileText'
  | 'issueComments'
  | 'rootEntries'
  | 'gitToken'
  | 'openOrUpdatePull'
  | 'pull'
  | 'pullFiles'
  | 'review'
  | 'reviewComments'
  | 'replyToReviewComment'
>;
