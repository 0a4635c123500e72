import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { Runner } from '../../sandbox/runner.js';
import { createFile } from './create-file.js';
import { editFile } from './edit-file.js';
import { finishChange } from './finish-change.js';
import { listFiles } from './list-files.js';
import { readFile } from './read-file.js';
import { requestScope } from './request-scope.js';
import { search } from './search.js';
import { submitPlan } from './submit-plan.js';
import {
  boundOutput,
  callTool,
  defineTool,
  inputJsonSchema,
  type Tool,
  type ToolAnswer,
  type ToolCallRecord,
  type ToolContext,
} from './tool.js';

const log = pino({ level: 'silent' });
const noRunner: Runner = {
  backend: 'unsandboxed',
  run: async () => {
    throw new Error('these tests do not run commands');
  },
};
const ALL = [
  listFiles,
  readFile,
  search,
  editFile,
  createFile,
  requestScope,
  submitPlan,
  finishChange,
] as unknown as Tool[];

let root: string;
let ctx: ToolContext;
let records: ToolCallRecord[];

function call(name: string, input: unknown): Promise<ToolAnswer> {
  return callTool(ALL, name, input, ctx, (r) => records.push(r));
}

function errorOf(a: ToolAnswer) {
  if (a.ok) throw new Error(`expected an error, got output: ${a.output}`);
  return a.error;
}

function outputOf(a: ToolAnswer) {
  if (!a.ok) throw new Error(`expected success, got ${a.error.code}: ${a.error.message}`);
  return a.output;
}

beforeEach(() => {
  root = mkdtempSync(path.join(tmpdir(), 'ia-tools-'));
  mkdirSync(path.join(root, 'src'));
  mkdirSync(path.join(root, 'lib'));
  writeFileSync(
    path.join(root, 'src/utils.ts'),
    'export function add(a: number, b: number) {\n  return a - b;\n}\n\nexport const twice = (x: number) => add(x, x);\n',
  );
  writeFileSync(path.join(root, 'lib/util.ts'), 'export const x = 1;\n');
  writeFileSync(path.join(root, 'README.md'), '# demo\n');
  writeFileSync(path.join(root, 'blob.bin'), Buffer.from([0, 1, 2, 3, 0, 5]));
  ctx = {
    workTree: root,
    runner: noRunner,
    sandboxReadOnlyPaths: [],
    log,
    touched: new Set(),
    editable: new Set(['src/utils.ts', 'src/new.ts']),
  };
  records = [];
});

describe('the wrapper', () => {
  it('answers invalid input with every issue: path, expectation and what was received', async () => {
    const e = errorOf(await call('read_file', { path: 3, start_line: 0 }));
    expect(e.code).toBe('invalid_input');
    expect(e.message).toMatch(/path: .*received number 3/);
    expect(e.message).toMatch(/start_line: .*received number 0/);
    expect(e.message).toMatch(/end_line: required, expected number, but missing/);
    expect(e.hint).toContain('start_line');
  });

  it('answers an unknown tool with the tools of this stage', async () => {
    const e = errorOf(await call('write_file', {}));
    expect(e.code).toBe('unknown_tool');
    expect(e.candidates).toContain('edit_file');
  });

  it('turns a throw into a structured error and records every call with its outcome', async () => {
    const boom = defineTool({
      name: 'boom',
      description: 'throws',
      input: z.object({}),
      example: {},
      run: async () => {
        throw new Error('disk on fire');
      },
    });
    const a = await callTool([boom] as unknown as Tool[], 'boom', {}, ctx, (r) => records.push(r));
    expect(errorOf(a)).toMatchObject({ code: 'internal_error', message: expect.stringContaining('disk on fire') });
    await call('read_file', { path: 'README.md', start_line: 1, end_line: 5 });
    expect(records.map((r) => [r.tool, r.ok, r.errorCode])).toEqual([
      ['boom', false, 'internal_error'],
      ['read_file', true, undefined],
    ]);
  });

  it('bounds output with head, tail and the number of lines omitted', () => {
    const text = Array.from({ length: 5000 }, (_, i) => `line ${i}`).join('\n');
    const out = boundOutput(text, 2000);
    expect(out.length).toBeLessThan(2200);
    expect(out).toMatch(/^line 0\n/);
    expect(out).toMatch(/line 4999$/);
    const omitted = Number(/\[… (\d+) lines omitted …\]/.exec(out)?.[1]);
    expect(omitted + out.split('\n').length - 1).toBe(5000);
  });

  it('shows examples that are valid calls', () => {
    for (const t of ALL) expect(t.input.safeParse(t.example).success, t.name).toBe(true);
  });

  it('gives every tool a JSON Schema of type object with a description on every field', () => {
    for (const t of ALL) {
      const schema = inputJsonSchema(t) as {
        type: string;
        properties: Record<string, { description?: string }>;
        additionalProperties?: boolean;
      };
      expect(schema.type).toBe('object');
      for (const [field, prop] of Object.entries(schema.properties))
        expect(prop.description, `${t.name}.${field}`).toBeTruthy();
    }
  });
});

