import { ProbotOctokit } from 'probot';

type OctokitPlugin = Parameters<typeof ProbotOctokit.plugin>[0];
type PluginOctokit = Parameters<OctokitPlugin>[0];

/** How hard the app's GitHub client tries before a request fails (each bound is Octokit's plugin option). */
export const GITHUB_RETRY_LIMITS = {
  /** plugin-retry: 5xx, 429 and network errors, waiting 1 s, 4 s, 9 s. */
  retries: 3,
  /** plugin-throttling: secondary rate limits, each waiting retry-after (60 s when GitHub sends none). */
  secondaryRateLimitRetries: 3,
  /** plugin-throttling: the primary (hourly) limit is waited out once, if it resets within this many seconds. */
  maxRateLimitWaitSeconds: 15 * 60,
} as const;

interface RequestLike {
  method?: string;
  url?: string;
  request?: Record<string, unknown>;
}

/** A 401 to a request that carried an installation token (`token …`, not an app JWT `bearer …`). */
function isRejectedInstallationToken(err: unknown): boolean {
  const e = err as { status?: number; request?: { headers?: Record<string, unknown> } } | null;
  const authorization = e?.request?.headers?.authorization;
  return e?.status === 401 && typeof authorization === 'string' && /^token\s/i.test(authorization);
}

/**
 * Octokit plugin: when GitHub answers 401 to an installation token (expired before Probot's
 * 59-minute cache dropped it, or revoked), mint a fresh one and send the request once more.
 * auth-app only retries 401s in the first seconds after minting (replication delay).
 */
export const refreshInstallationToken: OctokitPlugin = (octokit: PluginOctokit) => {
  octokit.hook.wrap('request', async (request, options) => {
    try {
      return await request(options);
    } catch (err) {
      const opts = options as RequestLike;
      if (!isRejectedInstallationToken(err) || opts.request?.installationTokenRefreshed) throw err;
      octokit.log.warn(
        `GitHub refused the installation token (401) for "${opts.method} ${opts.url}"; minting a new one and trying once more.`,
      );
      await octokit.auth({ type: 'installation', refresh: true });
      return request({ ...options, request: { ...opts.request, installationTokenRefreshed: true } } as typeof options);
    }
  });
};

/** Octokit's throttling handlers with bounds: Probot 14's own ones never retry a secondary rate limit. */
export const throttleHandlers = {
  onSecondaryRateLimit: (
    retryAfter: number,
    options: RequestLike,
    octokit: PluginOctokit,
    retryCount: number,
  ): boolean => {
    const retry = retryCount < GITHUB_RETRY_LIMITS.secondaryRateLimitRetries;
    octokit.log.warn(
      `GitHub secondary rate limit on "${options.method} ${options.url}": ${retry ? `retrying in ${retryAfter} s (retry ${retryCount + 1} of ${GITHUB_RETRY_LIMITS.secondaryRateLimitRetries})` : 'giving up'}`,
    );
    return retry;
  },
  onRateLimit: (retryAfter: number, options: RequestLike, octokit: PluginOctokit, retryCount: number): boolean => {
    const retry = retryCount < 1 && retryAfter <= GITHUB_RETRY_LIMITS.maxRateLimitWaitSeconds;
    octokit.log.warn(
      `GitHub rate limit exhausted on "${options.method} ${options.url}": ${retry ? `retrying in ${retryAfter} s` : `resets in ${retryAfter} s; giving up`}`,
    );
    return retry;
  },
};

/**
 * Probot hands auth-app a `request` without the API's base URL. Requests mint their token
 * through the request's own base URL, but an explicit `octokit.auth({ type: 'installation',
 * refresh: true })` (a token refresh, a git token) would go to api.github.com, not to GitHub
 * Enterprise Server. Give that `request` the base URL.
 */
function withBaseUrl(auth: unknown, baseUrl: unknown): unknown {
  const request = (auth as { request?: { defaults?: (o: { baseUrl: string }) => unknown } } | undefined)?.request;
  if (typeof baseUrl !== 'string' || typeof request?.defaults !== 'function') return auth;
  return { ...(auth as object), request: request.defaults({ baseUrl }) };
}

/**
 * The app's Octokit class: ProbotOctokit (throttling + retry plugins) with bounded handlers
 * that do retry secondary rate limits, plugin-retry for 5xx/429, and an installation token
 * refresh on 401. Defaults as a function, so our handlers win over the ones Probot passes in.
 * `retryBaseMs` scales every wait (1000: retry-after is in seconds); tests shrink it.
 */
export function createAppOctokit(opts: { retryBaseMs?: number } = {}) {
  const base = opts.retryBaseMs ?? 1000;
  return ProbotOctokit.plugin(refreshInstallationToken).defaults((instance: Record<string, unknown> = {}) => ({
    ...instance,
    auth: withBaseUrl(instance.auth, instance.baseUrl),
    retry: {
      retries: GITHUB_RETRY_LIMITS.retries,
      retryAfterBaseValue: base,
      ...(instance.retry as object | undefined),
    },
    // `enabled: false` (e.g. tests) survives the spread; the handlers and the wait scale are ours.
    throttle: { ...(instance.throttle as object | undefined), ...throttleHandlers, retryAfterBaseValue: base },
  }));
}

/** For `new Probot({ ..., Octokit: AppOctokit })` and `Probot.defaults({ ..., Octokit: AppOctokit })`. */
export const AppOctokit = createAppOctokit();
