import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export class GitError extends Error {
  override readonly name = 'GitError';
  constructor(
    /** The git command line, with any URL credentials redacted; secrets only ever travel in env. */
    readonly command: string,
    readonly exitCode: number | null,
    /** The last lines of stderr, which is where git says what went wrong. */
    readonly stderrTail: string,
    readonly timedOut = false,
  ) {
    super(
      `${command} failed${timedOut ? ' (timed out)' : ` with exit code ${exitCode}`}: ${stderrTail || '(no stderr)'}`,
    );
  }
}

export interface GitOptions {
  cwd: string;
  env?: Record<string, string>;
  timeoutMs?: number;
  input?: string;
}

const DEFAULT_TIMEOUT_MS = 10 * 60_000;
const STDERR_TAIL_CHARS = 2_000;

/**
 * Config that keeps the host's git from executing anything a repository (or code run in
 * it) could have planted: hooks, fsmonitor, external diff/textconv helpers, credential
 * helpers. Command-line config also reaches nested git processes (submodules) via
 * GIT_CONFIG_PARAMETERS, and it overrides the repository's own config.
 */
export const SAFE_GIT_CONFIG: readonly string[] = [
  'core.hooksPath=/dev/null',
  'core.fsmonitor=false',
  'core.pager=cat',
  'core.askPass=',
  'core.sshCommand=ssh -oBatchMode=yes',
  'protocol.file.allow=user',
  'protocol.ext.allow=never',
  'credential.helper=',
  'submodule.recurse=false',
  // A nested repository planted in the work tree is never entered (its config could name filters).
  'diff.ignoreSubmodules=all',
  'status.submoduleSummary=false',
  'commit.gpgSign=false',
  'tag.gpgSign=false',
  'gc.autoDetach=false',
];

let emptyHome: string | undefined;

/** An empty HOME so no ~/.gitconfig (or credentials stored there) of the host is read. */
function gitHome(): string {
  emptyHome ??= mkdtempSync(path.join(os.tmpdir(), 'issue-agent-git-home-'));
  return emptyHome;
}

// Proxies are the only host variables git legitimately needs to reach the remote.
const PASSTHROUGH_ENV = [
  'PATH',
  'http_proxy',
  'https_proxy',
  'no_proxy',
  'HTTP_PROXY',
  'HTTPS_PROXY',
  'NO_PROXY',
  'SSL_CERT_FILE',
  'SSL_CERT_DIR',
];

function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of PASSTHROUGH_ENV) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  env.PATH ??= '/usr/local/bin:/usr/bin:/bin';
  const home = gitHome();
  Object.assign(env, {
    HOME: home,
    XDG_CONFIG_HOME: home,
    LANG: 'C',
    LC_ALL: 'C',
    GIT_TERMINAL_PROMPT: '0',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_ASKPASS: '',
    SSH_ASKPASS: '',
  });
  return env;
}

/** Strips credentials from anything URL-shaped, for messages. */
export function redactUrls(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/@\s]+@/gi, '$1[REDACTED]@');
}

/** Base64 basic-auth header value for an installation token, as GitHub expects it. */
function basicAuth(token: string): string {
  return `Basic ${Buffer.from(`x-access-token:${token}`).toString('base64')}`;
}

/**
 * Credentials for one git command, passed in its environment: never on argv (visible in
 * ps) and never written to a config file. With `url`, the header is scoped to that
 * origin so a redirect or another remote never receives it.
 */
export function authEnv(token: string, url?: string): Record<string, string> {
  let key = 'http.extraHeader';
  // Local paths (tests, the CLI) have no origin to scope to; they ignore the header anyway.
  if (url && /^https?:\/\//i.test(url)) key = `http.${new URL(url).origin}/.extraHeader`;
  return { GIT_CONFIG_COUNT: '1', GIT_CONFIG_KEY_0: key, GIT_CONFIG_VALUE_0: `Authorization: ${basicAuth(token)}` };
}

/** The strings that must never end up in a file: the token and its header form. */
export function tokenFingerprints(token: string): string[] {
  return [token, Buffer.from(`x-access-token:${token}`).toString('base64')];
}

/** Runs host-side git with safety config and a scrubbed environment; throws GitError on failure. */
export function git(args: string[], opts: GitOptions): Promise<{ stdout: string; stderr: string }> {
  const fullArgs = [...SAFE_GIT_CONFIG.flatMap((c) => ['-c', c]), ...args];
  const label = redactUrls(`git ${args.join(' ')}`);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const child = spawn('git', fullArgs, {
      cwd: opts.cwd,
      env: { ...baseEnv(), ...(opts.env ?? {}) },
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        // The group: git spawns helpers (remote-https, pack-objects) that must die too.
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }, timeoutMs);
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new GitError(label, null, e.message));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (code === 0 && !timedOut) resolve({ stdout, stderr });
      else reject(new GitError(label, code, redactUrls(stderr.trim().slice(-STDERR_TAIL_CHARS)), timedOut));
    });
    child.stdin.on('error', () => {
      // git may exit before reading its input; the exit code tells the story.
    });
    child.stdin.end(opts.input ?? '');
  });
}