describe('paths', () => {
  it('names the closest existing paths for a missing file', async () => {
    const e = errorOf(await call('read_file', { path: 'src/util.ts', start_line: 1, end_line: 10 }));
    expect(e.code).toBe('not_found');
    expect(e.message).toMatch(/^no file src\/util\.ts; closest: /);
    expect(e.candidates).toEqual(expect.arrayContaining(['src/utils.ts', 'lib/util.ts']));
  });

  it('refuses absolute paths, .. escapes, .git and symlinks that leave the tree', async () => {
    symlinkSync('/etc', path.join(root, 'etc-link'));
    expect(errorOf(await call('read_file', { path: '/etc/passwd', start_line: 1, end_line: 2 })).code).toBe(
      'path_outside_work_tree',
    );
    expect(errorOf(await call('read_file', { path: '../../etc/passwd', start_line: 1, end_line: 2 })).code).toBe(
      'path_outside_work_tree',
    );
    const viaLink = errorOf(await call('read_file', { path: 'etc-link/passwd', start_line: 1, end_line: 2 }));
    expect(viaLink.code).toBe('path_outside_work_tree');
    expect(viaLink.message).toContain('symlink');
    expect(errorOf(await call('create_file', { path: 'etc-link/evil', content: 'x' })).code).toBe(
      'path_outside_work_tree',
    );
    expect(errorOf(await call('list_files', { path: '.git' })).code).toBe('path_forbidden');
  });

  it('refuses links into .git and writes through links, so no edit can plant git config', async () => {
    mkdirSync(path.join(root, '.git'));
    writeFileSync(path.join(root, '.git/config'), '[core]\n');
    symlinkSync('.git', path.join(root, 'g'));
    symlinkSync('../.git/config', path.join(root, 'src/cfg'));
    symlinkSync('nowhere', path.join(root, 'src/dangling'));
    symlinkSync('utils.ts', path.join(root, 'src/alias.ts'));
    ctx.editable = new Set(['g/config', 'src/cfg', 'src/alias.ts', 'g/hooks/pre-commit']);
    expect(
      errorOf(await call('edit_file', { path: 'g/config', old_text: '[core]', new_text: '[filter "x"]' })).code,
    ).toBe('path_forbidden');
    expect(
      errorOf(await call('edit_file', { path: 'src/cfg', old_text: '[core]', new_text: '[filter "x"]' })).code,
    ).toBe('path_forbidden');
    expect(errorOf(await call('create_file', { path: 'g/hooks/pre-commit', content: 'evil' })).code).toBe(
      'path_forbidden',
    );
    expect(errorOf(await call('read_file', { path: 'g/config', start_line: 1, end_line: 1 })).code).toBe(
      'path_forbidden',
    );
    const viaAlias = errorOf(await call('edit_file', { path: 'src/alias.ts', old_text: 'a - b', new_text: 'a + b' }));
    expect(viaAlias).toMatchObject({ code: 'symlink', message: expect.stringContaining('utils.ts') });
    expect(errorOf(await call('read_file', { path: 'src/dangling', start_line: 1, end_line: 1 })).code).toBe(
      'dangling_symlink',
    );
    expect(readFileSync(path.join(root, '.git/config'), 'utf8')).toBe('[core]\n');
  });

  it('refuses to read a FIFO instead of blocking on it', async () => {
    execFileSync('mkfifo', [path.join(root, 'pipe')]);
    expect(errorOf(await call('read_file', { path: 'pipe', start_line: 1, end_line: 1 })).code).toBe('not_a_file');
  });
});

