import type { EgressRule } from './egress/allowlist.js';
import type { EgressReport } from './egress/proxy.js';
import type { LimitKind, SandboxLimits } from './limits.js';

export { DEFAULT_LIMITS, type LimitKind, type SandboxLimits } from './limits.js';

/**
 * 'none' for tests and the agent's commands. For the install step: 'registries' (a network
 * namespace of its own whose only way out is the egress proxy, to the hosts of `egress`), or
 * 'full' (the worker host's own network: only where the operator allows it).
 */
export type NetworkPolicy = 'none' | 'registries' | 'full';

export interface RunRequest {
  /** Absolute path of the job's work tree: bound read-write, its `.git` read-only. */
  workTree: string;
  /** Absolute, inside workTree (default workTree); anything else is refused. */
  cwd?: string;
  /** Run as `/bin/sh -c command`. */
  command: string;
  timeoutMs: number;
  network: NetworkPolicy;
  /** With network 'registries': where the egress proxy lets the command go. */
  egress?: EgressPolicy;
  /** Default 256 KiB of combined stdout+stderr; beyond it head and tail halves are kept. */
  maxOutputBytes?: number;
  /** Extra non-secret variables (e.g. CI=true). */
  env?: Record<string, string>;
  /** Absolute directories searched before PATH (the image's or the sandbox's): a virtual environment's bin, say. */
  pathPrefix?: readonly string[];
  /** Extra absolute paths bound read-only at the same path (e.g. the git mirror for alternates). */
  readOnlyPaths?: string[];
  /** Abort kills the whole process tree. */
  signal?: AbortSignal;
  /** Overrides of the runner's limits for this command (defaults: DEFAULT_LIMITS). */
  limits?: Partial<SandboxLimits>;
  /**
   * Run on an image's root filesystem (environment/image-store.ts) instead of the host's
   * system directories, with the image's environment under the request's own.
   */
  root?: ImageRoot;
}

/** An unpacked image to run on: its root filesystem and its environment (`KEY=value`). */
export interface ImageRoot {
  rootfs: string;
  env: readonly string[];
  /**
   * The image's directories bound read-write, for an environment's setup commands on a
   * copy of the image (environment/environments.ts); every other command gets them read-only.
   */
  writable?: boolean;
}

/** The same runner with every command on `root`: the job's runner once its environment is ready. */
export function onRoot(runner: Runner, root: ImageRoot): Runner {
  return { backend: runner.backend, run: (req) => runner.run({ ...req, root }) };
}

/** The same runner with variables and PATH entries for every command (a toolchain's), under each request's own. */
export function withEnv(runner: Runner, env: Record<string, string>, pathPrefix: readonly string[]): Runner {
  if (Object.keys(env).length === 0 && pathPrefix.length === 0) return runner;
  return {
    backend: runner.backend,
    run: (req) =>
      runner.run({
        ...req,
        env: { ...env, ...req.env },
        pathPrefix: [...(req.pathPrefix ?? []), ...pathPrefix],
      }),
  };
}

/** A command's whole environment: the sandbox's, the request's, the image's (see imageEnv), its PATH prefix first. */
export function commandEnv(req: RunRequest, proxy: Record<string, string> = {}): Record<string, string> {
  const env = imageEnv(req.root, { ...sandboxEnv(req.env), ...proxy });
  const prefix = req.pathPrefix ?? [];
  return prefix.length > 0 ? { ...env, PATH: [...prefix, env.PATH].filter(Boolean).join(':') } : env;
}

/** The sandbox's environment with the image's PATH, and the image's other variables it does not set: no host variable gets in. */
export function imageEnv(root: ImageRoot | undefined, env: Record<string, string>): Record<string, string> {
  if (!root) return env;
  const fromImage: Record<string, string> = {};
  for (const kv of root.env) {
    const eq = kv.indexOf('=');
    if (eq > 0) fromImage[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  // The image's PATH finds the image's programs; HOME and the rest stay the sandbox's.
  return { ...env, ...(fromImage.PATH ? { PATH: fromImage.PATH } : {}), ...withoutKeys(fromImage, env) };
}

function withoutKeys(from: Record<string, string>, taken: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(from).filter(([k]) => !(k in taken)));
}

/** Where the install step's egress may go. */
export interface EgressPolicy {
  /** The destinations on the list. */
  rules: readonly EgressRule[];
  /** Private networks (CIDRs) those destinations may resolve into; see EgressOptions. */
  privateNetworks?: readonly string[];
}

export interface RunResult {
  command: string;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  durationMs: number;
  output: string;
  omittedBytes: number;
  /** The limit that killed the command (or, for memory and disk, cut part of it short); its "[killed: …]" line ends the output. */
  limit?: LimitKind;
  /** With network 'registries': what the egress proxy let through and refused. */
  egress?: EgressReport;
}

export interface Runner {
  readonly backend: 'bwrap' | 'unsandboxed';
  run(req: RunRequest): Promise<RunResult>;
}

export const DEFAULT_MAX_OUTPUT_BYTES = 256 * 1024;

/**
 * The whole environment repository code sees. Built from constants only, never from
 * process.env, so no host credential (GitHub, Anthropic, private key) can leak in.
 */
export const SAFE_ENV_BASE: Readonly<Record<string, string>> = Object.freeze({
  PATH: '/usr/local/bin:/usr/bin:/bin',
  HOME: '/tmp/home',
  USER: 'sandbox',
  LOGNAME: 'sandbox',
  SHELL: '/bin/sh',
  LANG: 'C.UTF-8',
  LC_ALL: 'C.UTF-8',
  TERM: 'dumb',
  TZ: 'UTC',
  CI: 'true',
  TMPDIR: '/tmp',
  NO_COLOR: '1',
  npm_config_cache: '/tmp/npm-cache',
  npm_config_update_notifier: 'false',
  npm_config_fund: 'false',
  npm_config_audit: 'false',
  // Repository code must not be able to prompt (it would hang until the timeout).
  GIT_TERMINAL_PROMPT: '0',
  PIP_NO_INPUT: '1',
  PIP_CACHE_DIR: '/tmp/pip-cache',
  PYTHONDONTWRITEBYTECODE: '1',
  CARGO_HOME: '/tmp/cargo',
  GOPATH: '/tmp/go',
  GOCACHE: '/tmp/go-cache',
  XDG_CACHE_HOME: '/tmp/cache',
  XDG_CONFIG_HOME: '/tmp/home/.config',
});

/** The command's environment: the safe base plus the caller's extra, non-secret variables. */
export function sandboxEnv(extra: Record<string, string> | undefined): Record<string, string> {
  return { ...SAFE_ENV_BASE, ...(extra ?? {}) };
}

export interface RunnerOptions {
  /** Limits for every command of this runner, over DEFAULT_LIMITS; a request may override them. */
  limits?: Partial<SandboxLimits>;
  /** Where to look for bwrap and the util-linux tools (default: process.env.PATH, then /usr/bin:/bin). */
  searchPath?: string;
  /**
   * SANDBOX_ALLOW_ROOT_MAPPED: run even when the worker is root and the sandbox cannot get a
   * uid of its own ('root-mapped'), where root-only files in bound directories are readable.
   */
  allowRootMapped?: boolean;
  /** Files that must never be visible in the sandbox (the App's key, .env): start-up refuses when one is. */
  secretFiles?: string[];
}
