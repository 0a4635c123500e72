import { z } from 'zod';
import { parseDocument } from 'yaml';

export const REPO_CONFIG_PATH = '.github/agent.yml';

const command = z.string().trim().min(1).max(1000);

/** `.github/agent.yml`: every field optional; read from the default branch only. */
export const RepoConfigSchema = z
  .object({
    commands: z
      .object({
        install: command.optional().describe('installs dependencies; the only step that may reach package registries'),
        test: command.optional(),
        lint: command.optional(),
        typecheck: command.optional(),
      })
      .strict()
      .optional(),
    max_rounds: z.number().int().min(1).max(10).optional().describe('code ⇄ validate rounds before escalating (default 3)'),
    instructions: z.string().max(10_000).optional().describe('free text for the agent, read as repository rules'),
  })
  .strict();
export type RepoConfig = z.infer<typeof RepoConfigSchema>;

export class RepoConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`${REPO_CONFIG_PATH} is invalid:\n${problems.map((p) => `- ${p}`).join('\n')}`);
    this.name = 'RepoConfigError';
  }
}

/** Parses the file's text; a YAML or schema error names the line and the field. */
export function parseRepoConfig(text: string | undefined): RepoConfig {
  if (text === undefined || text.trim() === '') return {};
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new RepoConfigError(doc.errors.map((e) => `line ${e.linePos?.[0]?.line ?? '?'}: ${e.message.split('\n')[0]}`));
  }
  const parsed = RepoConfigSchema.safeParse(doc.toJS() ?? {});
  if (!parsed.success) {
    throw new RepoConfigError(parsed.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`));
  }
  return parsed.data;
}
