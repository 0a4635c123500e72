import type { Probot, ProbotOctokit } from 'probot';

/** The app's names on GitHub, from `GET /app`. */
export interface AppNames {
  slug: string;
  /** `<slug>[bot]`, as commits, comments, reviews and pull requests by the app show it. */
  login: string;
}

/** The app's bot user as a commit author. */
export interface BotIdentity extends AppNames {
  name: string;
  email: string;
}

export interface AppIdentityOptions {
  /** GHE_HOST, for the bot's noreply email on GitHub Enterprise Server. */
  gheHost?: string;
  /** GIT_COMMITTER_NAME; the bot's login when unset. */
  committerName?: string;
}

/**
 * Who the app is, read from GitHub once and kept for the life of the process: `names()`
 * for the web (is this sender, or this pull request's author, the app?), `committer()`
 * for the worker's commits. A read that fails is not kept: the next call asks again.
 */
export class AppIdentity {
  #names: Promise<AppNames> | undefined;
  #committer: Promise<BotIdentity> | undefined;

  constructor(
    private readonly probot: Pick<Probot, 'auth'>,
    private readonly opts: AppIdentityOptions = {},
  ) {}

  /** The app's slug and bot login (`GET /app`, with the app's JWT). */
  names(): Promise<AppNames> {
    this.#names ??= forgetOnFailure(this.readNames(), () => {
      this.#names = undefined;
    });
    return this.#names;
  }

  /**
   * The bot as commit author: its names, and the email GitHub attributes to it. The email
   * carries the bot user's id, which only an installation token may read: any
   * installation's client will do, the bot user is the same for all of them.
   */
  committer(installation: ProbotOctokit): Promise<BotIdentity> {
    this.#committer ??= forgetOnFailure(
      this.names().then((names) => committerOf(installation, names, this.opts)),
      () => {
        this.#committer = undefined;
      },
    );
    return this.#committer;
  }

  private async readNames(): Promise<AppNames> {
    const octokit = await this.probot.auth();
    const { data } = await octokit.rest.apps.getAuthenticated();
    const slug = data?.slug ?? '';
    if (!slug) throw new Error('GET /app answered without a slug');
    return { slug, login: `${slug}[bot]` };
  }
}

/** The promise, after which `forget` runs if it rejected (it still rejects). */
function forgetOnFailure<T>(p: Promise<T>, forget: () => void): Promise<T> {
  return p.catch((err: unknown) => {
    forget();
    throw err;
  });
}

/**
 * The app's bot user as a commit author. GitHub attributes a commit to the bot when the
 * email is `<user id>+<login>@users.noreply.<host>`.
 */
async function committerOf(
  installation: ProbotOctokit,
  names: AppNames,
  opts: AppIdentityOptions,
): Promise<BotIdentity> {
  const { data: user } = await installation.rest.users.getByUsername({ username: names.login });
  const domain = opts.gheHost ? `users.noreply.${opts.gheHost.replace(/:\d+$/, '')}` : 'users.noreply.github.com';
  return { ...names, name: opts.committerName ?? names.login, email: `${user.id}+${names.login}@${domain}` };
}
