import type { ProbotOctokit } from 'probot';

export interface BotIdentity {
  /** `<slug>[bot]`, as commits and comments by the app show it. */
  login: string;
  slug: string;
  name: string;
  email: string;
}

/**
 * The app's bot user as a commit author. GitHub attributes a commit to the bot when the
 * email is `<user id>+<login>@users.noreply.<host>`.
 */
export async function botIdentity(
  octokit: { app: ProbotOctokit; installation: ProbotOctokit },
  opts: { gheHost?: string; name?: string },
): Promise<BotIdentity> {
  // /app takes the app's JWT; every other route an installation token.
  const { data: app } = await octokit.app.rest.apps.getAuthenticated();
  const slug = app?.slug ?? 'issue-agent';
  const login = `${slug}[bot]`;
  const { data: user } = await octokit.installation.rest.users.getByUsername({ username: login });
  const domain = opts.gheHost ? `users.noreply.${opts.gheHost.replace(/:\d+$/, '')}` : 'users.noreply.github.com';
  return { login, slug, name: opts.name ?? login, email: `${user.id}+${login}@${domain}` };
}
