import { z } from 'zod';
import { defineTool, ToolFailure } from './tool.js';

const MAX_TIMEOUT_S = 600;

export const runCommand = defineTool({
  name: 'run_command',
  example: { command: 'npm test -- test/add.test.js', timeout_seconds: 120 },
  description:
    'Run a shell command in the repository root inside the sandbox (no network, no credentials). Use it to run a single test file or a build step. Output is combined stdout and stderr, capped.',
  input: z.strictObject({
    command: z.string().min(1).describe('a shell command, run with /bin/sh -c in the repository root'),
    timeout_seconds: z
      .number()
      .int()
      .min(1)
      .max(MAX_TIMEOUT_S)
      .describe(`time limit in seconds, at most ${MAX_TIMEOUT_S}; the whole process group is killed when it passes`),
  }),
  async run({ command, timeout_seconds }, ctx) {
    const r = await ctx.runner.run({
      workTree: ctx.workTree,
      command,
      timeoutMs: timeout_seconds * 1000,
      network: 'none',
      readOnlyPaths: ctx.sandboxReadOnlyPaths,
      signal: ctx.signal,
    });
    if (r.timedOut) {
      const last = r.output.trimEnd().split('\n').slice(-20).join('\n');
      throw new ToolFailure({
        code: 'command_timed_out',
        message: `\`${command}\` passed its ${timeout_seconds}s limit and its whole process group was killed. Last output:\n${last || '(none)'}`,
        hint: `run a narrower command (one test file), or raise timeout_seconds (at most ${MAX_TIMEOUT_S}); a command waiting for input or the network will never finish here`,
      });
    }
    // A non-zero exit is information (a failing test), not a failed tool call.
    const status = [
      r.signal ? `killed by ${r.signal}` : `exit code ${r.exitCode}`,
      ...(r.omittedBytes > 0
        ? [`output was ${r.omittedBytes} bytes longer than shown; filter it (grep, tail) to see the part you need`]
        : []),
    ].join('; ');
    return {
      output: `${r.output}${r.output.endsWith('\n') || !r.output ? '' : '\n'}[${status}; ${r.durationMs} ms]`,
      metadata: { exitCode: r.exitCode, timedOut: r.timedOut },
    };
  },
});
