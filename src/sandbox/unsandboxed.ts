import { mkdir } from 'node:fs/promises';
import type { Logger } from 'pino';
import { resolveRunRequest } from './run-request.js';
import { DEFAULT_MAX_OUTPUT_BYTES, sandboxEnv, type RunRequest, type RunResult, type Runner } from './runner.js';
import { spawnCapped } from './spawn-capped.js';

let warned = false;

/**
 * Runs repository commands directly on the host: same scrubbed environment, timeout,
 * process-group kill and output cap as bwrap, but no isolation of files or network.
 * Only for hosts where the operator explicitly chose SANDBOX=unsandboxed.
 */
export function createUnsandboxedRunner(log: Logger): Runner {
  if (!warned) {
    warned = true;
    log.warn(
      { sandbox: 'unsandboxed' },
      'SANDBOX=unsandboxed: repository code runs WITHOUT isolation and can read and write anything this process can (including .env, the private key and DATA_DIR). Use only for trusted repositories.',
    );
  }
  return {
    backend: 'unsandboxed',
    async run(req: RunRequest): Promise<RunResult> {
      const { cwd } = resolveRunRequest(req);
      const env = sandboxEnv(req.env);
      // HOME=/tmp/home is the sandbox's convention; on the host it may not exist yet.
      await mkdir(env.HOME ?? '/tmp/home', { recursive: true });
      return spawnCapped({
        command: req.command,
        file: '/bin/sh',
        args: ['-c', req.command],
        env,
        cwd,
        timeoutMs: req.timeoutMs,
        maxOutputBytes: req.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES,
        ...(req.signal ? { signal: req.signal } : {}),
      });
    },
  };
}
