import { mkdir } from 'node:fs/promises';
import os from 'node:os';
import type { Logger } from 'pino';
import { diskMarker, diskUsage, resolveLimits } from './limits.js';
import { resolveRunRequest } from './run-request.js';
import {
  commandEnv,
  DEFAULT_MAX_OUTPUT_BYTES,
  type RunnerOptions,
  type RunRequest,
  type RunResult,
  type Runner,
} from './runner.js';
import { spawnCapped } from './spawn-capped.js';

let warned = false;

/**
 * Runs repository commands directly on the host: same scrubbed environment, timeout,
 * process-group kill, work-tree disk watchdog and output cap as bwrap, but no isolation of
 * files, network or processes, and no process, memory, file-size or CPU limits.
 * Only for hosts where the operator explicitly chose SANDBOX=unsandboxed.
 */
export function createUnsandboxedRunner(log: Logger, opts: RunnerOptions = {}): Runner {
  if (!warned) {
    warned = true;
    log.warn(
      { sandbox: 'unsandboxed' },
      "!!! SANDBOX=unsandboxed: NO SANDBOX. Repository code (install, tests, the agent's commands) runs WITHOUT isolation, with network, and can read and write anything this process can (including .env, the private key and DATA_DIR). Use only for trusted repositories. !!!",
    );
  }
  const cores = os.availableParallelism();
  return {
    backend: 'unsandboxed',
    async run(req: RunRequest): Promise<RunResult> {
      if (req.root)
        throw new Error('SANDBOX=unsandboxed runs on the host and cannot run on an image: use the bwrap sandbox');
      const { workTree, cwd } = resolveRunRequest(req);
      const limits = resolveLimits(req.timeoutMs, cores, opts.limits, req.limits);
      const env = commandEnv(req);
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
        watchers: [
          {
            everyMs: 1_000,
            async check() {
              const used = await diskUsage(workTree);
              return used !== undefined && used > limits.maxWorkTreeBytes ? diskMarker(used, limits, true) : undefined;
            },
          },
        ],
      });
    },
  };
}