describe('read_file', () => {
  it('shows a window with line numbers and says where the file ends', async () => {
    const out = outputOf(await call('read_file', { path: 'src/utils.ts', start_line: 2, end_line: 3 }));
    expect(out).toBe('2│  return a - b;\n3│}\n[lines 2-3 of 5; read from 4 for more]');
  });

  it('refuses binary files with their size, and ranges past the end', async () => {
    const e = errorOf(await call('read_file', { path: 'blob.bin', start_line: 1, end_line: 2 }));
    expect(e).toMatchObject({ code: 'binary_file', message: expect.stringContaining('6 bytes') });
    expect(errorOf(await call('read_file', { path: 'README.md', start_line: 50, end_line: 60 })).message).toContain(
      'has 1 lines',
    );
  });

  it('reads windows of huge files and says how to find the lines', async () => {
    writeFileSync(
      path.join(root, 'big.txt'),
      `${Array.from({ length: 300_000 }, (_, i) => `line ${i + 1}`).join('\n')}\n`,
    );
    const out = outputOf(await call('read_file', { path: 'big.txt', start_line: 150_000, end_line: 150_001 }));
    expect(out).toMatch(
      /^150000│line 150000\n150001│line 150001\n\[lines 150000-150001 of 300000; read from 150002 for more\]\n\[big\.txt is large \(\d+ bytes\): search it/,
    );
  });
});

describe('list_files and search', () => {
  it('lists files recursively and refuses a file as a directory', async () => {
    expect(outputOf(await call('list_files', { path: '.' })).split('\n')).toEqual([
      'README.md',
      'blob.bin',
      'lib/util.ts',
      'src/utils.ts',
    ]);
    expect(errorOf(await call('list_files', { path: 'README.md' })).code).toBe('not_a_directory');
  });

  it('finds matches with path and line, reports none, and explains a bad regex', async () => {
    expect(outputOf(await call('search', { pattern: 'return a', path: '.' }))).toBe('src/utils.ts:2:  return a - b;');
    expect(outputOf(await call('search', { pattern: 'nothing-like-this', path: 'src' }))).toMatch(/^no matches/);
    expect(errorOf(await call('search', { pattern: 'add(', path: '.' })).code).toBe('invalid_pattern');
  });
});

describe('edit_file', () => {
  it('replaces one exact occurrence and records the touched file', async () => {
    outputOf(await call('edit_file', { path: 'src/utils.ts', old_text: 'return a - b;', new_text: 'return a + b;' }));
    expect(readFileSync(path.join(root, 'src/utils.ts'), 'utf8')).toContain('return a + b;');
    expect([...ctx.touched]).toEqual(['src/utils.ts']);
  });

  it('shows the nearest region and that only indentation differs', async () => {
    const e = errorOf(
      await call('edit_file', {
        path: 'src/utils.ts',
        old_text: '    return a - b;\n}',
        new_text: '    return a + b;\n}',
      }),
    );
    expect(e.code).toBe('old_text_not_found');
    expect(e.message).toMatch(/lines 2-3 \(indentation differs\)/);
  });

  it('names the words that differ', async () => {
    const e = errorOf(
      await call('edit_file', { path: 'src/utils.ts', old_text: '  return a * b;', new_text: '  return a + b;' }),
    );
    expect(e.message).toMatch(/lines 2-2 .*"\*"/);
  });

  it('lists every line of a non-unique match', async () => {
    writeFileSync(path.join(root, 'src/utils.ts'), 'x = 1;\ny = 2;\nx = 1;\n');
    const e = errorOf(await call('edit_file', { path: 'src/utils.ts', old_text: 'x = 1;', new_text: 'x = 3;' }));
    expect(e).toMatchObject({ code: 'old_text_not_unique', message: expect.stringContaining('lines 1, 3') });
  });

  it('keeps edits to the files the plan named', async () => {
    const e = errorOf(await call('edit_file', { path: 'lib/util.ts', old_text: 'x = 1', new_text: 'x = 2' }));
    expect(e.code).toBe('outside_scope');
    expect(e.candidates).toEqual(['src/new.ts', 'src/utils.ts']);
    ctx.editable = undefined;
    expect(errorOf(await call('edit_file', { path: 'src/utils.ts', old_text: 'a - b', new_text: 'a + b' })).code).toBe(
      'read_only_stage',
    );
  });
});

describe('create_file and the terminal tools', () => {
  it('creates a new file in scope and refuses an existing one', async () => {
    outputOf(await call('create_file', { path: 'src/new.ts', content: 'export {};\n' }));
    expect(readFileSync(path.join(root, 'src/new.ts'), 'utf8')).toBe('export {};\n');
    expect(errorOf(await call('create_file', { path: 'src/new.ts', content: '' })).code).toBe('already_exists');
  });

  it('finish_change refuses when nothing changed; submit_plan validates the plan', async () => {
    expect(errorOf(await call('finish_change', { summary: 'done' })).code).toBe('nothing_changed');
    const e = errorOf(
      await call('submit_plan', {
        summary: 's',
        files_to_change: [],
        files_to_read: [],
        steps: ['x'],
        verification: 'npm test',
        confidence: 2,
      }),
    );
    expect(e.message).toMatch(/files_to_change/);
    expect(e.message).toMatch(/confidence/);
  });
});

describe("the repository's path policy", () => {
  const HINT =
    "this repository's .github/agent.yml does not let the agent edit it; leave it unchanged or explain in finish_change";

  it('lets edits and new files through where the policy allows them', async () => {
    ctx.pathPolicy = { allow: ['src/**'], deny: ['src/generated/**'] };
    outputOf(await call('edit_file', { path: 'src/utils.ts', old_text: 'a - b', new_text: 'a + b' }));
    outputOf(await call('create_file', { path: 'src/new.ts', content: 'export {};\n' }));
    expect([...ctx.touched].sort()).toEqual(['src/new.ts', 'src/utils.ts']);
  });

  it('refuses a denied file even when the plan names it, naming the glob', async () => {
    mkdirSync(path.join(root, 'src/generated'));
    writeFileSync(path.join(root, 'src/generated/api.ts'), 'export const v = 1;\n');
    ctx.editable = new Set(['src/generated/api.ts', 'src/generated/new.ts', 'README.md']);
    ctx.pathPolicy = { allow: ['src/**'], deny: ['src/generated/**'] };
    expect(
      errorOf(await call('edit_file', { path: 'src/generated/api.ts', old_text: 'v = 1', new_text: 'v = 2' })),
    ).toEqual({
      code: 'path_denied',
      message: 'src/generated/api.ts matches the deny glob "src/generated/**" in .github/agent.yml',
      hint: HINT,
    });
    expect(errorOf(await call('create_file', { path: 'src/generated/new.ts', content: 'export {};\n' }))).toMatchObject(
      { code: 'path_denied', message: expect.stringContaining('"src/generated/**"') },
    );
    // Outside allow: refused with the allow globs named, before the scope check sends it to request_scope.
    expect(errorOf(await call('edit_file', { path: 'README.md', old_text: 'demo', new_text: 'x' }))).toMatchObject({
      code: 'path_denied',
      message: expect.stringContaining('none of the allow globs'),
      hint: HINT,
    });
    expect(errorOf(await call('edit_file', { path: 'lib/util.ts', old_text: 'x = 1', new_text: 'x = 2' })).code).toBe(
      'path_denied',
    );
    expect(readFileSync(path.join(root, 'src/generated/api.ts'), 'utf8')).toBe('export const v = 1;\n');
    expect(ctx.touched.size).toBe(0);
  });

  it('keeps request_scope from widening onto a denied file', async () => {
    ctx.scopeRequests = [];
    ctx.pathPolicy = { allow: [], deny: ['*.lock', 'lib/**'] };
    const e = errorOf(
      await call('request_scope', { path: 'lib/util.ts', reason: 'the constant x is defined here and is wrong' }),
    );
    expect(e).toMatchObject({ code: 'path_denied', message: expect.stringContaining('"lib/**"'), hint: HINT });
    expect(
      errorOf(
        await call('request_scope', { path: 'deep/dir/yarn.lock', reason: 'the lock file must pin the fixed version' }),
      ).message,
    ).toContain('"*.lock"');
    expect(ctx.editable?.has('lib/util.ts')).toBe(false);
    expect(ctx.scopeRequests).toEqual([]);
    outputOf(await call('request_scope', { path: 'src/other.ts', reason: 'the helper belongs in its own file' }));
    expect(ctx.editable?.has('src/other.ts')).toBe(true);
  });

  it('follows symlinked directories, so a link cannot carry an edit into a denied one', async () => {
    symlinkSync('../lib', path.join(root, 'src/lib-link'));
    ctx.editable = new Set(['src/lib-link/util.ts', 'src/lib-link/new.ts']);
    ctx.pathPolicy = { allow: [], deny: ['lib/**'] };
    expect(
      errorOf(await call('edit_file', { path: 'src/lib-link/util.ts', old_text: 'x = 1', new_text: 'x = 2' })),
    ).toMatchObject({
      code: 'path_denied',
      message:
        'src/lib-link/util.ts resolves through a symlink to lib/util.ts; lib/util.ts matches the deny glob "lib/**" in .github/agent.yml',
    });
    expect(errorOf(await call('create_file', { path: 'src/lib-link/new.ts', content: 'export {};\n' })).code).toBe(
      'path_denied',
    );
    expect(readFileSync(path.join(root, 'lib/util.ts'), 'utf8')).toBe('export const x = 1;\n');
  });
});
