import { parseRepoConfig, RepoConfigError } from '../../src/config/repo-config.js';

/** The RepoConfigError that parsing `text` throws; fails the test when it parses or throws something else. */
export function configErrorOf(text: string): RepoConfigError {
  try {
    parseRepoConfig(text);
  } catch (err) {
    if (err instanceof RepoConfigError) return err;
    throw err;
  }
  throw new Error('expected a RepoConfigError');
}
