import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { parseRepoConfig, repoConfigJsonSchema } from '../../src/config/repo-config.js';
import { EnvSchema } from '../../src/config/env.js';
import { LABEL_SPECS } from '../../src/github/facade.js';
import { COMMAND_NAMES } from '../../src/web/commands.js';

// The README is the user's manual: every config field, command and label it must explain.
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');

type JsonSchema = { properties?: Record<string, JsonSchema> };
function fields(schema: JsonSchema, prefix = ''): string[] {
  return Object.entries(schema.properties ?? {}).flatMap(([k, v]) => [prefix + k, ...fields(v, `${prefix}${k}.`)]);
}

describe('the README', () => {
  const example = /## Repository config[\s\S]*?```yaml\n([\s\S]*?)```/.exec(readme)?.[1];

  it('has an example config that is valid and shows every field of the schema', () => {
    expect(example).toBeDefined();
    expect(() => parseRepoConfig(example)).not.toThrow();
    const shown = fields({
      properties: Object.fromEntries(
        Object.entries(parse(example!) as Record<string, unknown>).map(([k, v]) => [k, toSchema(v)]),
      ),
    });
    expect(shown.sort()).toEqual(fields(repoConfigJsonSchema() as JsonSchema).sort());
  });

  it('has .env.example list every environment variable, each with a comment line above it', () => {
    const lines = readFileSync(path.join(ROOT, '.env.example'), 'utf8').split('\n');
    const listed = lines.flatMap((l, i) => {
      const m = /^([A-Z_]+)=/.exec(l);
      return m
        ? [
            {
              name: m[1]!,
              explained:
                lines
                  .slice(0, i)
                  .reverse()
                  .find((x) => !/^[A-Z_]+=/.test(x))
                  ?.startsWith('#') ?? false,
            },
          ]
        : [];
    });
    expect(listed.map((v) => v.name).sort()).toEqual(Object.keys(EnvSchema.shape).sort());
    expect(listed.filter((v) => !v.explained)).toEqual([]);
  });

  it('documents every command and every label', () => {
    for (const c of COMMAND_NAMES) expect(readme).toContain(`\`/agent ${c}`);
    for (const l of Object.keys(LABEL_SPECS)) expect(readme).toContain(`| \`${l}\` |`);
  });
});

function toSchema(v: unknown): JsonSchema {
  return v && typeof v === 'object' && !Array.isArray(v)
    ? { properties: Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toSchema(x)])) }
    : {};
}
