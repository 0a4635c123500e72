import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import type { RegistryAccess } from '../sandbox/environment/image-store.js';
import { priceOf } from '../agent/pricing.js';
import type { Tier } from '../agent/tiers.js';
import { sanitise } from '../util/sanitise.js';
import { parseRules } from '../sandbox/egress/allowlist.js';
import { privateNetworkList } from '../sandbox/egress/forbidden-addresses.js';

const port = z.coerce.number({ error: 'expected a port number from 0 to 65535' }).int().min(0).max(65535);
const nonEmpty = z.string().trim().min(1);
const egressList = nonEmpty.superRefine((list, ctx) => {
  try {
    parseRules(list);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
  }
});

/**
 * The process environment, as the app reads it. Names follow Probot where Probot has one,
 * and the Anthropic SDK's own names so gateways and proxies work unchanged.
 */
export const EnvSchema = z
  .object({
    APP_ID: z.coerce.number().int().positive().optional().describe('GitHub App id; unset opens the setup page'),
    PRIVATE_KEY: nonEmpty.optional().describe('the App private key (PEM); or PRIVATE_KEY_PATH'),
    PRIVATE_KEY_PATH: nonEmpty.optional().describe('path to the App private key (PEM)'),
    WEBHOOK_SECRET: nonEmpty.optional().describe('secret GitHub signs webhooks with'),
    WEBHOOK_PROXY_URL: z.url().optional().describe('smee.io-style proxy for local development'),
    PORT: port.default(3000),
    HOST: nonEmpty.optional(),
    METRICS_PORT: port
      .optional()
      .describe('a port of its own for /metrics, /healthz and /readyz (how a worker-only process is scraped)'),
    GHE_HOST: nonEmpty.regex(/^[^/\s]+$/, 'a host name with an optional :port, no scheme or path').optional(),
    GHE_PROTOCOL: z.enum(['https', 'http']).default('https'),
    LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
    REDIS_URL: z.url().optional(),
    REDIS_PASSWORD: nonEmpty
      .optional()
      .describe(
        'the password for REDIS_URL when the URL carries none (how a compose file passes it without writing it in a URL)',
      ),
    REDIS_ALLOW_NO_AUTH: z
      .enum(['0', '1', 'false', 'true'])
      .default('0')
      .transform((v) => v === '1' || v === 'true')
      .describe(
        '1 lets the app run on a Redis that needs no password (refused by default: its jobs decide what workers do)',
      ),
    ANTHROPIC_API_KEY: nonEmpty.optional(),
    ANTHROPIC_BASE_URL: z.url().optional(),
    DATA_DIR: nonEmpty.default('.data'),
    MODEL_FRONTIER: nonEmpty.default('claude-opus-5-5'),
    MODEL_MID: nonEmpty.default('claude-sonnet-5-5'),
    MODEL_FAST: nonEmpty.default('claude-haiku-5-5'),
    SANDBOX: z
      .enum(['bwrap', 'none', 'unsandboxed'])
      .default('bwrap')
      .transform((v) => (v === 'none' ? 'unsandboxed' : v))
      .describe('none (or unsandboxed) runs repository code on the host: an explicit, logged opt-in'),
    SANDBOX_ALLOW_ROOT_MAPPED: z
      .enum(['0', '1', 'false', 'true'])
      .default('0')
      .transform((v) => v === '1' || v === 'true')
      .describe(
        '1 runs the sandbox even when the worker is root and cannot give it a uid of its own (its commands then read root-only files in bound directories)',
      ),
    SANDBOX_ALLOW_HOST_NETWORK: z
      .enum(['0', '1', 'false', 'true'])
      .default('0')
      .transform((v) => v === '1' || v === 'true')
      .describe(
        "1 lets a repository ask for install_network: full (the worker host's own network, its loopback services and metadata included)",
      ),
    SANDBOX_EGRESS_ALLOW: egressList
      .optional()
      .describe(
        "the registries the install step may reach, replacing those read from this host's package managers: comma-separated host, host:port, *.domain or URL",
      ),
    SANDBOX_EGRESS_ALLOW_EXTRA: egressList
      .optional()
      .describe("registries added to those read from this host's package managers (or to SANDBOX_EGRESS_ALLOW)"),
    SANDBOX_EGRESS_PRIVATE_NETWORKS: nonEmpty
      .superRefine((list, ctx) => {
        try {
          privateNetworkList(list.split(/[\s,]+/).filter(Boolean));
        } catch (err) {
          ctx.addIssue({ code: 'custom', message: (err as Error).message });
        }
      })
      .optional()
      .describe(
        'private networks (CIDRs, e.g. 10.20.0.0/16) where the registries on the list live, such as a corporate mirror; loopback, link-local and metadata addresses stay refused',
      ),
    ENVIRONMENTS_MAX_GB: z.coerce
      .number()
      .positive()
      .max(100_000)
      .default(50)
      .describe(
        'the most disk the cached images, set-up environments and kept installs under DATA_DIR/environments may use together; the least recently used go first',
      ),
    REGISTRY_AUTH_FILE: nonEmpty
      .optional()
      .describe(
        "a containers-auth.json (as `podman login` or `skopeo login` write it) with the logins for private image registries; read by the worker's skopeo only, never bound into the sandbox",
      ),
    REGISTRY_INSECURE_HOSTS: nonEmpty
      .superRefine((list, ctx) => {
        for (const host of list
          .split(',')
          .map((h) => h.trim())
          .filter(Boolean)) {
          if (!/^[a-z0-9.-]+(?::\d{1,5})?$|^\[[0-9a-f:]+\](?::\d{1,5})?$/i.test(host))
            ctx.addIssue({ code: 'custom', message: `"${host}" is not a host or host:port` });
        }
      })
      .optional()
      .describe(
        'image registries reached over plain HTTP instead of HTTPS: comma-separated host:port, e.g. a registry on loopback (default: none)',
      ),
    MAX_JOB_COST_USD: z.coerce
      .number()
      .positive()
      .max(1000)
      .default(25)
      .describe("the most one job may spend, whatever a repository's budgets.max_cost_usd asks"),
    MAX_DAILY_COST_USD: z.coerce
      .number()
      .positive()
      .max(100_000)
      .default(100)
      .describe('the most one repository may spend in a day, whatever its budgets.daily_cost_usd asks'),
    WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(1),
    WORKER_LOCK_MS: z.coerce
      .number()
      .int()
      .min(1_000)
      .max(3_600_000)
      .default(60_000)
      .describe("BullMQ lock duration: a crashed worker's job is free again after this"),
    WORKER_STALLED_INTERVAL_MS: z.coerce
      .number()
      .int()
      .min(500)
      .max(3_600_000)
      .default(30_000)
      .describe('how often workers look for jobs whose worker is gone'),
    WORKER_MAX_STALLED: z.coerce
      .number()
      .int()
      .min(0)
      .max(100)
      .default(2)
      .describe('crashes a job may survive before it fails'),
    INBOX_HEARTBEAT_MS: z.coerce
      .number()
      .int()
      .min(300)
      .max(600_000)
      .default(30_000)
      .describe('webhook work a dead web process had taken goes back to the inbox this long after its last heartbeat'),
    SHUTDOWN_TIMEOUT_MS: z.coerce
      .number()
      .int()
      .min(1_000)
      .max(3_600_000)
      .default(60_000)
      .describe('on SIGTERM, exit after this even if a step has not finished'),
    GIT_COMMITTER_NAME: nonEmpty.optional().describe('defaults to the app bot login'),
  })
  .superRefine((env, ctx) => {
    if (env.PRIVATE_KEY && env.PRIVATE_KEY_PATH) {
      ctx.addIssue({
        code: 'custom',
        path: ['PRIVATE_KEY_PATH'],
        message: 'set PRIVATE_KEY or PRIVATE_KEY_PATH, not both',
      });
    }
  });

