import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import {
  budgetsOf,
  checkpointOf,
  parseRepoConfig,
  REPO_CONFIG_PATH,
  RepoConfigError,
  triggerLabelOf,
  type ConfigProblem,
  type RepoConfig,
} from '../config/repo-config.js';

/** `line 4, field budgets.max_cost_usd: "ten" is text, not a number — expected: …` */
export function problemLine(p: ConfigProblem): string {
  const where = [
    p.line !== undefined ? `line ${p.line}` : undefined,
    p.field === '(top level)' ? 'top level' : `field ${p.field}`,
  ]
    .filter(Boolean)
    .join(', ');
  return `${where}: ${p.problem}${p.expected ? ` — expected: ${p.expected}` : ''}`;
}

const quote = (s: string) => JSON.stringify(s);

/** What a valid file sets, in a few lines; defaults are named as such. */
export function summarise(c: RepoConfig): string[] {
  const b = budgetsOf(c);
  const cp = checkpointOf(c);
  const commands = Object.entries(c.commands ?? {}).filter(([, v]) => v !== undefined);
  const models = Object.entries(c.models ?? {}).filter(([, v]) => v !== undefined);
  const set = (v: unknown) => (v === undefined ? ' (default)' : '');
  return [
    `trigger label: ${quote(triggerLabelOf(c))}${set(c.trigger_label)}`,
    `commands: ${commands.length ? commands.map(([k, v]) => `${k} ${quote(v)}`).join(', ') : 'none named, detected from the repository'}${commands.length && commands.length < 4 ? ' (the rest detected)' : ''}`,
    `install network: ${c.install_network ?? 'registries'}${set(c.install_network)}${c.install_network === 'full' ? " (honoured only where the app's operator sets SANDBOX_ALLOW_HOST_NETWORK=1)" : ''}${c.install_registries ? `; registries narrowed to ${c.install_registries.join(', ')}` : ''}`,
    `paths: ${c.paths?.allow ? `allow ${c.paths.allow.join(', ')}` : 'every file'}${c.paths?.deny?.length ? `; deny ${c.paths.deny.join(', ')}` : ''}${set(c.paths)}`,
    `rounds: ${c.max_rounds ?? 3}${set(c.max_rounds)}`,
    `checkpoint after planning: confidence below ${cp.minConfidence}, more than ${cp.maxFiles} files or ${cp.maxLines} lines${set(c.checkpoint)}`,
    `budgets per job: ${b.maxModelCalls} model calls, $${b.maxCostUsd}, ${b.maxMinutes} minutes; per day: $${b.dailyCostUsd}${set(c.budgets)}`,
    `models: ${models.length ? models.map(([k, v]) => `${k} ${v}`).join(', ') : "the app's"}${set(c.models)}`,
    `instructions: ${c.instructions ? `${c.instructions.length} characters` : 'none'}`,
  ];
}

export interface CheckResult {
  /** 0 valid, 1 invalid, 2 nothing to check (no such file). */
  code: 0 | 1 | 2;
  stdout: string;
  stderr: string;
}

/**
 * `issue-agent config check [path]`: parses a `.github/agent.yml` exactly as the app does
 * and says what it sets, or every problem with its line and field. A directory means the
 * file inside it.
 */
export function checkConfigFile(target: string | undefined, cwd = process.cwd()): CheckResult {
  let file = path.resolve(cwd, target ?? REPO_CONFIG_PATH);
  let text: string;
  try {
    if (statSync(file).isDirectory()) file = path.join(file, REPO_CONFIG_PATH);
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : (code ?? String(err));
    return {
      code: 2,
      stdout: '',
      stderr: `issue-agent config check: cannot read ${file}: ${why}. A repository without ${REPO_CONFIG_PATH} runs with the defaults.\n`,
    };
  }
  const rel = path.relative(cwd, file);
  const shown = rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : file;
  try {
    // The operator's policy is not known here: "full" is valid for a host that allows it, and said so.
    const config = parseRepoConfig(text, { allowHostNetwork: true });
    return {
      code: 0,
      stdout: `${shown}: valid\n${summarise(config)
        .map((l) => `  ${l}\n`)
        .join('')}`,
      stderr: '',
    };
  } catch (err) {
    if (!(err instanceof RepoConfigError)) throw err;
    const n = err.problems.length;
    return {
      code: 1,
      stdout: `${shown}: invalid, ${n} problem${n === 1 ? '' : 's'}\n${err.problems.map((p) => `  ${problemLine(p)}\n`).join('')}`,
      stderr: '',
    };
  }
}
