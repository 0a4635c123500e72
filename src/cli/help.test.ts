import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { runCli } from '../../test/helpers/cli.js';
import { buildProgram } from './program.js';

/** Every command of the program with its path of names: [], ['run'], ['config', 'check']… */
function commands(cmd: Command, names: string[] = []): Array<{ names: string[]; cmd: Command }> {
  return [{ names, cmd }, ...cmd.commands.flatMap((c) => commands(c, [...names, c.name()]))];
}

describe('issue-agent --help', () => {
  it('lists every command, and each command lists its arguments and options', async () => {
    const all = commands(buildProgram());
    expect(all.map((c) => c.names.join(' '))).toEqual(['', 'run', 'trace', 'inbox', 'config', 'config check']);
    for (const { names, cmd } of all) {
      const r = await runCli([...names, '--help']);
      expect(r.status, names.join(' ')).toBe(0);
      expect(r.stdout).toContain(`Usage: issue-agent${names.map((n) => ` ${n}`).join('')} `);
      for (const sub of cmd.commands) expect(r.stdout).toContain(sub.name());
      for (const arg of cmd.registeredArguments) expect(r.stdout).toContain(arg.name());
      for (const opt of cmd.options) expect(r.stdout).toContain(opt.flags);
    }
  });

  it('says what run needs and what its exit codes mean', async () => {
    const r = await runCli(['run', '--help']);
    for (const text of [
      '--repo <path>',
      '--task <text>',
      '--issue-file <file>',
      '--sandbox <backend>',
      'ANTHROPIC_API_KEY',
      'ANTHROPIC_BASE_URL',
      'agent/issue-<n>-<slug>',
    ]) {
      expect(r.stdout).toContain(text);
    }
    expect(r.stdout).toMatch(/\(choices: "bwrap",\s+"none", default: "bwrap"\)/);
    expect(r.stdout).toMatch(
      /Exit codes:\n {2}0 +a branch and its report were left\n {2}1 +the job stopped without a branch/,
    );
  });

  it('exits 2 on a usage error and names it', async () => {
    const r = await runCli(['run', '--sandbox', 'docker', '--task', 'x']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(
      "error: option '--sandbox <backend>' argument 'docker' is invalid. Allowed choices are bwrap, none.",
    );
  });
});