export type Env = z.infer<typeof EnvSchema>;

/** What the app runs as: the web server, a worker, or both in one process. */
export type Role = 'web' | 'worker';

export interface AppConfig {
  env: Env;
  /** PEM of the App key, resolved from PRIVATE_KEY or PRIVATE_KEY_PATH. */
  privateKey: string;
  appId: number;
  webhookSecret: string;
  /** REST base URL: api.github.com or `${GHE_PROTOCOL}://${GHE_HOST}/api/v3`. */
  githubApiUrl: string;
  dataDir: string;
  models: Record<Tier, string>;
  anthropicApiKey: string;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`configuration is not usable:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

function describeIssue(issue: z.core.$ZodIssue, raw: Record<string, string | undefined>): string {
  const name = issue.path.join('.') || '(environment)';
  const got = typeof issue.path[0] === 'string' ? raw[issue.path[0]] : undefined;
  const shown = got === undefined ? 'it is unset' : `got ${JSON.stringify(redactValue(name, got))}`;
  return `${name}: ${issue.message} (${shown})`;
}

/** Values of secret-named variables, and anything token-shaped, are never echoed whole. */
function redactValue(name: string, value: string): string {
  return /KEY|SECRET|TOKEN/.test(name) ? `${value.slice(0, 3)}…` : sanitise(value);
}

/** How the worker reaches image registries: the operator's login file and plain-HTTP hosts. */
export function registryAccess(env: Env): RegistryAccess {
  return {
    ...(env.REGISTRY_AUTH_FILE ? { authFile: path.resolve(env.REGISTRY_AUTH_FILE) } : {}),
    insecureHosts: (env.REGISTRY_INSECURE_HOSTS ?? '')
      .split(',')
      .map((h) => h.trim().toLowerCase())
      .filter(Boolean),
    privateNetworks: env.SANDBOX_EGRESS_PRIVATE_NETWORKS?.split(/[\s,]+/).filter(Boolean) ?? [],
  };
}

/** Parses the environment; throws ConfigError naming each bad variable. */
export function parseEnv(raw: Record<string, string | undefined>): Env {
  // Empty strings in .env files mean "unset", as they do for Probot.
  const cleaned = Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = EnvSchema.safeParse(cleaned);
  if (!parsed.success) throw new ConfigError(parsed.error.issues.map((i) => describeIssue(i, cleaned)));
  return parsed.data;
}

/**
 * Resolves the config a running app needs. Roles that talk to GitHub need the App
 * identity; the worker also needs the model key.
 */
export function loadConfig(raw: Record<string, string | undefined>, roles: Role[]): AppConfig {
  const env = parseEnv(raw);
  const problems: string[] = [];
  if (env.APP_ID === undefined)
    problems.push('APP_ID: required (run `npm start` without it to register the app through the setup page)');
  let privateKey = env.PRIVATE_KEY?.replace(/\\n/g, '\n');
  if (!privateKey && env.PRIVATE_KEY_PATH) {
    try {
      privateKey = readFileSync(env.PRIVATE_KEY_PATH, 'utf8');
    } catch (err) {
      problems.push(
        `PRIVATE_KEY_PATH: cannot read ${env.PRIVATE_KEY_PATH} (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
      );
    }
  }
  if (!privateKey && !problems.some((p) => p.startsWith('PRIVATE_KEY_PATH'))) {
    problems.push('PRIVATE_KEY or PRIVATE_KEY_PATH: required, the GitHub App private key (PEM)');
  } else if (privateKey && !/-----BEGIN (RSA )?PRIVATE KEY-----/.test(privateKey)) {
    problems.push('PRIVATE_KEY: expected a PEM private key ("-----BEGIN RSA PRIVATE KEY-----")');
  }
  if (roles.includes('web') && !env.WEBHOOK_SECRET)
    problems.push('WEBHOOK_SECRET: required, the secret set on the GitHub App for webhooks');
  if (roles.includes('worker') && !env.ANTHROPIC_API_KEY)
    problems.push('ANTHROPIC_API_KEY: required by the worker to call the model');
  if (roles.includes('worker')) {
    for (const [name, model] of [
      ['MODEL_FRONTIER', env.MODEL_FRONTIER],
      ['MODEL_MID', env.MODEL_MID],
      ['MODEL_FAST', env.MODEL_FAST],
    ] as const) {
      if (!priceOf(model))
        problems.push(
          `${name}: no price is known for ${model}, so its spend could not be counted or bounded; use a model on the price list (src/agent/pricing.ts)`,
        );
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const githubApiUrl = env.GHE_HOST ? `${env.GHE_PROTOCOL}://${env.GHE_HOST}/api/v3` : 'https://api.github.com';
  return {
    env,
    privateKey: privateKey!,
    appId: env.APP_ID!,
    webhookSecret: env.WEBHOOK_SECRET ?? '',
    githubApiUrl,
    dataDir: path.resolve(env.DATA_DIR),
    models: { frontier: env.MODEL_FRONTIER, mid: env.MODEL_MID, fast: env.MODEL_FAST },
    anthropicApiKey: env.ANTHROPIC_API_KEY ?? '',
  };
}
