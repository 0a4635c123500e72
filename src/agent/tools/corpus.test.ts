/**
 * A corpus of malformed and hostile tool calls, run through the one wrapper with every
 * tool registered. Each call must come back as a structured, actionable error (never a
 * throw, never internal_error), and none may change a byte outside or inside the tree.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  constants,
  lstatSync,
  mkdirSync,
  openSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { createRunner } from '../../sandbox/create-runner.js';
import { createFile } from './create-file.js';
import { editFile } from './edit-file.js';
import { finishChange } from './finish-change.js';
import { listFiles } from './list-files.js';
import { readFile } from './read-file.js';
import { requestScope } from './request-scope.js';
import { runCommand } from './run-command.js';
import { search } from './search.js';
import { submitPlan } from './submit-plan.js';
import { answerText, callTool, type Tool, type ToolAnswer, type ToolCallRecord, type ToolContext } from './tool.js';

const log = pino({ level: 'silent' });
const ALL = [
  listFiles,
  readFile,
  search,
  editFile,
  createFile,
  requestScope,
  runCommand,
  submitPlan,
  finishChange,
] as unknown as Tool[];
const TOOL_NAMES = ALL.map((t) => t.name);

// ── Fixtures: built before the cases are collected, so inputs can name them ───────────

const base = realpathSync(mkdtempSync(path.join(tmpdir(), 'ia-corpus-')));
/** The work tree, and a sibling that no call may reach. */
const root = path.join(base, 'work');
const sentinel = path.join(base, 'sentinel');
const SENTINEL = path.basename(sentinel);

function put(rel: string, content: string | Buffer, dir = root): void {
  mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
  writeFileSync(path.join(dir, rel), content);
}

put('secret.txt', 'do not read me\n', sentinel);
put('keys/id_ed25519', '-----BEGIN OPENSSH PRIVATE KEY-----\nnot really\n', sentinel);
put('config.ts', 'export const token = "s3cret";\n', sentinel);

put('.git/config', '[core]\n\trepositoryformatversion = 0\n');
put('.git/HEAD', 'ref: refs/heads/main\n');
put(
  'src/utils.ts',
  'export function add(a: number, b: number) {\n  return a - b;\n}\n\nexport const twice = (x: number) => add(x, x);\n',
);
put('src/dup.ts', 'let x = 1;\nx = 1;\nlet y = 2;\nx = 1;\n');
put('src/app.js', 'function f() {\n  return 1;\n}\nmodule.exports = { f };\n');
put('lib/util.ts', 'export const x = 1;\n');
put('config.json', '{\n  "name": "demo",\n  "version": "1.0.0"\n}\n');
put('ci.yml', 'on: push\njobs:\n  test:\n    runs-on: ubuntu-latest\n');
put('README.md', '# demo\n');
put('vendor/lib.js', 'module.exports = 1;\n');
put('blob.bin', Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 1, 2, 3, 0, 5]));
put('latin1.txt', Buffer.from('caf\xe9 cr\xe8me\n', 'latin1'));
put('big.txt', `${'a'.repeat(99)}\n`.repeat(30_000)); // 3,000,000 bytes > 2 MiB
mkdirSync(path.join(root, 'emptydir'));
execFileSync('mkfifo', [path.join(root, 'pipe')]);
symlinkSync(sentinel, path.join(root, 'out-link'));
symlinkSync(path.join(sentinel, 'secret.txt'), path.join(root, 'out-file.ts'));
symlinkSync(`../../${SENTINEL}/config.ts`, path.join(root, 'src/rel-out.ts'));
symlinkSync('.git', path.join(root, 'git-link'));
symlinkSync('../.git/config', path.join(root, 'src/cfg'));
symlinkSync('utils.ts', path.join(root, 'src/alias.ts'));
symlinkSync('nowhere', path.join(root, 'src/dangling'));
symlinkSync('../vendor', path.join(root, 'src/vendor-link'));

/** sha256 of every regular file; link targets, FIFOs and directories recorded by kind. Never follows links. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const name of readdirSync(path.join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const abs = path.join(dir, r);
      const st = lstatSync(abs);
      if (st.isSymbolicLink()) out[r] = `link -> ${readlinkSync(abs)}`;
      else if (st.isDirectory()) {
        out[r] = 'dir';
        walk(r);
      } else if (st.isFile())
        out[r] = `sha256:${createHash('sha256').update(readFileSync(abs)).digest('hex')} mode:${st.mode.toString(8)}`;
      else out[r] = `special mode:${st.mode.toString(8)}`;
    }
  };
  walk('');
  return out;
}

const sentinelBefore = snapshot(sentinel);
const treeBefore = snapshot(root);
const gitConfigBefore = readFileSync(path.join(root, '.git/config'));

const editable = new Set([
  'src/utils.ts',
  'src/dup.ts',
  'src/app.js',
  'src/new.ts',
  'src/alias.ts',
  'src/cfg',
  'src/rel-out.ts',
  'config.json',
  'new.json',
  'ci.yml',
  'blob.bin',
  'latin1.txt',
  'pipe',
  'lib',
  'README.md/notes.ts',
  'pipe/inner.ts',
  'git-link/hooks/pre-commit',
  'vendor/lib.js',
  'vendor/new.js',
  'src/vendor-link/lib.js',
  'certs/dev.pem',
  'docs/guide.md',
]);
const ctx: ToolContext = {
  workTree: root,
  runner: createRunner('bwrap', log),
  sandboxReadOnlyPaths: [],
  log,
  editable,
  touched: new Set(),
  scopeRequests: [],
  // The repository's .github/agent.yml `paths`: these win over the editable set.
  pathPolicy: { allow: [], deny: ['vendor/**', '*.pem'] },
};
const readOnlyCtx: ToolContext = { ...ctx, editable: undefined };
const allowOnlyCtx: ToolContext = { ...ctx, pathPolicy: { allow: ['src/**', 'test/**'], deny: [] } };
const records: ToolCallRecord[] = [];

afterAll(() => rmSync(base, { recursive: true, force: true }));

// ── The corpus ────────────────────────────────────────────────────────────────────────

interface Case {
  name: string;
  tool: string;
  input: unknown;
  /** The expected error code, when one is pinned. */
  code?: string;
  /** Must match message + hint + candidates: the field at fault or the fix. */
  mentions: RegExp;
  /** Run in a stage that may not edit (ctx.editable undefined). */
  readOnly?: boolean;
  /** Run where .github/agent.yml allows only src/** and test/**. */
  allowOnly?: boolean;
}

const validPlan = {
  summary: 'add() subtracts; make it add.',
  files_to_change: ['src/utils.ts'],
  files_to_read: [],
  steps: ['fix add'],
  verification: 'npm test',
  estimated_changed_lines: 1,
  confidence: 0.8,
};

const CASES: Case[] = [
  // unknown tools, including near-misses
  {
    name: 'kebab-case near-miss',
    tool: 'read-file',
    input: { path: 'README.md', start_line: 1, end_line: 5 },
    code: 'unknown_tool',
    mentions: /read_file/,
  },
  {
    name: 'PascalCase near-miss',
    tool: 'ReadFile',
    input: { path: 'README.md', start_line: 1, end_line: 5 },
    code: 'unknown_tool',
    mentions: /read_file/,
  },
  { name: 'upper-case near-miss', tool: 'EDIT_FILE', input: {}, code: 'unknown_tool', mentions: /edit_file/ },
  { name: 'trailing space', tool: 'list_files ', input: { path: '.' }, code: 'unknown_tool', mentions: /list_files/ },
  {
    name: 'tool of another agent',
    tool: 'write_file',
    input: { path: 'x', content: 'y' },
    code: 'unknown_tool',
    mentions: /create_file/,
  },
  { name: 'shell tool', tool: 'bash', input: { command: 'ls' }, code: 'unknown_tool', mentions: /run_command/ },
  { name: 'empty tool name', tool: '', input: {}, code: 'unknown_tool', mentions: /submit_plan/ },

  // list_files
  {
    name: 'missing path',
    tool: 'list_files',
    input: {},
    code: 'invalid_input',
    mentions: /path: required.*but missing/,
  },
  {
    name: 'empty path',
    tool: 'list_files',
    input: { path: '' },
    code: 'invalid_input',
    mentions: /path: must not be empty/,
  },
  {
    name: 'array for the path',
    tool: 'list_files',
    input: { path: ['src', 'lib'] },
    code: 'invalid_input',
    mentions: /path: .*received array/,
  },
  {
    name: 'extra field "recursive"',
    tool: 'list_files',
    input: { path: 'src', recursive: true },
    code: 'invalid_input',
    mentions: /"recursive": not a field of list_files; its fields are path/,
  },
  {
    name: 'input is null',
    tool: 'list_files',
    input: null,
    code: 'invalid_input',
    mentions: /received null.*\n?.*|call it like this: \{"path":"src"\}/,
  },
  {
    name: 'whole input as a JSON string',
    tool: 'list_files',
    input: '{"path":"src"}',
    code: 'invalid_input',
    mentions: /JSON encoded as a string/,
  },
  {
    name: '.. escape',
    tool: 'list_files',
    input: { path: '..' },
    code: 'path_outside_work_tree',
    mentions: /repository root/,
  },
  {
    name: 'symlink to a directory outside',
    tool: 'list_files',
    input: { path: 'out-link' },
    code: 'path_outside_work_tree',
    mentions: /symlink/,
  },
  {
    name: 'symlink into .git',
    tool: 'list_files',
    input: { path: 'git-link' },
    code: 'path_forbidden',
    mentions: /\.git/,
  },
  {
    name: 'NUL byte in the path',
    tool: 'list_files',
    input: { path: 'src\0/../..' },
    code: 'invalid_input',
    mentions: /path: must not contain NUL/,
  },
  {
    name: 'a file given as a directory',
    tool: 'list_files',
    input: { path: 'README.md' },
    code: 'not_a_directory',
    mentions: /read_file/,
  },
  {
    name: 'a FIFO given as a directory',
    tool: 'list_files',
    input: { path: 'pipe' },
    code: 'not_a_directory',
    mentions: /pipe is .*not a directory/,
  },
  { name: 'absent directory', tool: 'list_files', input: { path: 'scr' }, code: 'not_found', mentions: /closest: src/ },

  // read_file
  {
    name: 'missing start_line and end_line',
    tool: 'read_file',
    input: { path: 'README.md' },
    code: 'invalid_input',
    mentions: /start_line: required.*but missing\nend_line: required/,
  },
  {
    name: 'line numbers as strings',
    tool: 'read_file',
    input: { path: 'README.md', start_line: '1', end_line: '20' },
    code: 'invalid_input',
    mentions: /start_line: .*JSON encoded as a string: pass the value itself/,
  },
  {
    name: 'start_line 0',
    tool: 'read_file',
    input: { path: 'README.md', start_line: 0, end_line: 5 },
    code: 'invalid_input',
    mentions: /start_line: .*received number 0/,
  },
  {
    name: 'fractional end_line',
    tool: 'read_file',
    input: { path: 'README.md', start_line: 1, end_line: 2.5 },
    code: 'invalid_input',
    mentions: /end_line: .*int/,
  },
  {
    name: 'end before start',
    tool: 'read_file',
    input: { path: 'src/utils.ts', start_line: 9, end_line: 3 },
    code: 'invalid_range',
    mentions: /start_line 9, end_line 108/,
  },
  {
    name: 'start past the end',
    tool: 'read_file',
    input: { path: 'README.md', start_line: 50, end_line: 60 },
    code: 'invalid_range',
    mentions: /has 1 lines/,
  },
  {
    name: 'extra field "limit"',
    tool: 'read_file',
    input: { path: 'README.md', start_line: 1, end_line: 5, limit: 5 },
    code: 'invalid_input',
    mentions: /"limit": not a field of read_file/,
  },
  {
    name: 'null path',
    tool: 'read_file',
    input: { path: null, start_line: 1, end_line: 5 },
    code: 'invalid_input',
    mentions: /path: .*received null/,
  },
  {
    name: 'array for start_line',
    tool: 'read_file',
    input: { path: 'README.md', start_line: [1], end_line: 5 },
    code: 'invalid_input',
    mentions: /start_line: .*received array/,
  },
  {
    name: 'absolute path inside the tree',
    tool: 'read_file',
    input: { path: path.join(root, 'src/utils.ts'), start_line: 1, end_line: 5 },
    code: 'path_outside_work_tree',
    mentions: /e\.g\. "src\/utils\.ts"/,
  },
  {
    name: 'absolute path outside',
    tool: 'read_file',
    input: { path: '/etc/passwd', start_line: 1, end_line: 5 },
    code: 'path_outside_work_tree',
    mentions: /relative to the repository root/,
  },
  {
    name: '.. into the sentinel',
    tool: 'read_file',
    input: { path: `../${SENTINEL}/secret.txt`, start_line: 1, end_line: 5 },
    code: 'path_outside_work_tree',
    mentions: /leaves the repository/,
  },
  {
    name: '.. hidden mid-path',
    tool: 'read_file',
    input: { path: `src/../../${SENTINEL}/secret.txt`, start_line: 1, end_line: 5 },
    code: 'path_outside_work_tree',
    mentions: /leaves the repository/,
  },
  {
    name: 'through a symlink to outside',
    tool: 'read_file',
    input: { path: 'out-link/secret.txt', start_line: 1, end_line: 5 },
    code: 'path_outside_work_tree',
    mentions: /symlink/,
  },
  {
    name: 'relative symlink file to outside',
    tool: 'read_file',
    input: { path: 'src/rel-out.ts', start_line: 1, end_line: 5 },
    code: 'path_outside_work_tree',
    mentions: /symlink/,
  },
  {
    name: '.git directly',
    tool: 'read_file',
    input: { path: '.git/config', start_line: 1, end_line: 5 },
    code: 'path_forbidden',
    mentions: /\.git/,
  },
  {
    name: '.git by a case variant',
    tool: 'read_file',
    input: { path: '.GIT/config', start_line: 1, end_line: 5 },
    code: 'path_forbidden',
    mentions: /\.git/,
  },
  {
    name: 'symlink into .git',
    tool: 'read_file',
    input: { path: 'git-link/config', start_line: 1, end_line: 5 },
    code: 'path_forbidden',
    mentions: /symlink into \.git/,
  },
  {
    name: 'dangling symlink',
    tool: 'read_file',
    input: { path: 'src/dangling', start_line: 1, end_line: 5 },
    code: 'dangling_symlink',
    mentions: /target does not exist/,
  },
  {
    name: 'NUL byte in the path',
    tool: 'read_file',
    input: { path: 'README.md\0.png', start_line: 1, end_line: 5 },
    code: 'invalid_input',
    mentions: /path: must not contain NUL/,
  },
  {
    name: 'binary file',
    tool: 'read_file',
    input: { path: 'blob.bin', start_line: 1, end_line: 5 },
    code: 'binary_file',
    mentions: /binary \(10 bytes\)/,
  },
  {
    name: 'edit of a file over 2 MiB',
    tool: 'edit_file',
    input: { path: 'big.txt', old_text: 'aaa', new_text: 'b' },
    code: 'file_too_large',
    mentions: /3000000 bytes[\s\S]*generated/,
  },
  {
    name: 'FIFO',
    tool: 'read_file',
    input: { path: 'pipe', start_line: 1, end_line: 5 },
    code: 'not_a_file',
    mentions: /not a regular file/,
  },
  {
    name: 'a directory given as a file',
    tool: 'read_file',
    input: { path: 'src', start_line: 1, end_line: 5 },
    code: 'is_a_directory',
    mentions: /list_files/,
  },
  {
    name: 'a path under a file',
    tool: 'read_file',
    input: { path: 'README.md/x', start_line: 1, end_line: 5 },
    code: 'not_found',
    mentions: /no file README\.md\/x/,
  },
  {
    name: 'absent file, near miss',
    tool: 'read_file',
    input: { path: 'src/utilz.ts', start_line: 1, end_line: 5 },
    code: 'not_found',
    mentions: /closest: src\/utils\.ts/,
  },

  // search
  {
    name: 'unbalanced parenthesis',
    tool: 'search',
    input: { pattern: 'add(', path: '.' },
    code: 'invalid_pattern',
    mentions: /escape special characters/,
  },
  {
    name: 'unclosed class',
    tool: 'search',
    input: { pattern: '[a-', path: 'src' },
    code: 'invalid_pattern',
    mentions: /not a valid regular expression/,
  },
  {
    name: 'dangling repetition',
    tool: 'search',
    input: { pattern: '*foo', path: '.' },
    code: 'invalid_pattern',
    mentions: /repetition operator/,
  },
  {
    name: 'look-around (not supported)',
    tool: 'search',
    input: { pattern: '(?<=a)b', path: '.' },
    code: 'invalid_pattern',
    mentions: /look-around/,
  },
  {
    name: 'empty pattern',
    tool: 'search',
    input: { pattern: '', path: '.' },
    code: 'invalid_input',
    mentions: /pattern: /,
  },
  {
    name: 'missing path',
    tool: 'search',
    input: { pattern: 'add' },
    code: 'invalid_input',
    mentions: /path: required.*but missing/,
  },
  {
    name: 'array of patterns',
    tool: 'search',
    input: { pattern: ['add', 'sub'], path: '.' },
    code: 'invalid_input',
    mentions: /pattern: .*received array/,
  },
  {
    name: 'extra field "glob"',
    tool: 'search',
    input: { pattern: 'add', path: '.', glob: '*.ts' },
    code: 'invalid_input',
    mentions: /"glob": not a field of search; its fields are pattern, path/,
  },
  {
    name: '.. escape',
    tool: 'search',
    input: { pattern: 'token', path: `../${SENTINEL}` },
    code: 'path_outside_work_tree',
    mentions: /repository root/,
  },
  {
    name: 'symlink to outside',
    tool: 'search',
    input: { pattern: 'secret', path: 'out-link' },
    code: 'path_outside_work_tree',
    mentions: /symlink/,
  },
  {
    name: '.git directly',
    tool: 'search',
    input: { pattern: 'core', path: '.git' },
    code: 'path_forbidden',
    mentions: /\.git/,
  },
  {
    name: 'absent path',
    tool: 'search',
    input: { pattern: 'add', path: 'srcs' },
    code: 'not_found',
    mentions: /list_files/,
  },

  // edit_file
  {
    name: 'missing new_text',
    tool: 'edit_file',
    input: { path: 'src/utils.ts', old_text: 'a - b' },
    code: 'invalid_input',
    mentions: /new_text: required.*but missing/,
  },
  {
    name: 'empty old_text',
    tool: 'edit_file',
    input: { path: 'src/utils.ts', old_text: '', new_text: 'x' },
    code: 'invalid_input',
    mentions: /old_text: /,
  },
  {
    name: 'old_text as an object',
    tool: 'edit_file',
    input: { path: 'src/utils.ts', old_text: { line: 2 }, new_text: 'x' },
    code: 'invalid_input',
    mentions: /old_text: .*received object/,
  },
  {
    name: 'line-range style fields',
    tool: 'edit_file',
    input: { path: 'src/utils.ts', start_line: 2, end_line: 2, new_text: 'x' },
    code: 'invalid_input',
    mentions: /"start_line", "end_line": not a field of edit_file; its fields are path, old_text, new_text/,
  },
  {
    name: 'extra field "replace_all"',
    tool: 'edit_file',
    input: { path: 'src/dup.ts', old_text: 'x = 1;', new_text: 'x = 2;', replace_all: true },
    code: 'invalid_input',
    mentions: /"replace_all": not a field/,
  },
  {
    name: 'whole input as a JSON string',
    tool: 'edit_file',
    input: JSON.stringify({ path: 'src/utils.ts', old_text: 'a - b', new_text: 'a + b' }),
    code: 'invalid_input',
    mentions: /JSON encoded as a string\?\)[\s\S]*call it like this/,
  },
  {
    name: 'absent target',
    tool: 'edit_file',
    input: { path: 'src/utils.ts', old_text: '  return a * b;', new_text: '  return a + b;' },
    code: 'old_text_not_found',
    mentions: /lines 2-2 .*"\*"/,
  },
  {
    name: 'indentation-only difference (spaces)',
    tool: 'edit_file',
    input: { path: 'src/utils.ts', old_text: '    return a - b;\n}', new_text: '    return a + b;\n}' },
    code: 'old_text_not_found',
    mentions: /lines 2-3 \(indentation differs\)/,
  },
  {
    name: 'indentation-only difference (tab)',
    tool: 'edit_file',
    input: { path: 'src/utils.ts', old_text: '\treturn a - b;', new_text: '\treturn a + b;' },
    code: 'old_text_not_found',
    mentions: /line(s)? 2-2 \(indentation differs\)/,
  },
  {
    name: 'inner whitespace difference',
    tool: 'edit_file',
    input: { path: 'src/utils.ts', old_text: '  return a  -  b;', new_text: '  return a + b;' },
    code: 'old_text_not_found',
    mentions: /lines 2-2 \(whitespace differs\)/,
  },
  {
    name: 'CRLF line endings',
    tool: 'edit_file',
    input: {
      path: 'src/utils.ts',
      old_text: 'export function add(a: number, b: number) {\r\n  return a - b;',
      new_text: 'x',
    },
    code: 'old_text_not_found',
    mentions: /lines 1-2 \(line endings differ \(the file uses LF, old_text CRLF\)\)/,
  },
  {
    name: 'nothing similar',
    tool: 'edit_file',
    input: { path: 'src/utils.ts', old_text: 'zebra giraffe okapi', new_text: 'x' },
    code: 'old_text_not_found',
    mentions: /(no region is similar|"zebra", "giraffe", "okapi")[\s\S]*read_file src\/utils\.ts/,
  },
  {
    name: 'non-unique target',
    tool: 'edit_file',
    input: { path: 'src/dup.ts', old_text: 'x = 1;', new_text: 'x = 3;' },
    code: 'old_text_not_unique',
    mentions: /3 times in src\/dup\.ts, at lines 1, 2, 4/,
  },
  {
    name: 'identical old and new',
    tool: 'edit_file',
    input: { path: 'src/utils.ts', old_text: 'a - b', new_text: 'a - b' },
    code: 'no_change',
    mentions: /identical/,
  },
  {
    name: 'breaks TypeScript',
    tool: 'edit_file',
    input: { path: 'src/utils.ts', old_text: '  return a - b;', new_text: '  return a - ;' },
    code: 'syntax_error',
    mentions: /TypeScript says at line 2/,
  },
  {
    name: 'breaks JavaScript',
    tool: 'edit_file',
    input: { path: 'src/app.js', old_text: '  return 1;\n}', new_text: '  return (1;\n}' },
    code: 'syntax_error',
    mentions: /not changed[\s\S]*line 2/,
  },
  {
    name: 'breaks JSON',
    tool: 'edit_file',
    input: { path: 'config.json', old_text: '"name": "demo",', new_text: '"name": "demo",,' },
    code: 'syntax_error',
    mentions: /JSON says at line \d+/,
  },
  {
    name: 'breaks YAML',
    tool: 'edit_file',
    input: { path: 'ci.yml', old_text: '    runs-on: ubuntu-latest', new_text: '    runs-on: [ubuntu-latest' },
    code: 'syntax_error',
    mentions: /YAML says at line \d+/,
  },
  {
    name: 'outside the plan',
    tool: 'edit_file',
    input: { path: 'lib/util.ts', old_text: 'x = 1', new_text: 'x = 2' },
    code: 'outside_scope',
    mentions: /request_scope with path "lib\/util\.ts"/,
  },
  {
    name: 'in a read-only stage',
    tool: 'edit_file',
    input: { path: 'src/utils.ts', old_text: 'a - b', new_text: 'a + b' },
    code: 'read_only_stage',
    mentions: /may not change files/,
    readOnly: true,
  },
  {
    name: 'non-UTF-8 file',
    tool: 'edit_file',
    input: { path: 'latin1.txt', old_text: 'cr', new_text: 'CR' },
    code: 'not_utf8',
    mentions: /not valid UTF-8/,
  },
  {
    name: 'binary file',
    tool: 'edit_file',
    input: { path: 'blob.bin', old_text: 'ELF', new_text: 'FLE' },
    code: 'binary_file',
    mentions: /binary/,
  },
  {
    name: 'FIFO',
    tool: 'edit_file',
    input: { path: 'pipe', old_text: 'a', new_text: 'b' },
    code: 'not_a_file',
    mentions: /not a regular file/,
  },
  {
    name: 'a directory given as a file',
    tool: 'edit_file',
    input: { path: 'lib', old_text: 'a', new_text: 'b' },
    code: 'not_a_file',
    mentions: /not a regular file/,
  },
  {
    name: 'symlink inside the tree',
    tool: 'edit_file',
    input: { path: 'src/alias.ts', old_text: 'a - b', new_text: 'a + b' },
    code: 'symlink',
    mentions: /utils\.ts/,
  },
  {
    name: 'symlink to outside',
    tool: 'edit_file',
    input: { path: 'out-file.ts', old_text: 'do not', new_text: 'do' },
    code: 'path_outside_work_tree',
    mentions: /symlink/,
  },
  {
    name: 'relative symlink to outside, in scope',
    tool: 'edit_file',
    input: { path: 'src/rel-out.ts', old_text: 's3cret', new_text: 'pwned' },
    code: 'path_outside_work_tree',
    mentions: /symlink/,
  },
  {
    name: 'symlink into .git',
    tool: 'edit_file',
    input: { path: 'src/cfg', old_text: '[core]', new_text: '[core]\n\thooksPath = /tmp' },
    code: 'path_forbidden',
    mentions: /\.git/,
  },
  {
    name: '.git/config directly',
    tool: 'edit_file',
    input: { path: '.git/config', old_text: '[core]', new_text: '[x]' },
    code: 'path_forbidden',
    mentions: /\.git/,
  },
  {
    name: 'absolute path',
    tool: 'edit_file',
    input: { path: path.join(sentinel, 'secret.txt'), old_text: 'do', new_text: 'x' },
    code: 'path_outside_work_tree',
    mentions: /relative to the repository root/,
  },
  {
    name: 'NUL byte in the path',
    tool: 'edit_file',
    input: { path: 'src/utils.ts\0', old_text: 'a', new_text: 'b' },
    code: 'invalid_input',
    mentions: /path: must not contain NUL/,
  },
  {
    name: 'absent file, near miss',
    tool: 'edit_file',
    input: { path: 'src/utilz.ts', old_text: 'a', new_text: 'b' },
    code: 'not_found',
    mentions: /closest: src\/utils\.ts/,
  },
  {
    name: 'denied by the repository, though planned',
    tool: 'edit_file',
    input: { path: 'vendor/lib.js', old_text: '1', new_text: '2' },
    code: 'path_denied',
    mentions: /deny glob "vendor\/\*\*"[\s\S]*leave it unchanged or explain in finish_change/,
  },
  {
    name: 'denied directory through a symlink',
    tool: 'edit_file',
    input: { path: 'src/vendor-link/lib.js', old_text: '1', new_text: '2' },
    code: 'path_denied',
    mentions: /through a symlink to vendor\/lib\.js.*"vendor\/\*\*"/,
  },
  {
    name: 'outside the allowed globs',
    tool: 'edit_file',
    input: { path: 'config.json', old_text: 'demo', new_text: 'x' },
    code: 'path_denied',
    mentions: /none of the allow globs .*"src\/\*\*", "test\/\*\*"/,
    allowOnly: true,
  },

  // create_file
  {
    name: 'existing file',
    tool: 'create_file',
    input: { path: 'src/utils.ts', content: 'export {};\n' },
    code: 'already_exists',
    mentions: /edit_file/,
  },
  {
    name: 'existing directory',
    tool: 'create_file',
    input: { path: 'lib', content: 'x' },
    code: 'already_exists',
    mentions: /already exists/,
  },
  {
    name: 'existing FIFO',
    tool: 'create_file',
    input: { path: 'pipe', content: 'x' },
    code: 'already_exists',
    mentions: /already exists/,
  },
  {
    name: 'under an existing file',
    tool: 'create_file',
    input: { path: 'README.md/notes.ts', content: 'export {};\n' },
    code: 'not_a_directory',
    mentions: /README\.md is not a directory/,
  },
  {
    name: 'under a FIFO',
    tool: 'create_file',
    input: { path: 'pipe/inner.ts', content: 'export {};\n' },
    code: 'not_a_directory',
    mentions: /pipe is not a directory/,
  },
  {
    name: 'outside the plan',
    tool: 'create_file',
    input: { path: 'src/other.ts', content: 'export {};\n' },
    code: 'outside_scope',
    mentions: /request_scope/,
  },
  {
    name: 'in a read-only stage',
    tool: 'create_file',
    input: { path: 'src/new.ts', content: 'export {};\n' },
    code: 'read_only_stage',
    mentions: /may not change files/,
    readOnly: true,
  },
  {
    name: 'broken TypeScript',
    tool: 'create_file',
    input: { path: 'src/new.ts', content: 'export const = ;\n' },
    code: 'syntax_error',
    mentions: /not created[\s\S]*line 1[\s\S]*in content around that line/,
  },
  {
    name: 'broken JSON',
    tool: 'create_file',
    input: { path: 'new.json', content: '{"a": }' },
    code: 'syntax_error',
    mentions: /JSON says at line 1/,
  },
  {
    name: 'missing content',
    tool: 'create_file',
    input: { path: 'src/new.ts' },
    code: 'invalid_input',
    mentions: /content: required.*but missing/,
  },
  {
    name: 'content as an array of lines',
    tool: 'create_file',
    input: { path: 'src/new.ts', content: ['export {};'] },
    code: 'invalid_input',
    mentions: /content: .*received array/,
  },
  {
    name: 'extra field "overwrite"',
    tool: 'create_file',
    input: { path: 'src/utils.ts', content: 'x', overwrite: true },
    code: 'invalid_input',
    mentions: /"overwrite": not a field of create_file/,
  },
  {
    name: 'empty path',
    tool: 'create_file',
    input: { path: '', content: 'x' },
    code: 'invalid_input',
    mentions: /path: must not be empty/,
  },
  {
    name: 'through a symlink to outside',
    tool: 'create_file',
    input: { path: 'out-link/evil.ts', content: 'x' },
    code: 'path_outside_work_tree',
    mentions: /symlink/,
  },
  {
    name: '.. into the sentinel',
    tool: 'create_file',
    input: { path: `../${SENTINEL}/evil.ts`, content: 'x' },
    code: 'path_outside_work_tree',
    mentions: /leaves the repository/,
  },
  {
    name: 'git hook through a symlink',
    tool: 'create_file',
    input: { path: 'git-link/hooks/pre-commit', content: '#!/bin/sh\nexit 0\n' },
    code: 'path_forbidden',
    mentions: /\.git/,
  },
  {
    name: 'NUL byte in the path',
    tool: 'create_file',
    input: { path: 'src/new.ts\0.sh', content: 'x' },
    code: 'invalid_input',
    mentions: /path: must not contain NUL/,
  },
  {
    name: 'denied by a glob without "/" at any depth',
    tool: 'create_file',
    input: { path: 'certs/dev.pem', content: 'x' },
    code: 'path_denied',
    mentions: /deny glob "\*\.pem"/,
  },
  {
    name: 'into a denied directory',
    tool: 'create_file',
    input: { path: 'vendor/new.js', content: 'module.exports = 2;\n' },
    code: 'path_denied',
    mentions: /"vendor\/\*\*"[\s\S]*agent\.yml/,
  },
  {
    name: 'outside the allowed globs',
    tool: 'create_file',
    input: { path: 'docs/guide.md', content: '# guide\n' },
    code: 'path_denied',
    mentions: /docs\/guide\.md matches none of the allow globs/,
    allowOnly: true,
  },

  // request_scope
  {
    name: 'empty reason',
    tool: 'request_scope',
    input: { path: 'lib/util.ts', reason: '' },
    code: 'invalid_input',
    mentions: /reason: say why, in a sentence/,
  },
  {
    name: 'too-short reason',
    tool: 'request_scope',
    input: { path: 'lib/util.ts', reason: 'bug' },
    code: 'invalid_input',
    mentions: /reason: say why/,
  },
  {
    name: 'whitespace-only reason',
    tool: 'request_scope',
    input: { path: 'lib/util.ts', reason: '              ' },
    code: 'invalid_input',
    mentions: /reason: say why/,
  },
  {
    name: 'reason too long',
    tool: 'request_scope',
    input: { path: 'lib/util.ts', reason: 'because '.repeat(100) },
    code: 'invalid_input',
    mentions: /reason: .*500/,
  },
  {
    name: 'missing reason',
    tool: 'request_scope',
    input: { path: 'lib/util.ts' },
    code: 'invalid_input',
    mentions: /reason: required.*but missing/,
  },
  {
    name: 'path outside the tree',
    tool: 'request_scope',
    input: { path: `../${SENTINEL}/config.ts`, reason: 'the token lives in this file and must change' },
    code: 'path_outside_work_tree',
    mentions: /repository root/,
  },
  {
    name: 'absolute path',
    tool: 'request_scope',
    input: { path: '/etc/hosts', reason: 'the test needs a host entry for the server' },
    code: 'path_outside_work_tree',
    mentions: /relative to the repository root/,
  },
  {
    name: 'path into .git',
    tool: 'request_scope',
    input: { path: '.git/hooks/pre-push', reason: 'the hook must run the tests before pushing' },
    code: 'path_forbidden',
    mentions: /\.git/,
  },
  {
    name: 'symlink into .git',
    tool: 'request_scope',
    input: { path: 'git-link/config', reason: 'the remote must point to the fork instead' },
    code: 'path_forbidden',
    mentions: /\.git/,
  },
  {
    name: 'in a read-only stage',
    tool: 'request_scope',
    input: { path: 'lib/util.ts', reason: 'the constant x is defined here and is wrong' },
    code: 'read_only_stage',
    mentions: /scope cannot grow/,
    readOnly: true,
  },
  {
    name: 'widening onto a denied file',
    tool: 'request_scope',
    input: { path: 'vendor/lib.js', reason: 'the bundled copy has the same bug and must change too' },
    code: 'path_denied',
    mentions: /"vendor\/\*\*"[\s\S]*does not let the agent edit it/,
  },
  {
    name: 'widening onto a denied new file',
    tool: 'request_scope',
    input: { path: 'keys/deploy.pem', reason: 'the tests need a key to sign the fixture with' },
    code: 'path_denied',
    mentions: /"\*\.pem"/,
  },
  {
    name: 'widening outside the allowed globs',
    tool: 'request_scope',
    input: { path: 'lib/util.ts', reason: 'the constant x is defined here and is wrong' },
    code: 'path_denied',
    mentions: /allow globs/,
    allowOnly: true,
  },

  // run_command
  {
    name: 'timeout_seconds 0',
    tool: 'run_command',
    input: { command: 'true', timeout_seconds: 0 },
    code: 'invalid_input',
    mentions: /timeout_seconds: .*received number 0/,
  },
  {
    name: 'timeout_seconds too large',
    tool: 'run_command',
    input: { command: 'true', timeout_seconds: 3600 },
    code: 'invalid_input',
    mentions: /timeout_seconds: .*600/,
  },
  {
    name: 'non-integer timeout_seconds',
    tool: 'run_command',
    input: { command: 'true', timeout_seconds: 1.5 },
    code: 'invalid_input',
    mentions: /timeout_seconds: .*int/,
  },
  {
    name: 'timeout_seconds as a string',
    tool: 'run_command',
    input: { command: 'true', timeout_seconds: '30' },
    code: 'invalid_input',
    mentions: /timeout_seconds: .*JSON encoded as a string/,
  },
  {
    name: 'negative timeout_seconds',
    tool: 'run_command',
    input: { command: 'true', timeout_seconds: -5 },
    code: 'invalid_input',
    mentions: /timeout_seconds: /,
  },
  {
    name: 'missing timeout_seconds',
    tool: 'run_command',
    input: { command: 'npm test' },
    code: 'invalid_input',
    mentions: /timeout_seconds: required.*but missing/,
  },
  {
    name: 'empty command',
    tool: 'run_command',
    input: { command: '', timeout_seconds: 10 },
    code: 'invalid_input',
    mentions: /command: /,
  },
  {
    name: 'argv array for the command',
    tool: 'run_command',
    input: { command: ['npm', 'test'], timeout_seconds: 10 },
    code: 'invalid_input',
    mentions: /command: .*received array/,
  },
  {
    name: 'extra field "cwd"',
    tool: 'run_command',
    input: { command: 'ls', timeout_seconds: 10, cwd: '/' },
    code: 'invalid_input',
    mentions: /"cwd": not a field of run_command/,
  },
  { name: 'input is null', tool: 'run_command', input: null, code: 'invalid_input', mentions: /received null/ },
  {
    name: 'a command that hangs',
    tool: 'run_command',
    input: { command: 'echo started; sleep 1000', timeout_seconds: 1 },
    code: 'command_timed_out',
    mentions: /1s limit[\s\S]*started[\s\S]*timeout_seconds/,
  },

  // submit_plan
  {
    name: 'confidence above 1',
    tool: 'submit_plan',
    input: { ...validPlan, confidence: 2 },
    code: 'invalid_input',
    mentions: /confidence: .*received number 2/,
  },
  {
    name: 'confidence as a percentage',
    tool: 'submit_plan',
    input: { ...validPlan, confidence: 85 },
    code: 'invalid_input',
    mentions: /confidence: .*from 0 to 1/,
  },
  {
    name: 'negative confidence',
    tool: 'submit_plan',
    input: { ...validPlan, confidence: -0.1 },
    code: 'invalid_input',
    mentions: /confidence: /,
  },
  {
    name: 'confidence as a string',
    tool: 'submit_plan',
    input: { ...validPlan, confidence: '0.8' },
    code: 'invalid_input',
    mentions: /confidence: .*JSON encoded as a string/,
  },
  {
    name: 'confidence as a word',
    tool: 'submit_plan',
    input: { ...validPlan, confidence: 'high' },
    code: 'invalid_input',
    mentions: /confidence: .*received string "high"/,
  },
  {
    name: 'empty files_to_change',
    tool: 'submit_plan',
    input: { ...validPlan, files_to_change: [] },
    code: 'invalid_input',
    mentions: /files_to_change: /,
  },
  {
    name: 'empty steps',
    tool: 'submit_plan',
    input: { ...validPlan, steps: [] },
    code: 'invalid_input',
    mentions: /steps: /,
  },
  {
    name: 'an empty step',
    tool: 'submit_plan',
    input: { ...validPlan, steps: ['read', ''] },
    code: 'invalid_input',
    mentions: /steps\.1: /,
  },
  {
    name: 'files_to_change as a JSON string',
    tool: 'submit_plan',
    input: { ...validPlan, files_to_change: '["src/utils.ts"]' },
    code: 'invalid_input',
    mentions: /files_to_change: .*JSON encoded as a string: pass the value itself/,
  },
  {
    name: 'a file as a string, not a list',
    tool: 'submit_plan',
    input: { ...validPlan, files_to_change: 'src/utils.ts' },
    code: 'invalid_input',
    mentions: /files_to_change: .*array/,
  },
  {
    name: 'missing verification',
    tool: 'submit_plan',
    input: { ...validPlan, verification: undefined },
    code: 'invalid_input',
    mentions: /verification: required.*but missing/,
  },
  {
    name: 'extra field "risks"',
    tool: 'submit_plan',
    input: { ...validPlan, risks: ['none'] },
    code: 'invalid_input',
    mentions: /"risks": not a field of submit_plan/,
  },
  {
    name: 'whole plan as a JSON string',
    tool: 'submit_plan',
    input: JSON.stringify(validPlan),
    code: 'invalid_input',
    mentions: /JSON encoded as a string/,
  },
  {
    name: 'plan wrapped in an array',
    tool: 'submit_plan',
    input: [validPlan],
    code: 'invalid_input',
    mentions: /received array/,
  },

  // finish_change
  {
    name: 'before any change',
    tool: 'finish_change',
    input: { summary: 'fixed add() so that it adds' },
    code: 'nothing_changed',
    mentions: /edit_file or create_file/,
  },
  {
    name: 'empty summary',
    tool: 'finish_change',
    input: { summary: '' },
    code: 'invalid_input',
    mentions: /summary: /,
  },
  {
    name: 'null summary',
    tool: 'finish_change',
    input: { summary: null },
    code: 'invalid_input',
    mentions: /summary: .*received null/,
  },
  {
    name: 'no input at all',
    tool: 'finish_change',
    input: undefined,
    code: 'invalid_input',
    mentions: /received undefined/,
  },
  {
    name: 'extra field "files"',
    tool: 'finish_change',
    input: { summary: 'done', files: ['src/utils.ts'] },
    code: 'invalid_input',
    mentions: /"files": not a field of finish_change; its fields are summary/,
  },
  {
    name: 'summary as a JSON string of an object',
    tool: 'finish_change',
    input: '{"summary":"done"}',
    code: 'invalid_input',
    mentions: /JSON encoded as a string/,
  },
];

function errorText(a: ToolAnswer): string {
  if (a.ok) return '';
  return [a.error.message, a.error.hint ?? '', ...(a.error.candidates ?? [])].join('\n');
}

const tally = { byTool: new Map<string, number>(), byCode: new Map<string, number>() };
const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);

describe('hostile tool-call corpus', () => {
  for (const [i, c] of CASES.entries()) {
    it(`${String(i + 1).padStart(3)} ${c.tool || '(empty)'}: ${c.name}`, async () => {
      const callCtx = c.readOnly ? readOnlyCtx : c.allowOnly ? allowOnlyCtx : ctx;
      let answer: ToolAnswer | undefined;
      let thrown: unknown;
      try {
        answer = await callTool(ALL, c.tool, c.input, callCtx, (r) => records.push(r));
      } catch (err) {
        thrown = err;
      }
      expect(thrown, 'callTool must never throw').toBeUndefined();
      if (!answer) throw new Error('no answer');
      expect(answer.ok, answer.ok ? `unexpected success: ${answer.output}` : '').toBe(false);
      if (answer.ok) return;
      if (process.env.CORPUS_DUMP) console.log(`── ${c.tool}: ${c.name}\n${answerText(answer)}`);
      bump(tally.byTool, TOOL_NAMES.includes(c.tool) ? c.tool : '(unknown tool)');
      bump(tally.byCode, answer.error.code);
      expect(answer.error.code).toMatch(/^[a-z][a-z0-9_]*$/);
      expect(answer.error.code, `${answer.error.code}: ${answer.error.message}`).not.toBe('internal_error');
      if (c.code) expect(answer.error.code, errorText(answer)).toBe(c.code);
      expect(errorText(answer)).toMatch(c.mentions);
    });
  }

  it('bounds a flood of output with an explicit omitted marker', async () => {
    const a = await callTool(
      ALL,
      'run_command',
      { command: 'yes | head -c 5000000', timeout_seconds: 30 },
      ctx,
      () => {},
    );
    if (!a.ok) throw new Error(`expected success, got ${a.error.code}: ${a.error.message}`);
    expect(a.output.length).toBeLessThan(25_000);
    expect(a.output).toMatch(/omitted/);
    expect(a.output).toMatch(
      /\[exit code 0; output was \d+ bytes longer than shown; filter it \(grep, tail\) to see the part you need; \d+ ms\]$/,
    );
    if (process.env.CORPUS_DUMP)
      console.log(
        `── flood (${a.output.length} chars)\n${a.output
          .split('\n')
          .filter((l) => l !== 'y')
          .join('\n')}`,
      );
  });

  it('changed nothing: the sentinel, .git/config and the whole work tree are byte-identical', () => {
    expect(snapshot(sentinel)).toEqual(sentinelBefore);
    expect(readFileSync(path.join(root, '.git/config')).equals(gitConfigBefore)).toBe(true);
    expect(snapshot(root)).toEqual(treeBefore);
    expect([...ctx.touched]).toEqual([]);
    expect(ctx.scopeRequests).toEqual([]);
    expect(records.length).toBe(CASES.length);
    expect(records.every((r) => !r.ok && r.errorCode && r.errorCode !== 'internal_error')).toBe(true);
  });

  // Found by this corpus; search.ts hands a FIFO to rg, which blocks opening it forever.
  // When search refuses non-regular files, this starts failing: move the call into CASES.
  it('search with a FIFO as its path answers instead of blocking', async () => {
    const pending = callTool(ALL, 'search', { pattern: 'x', path: 'pipe' }, ctx, () => {});
    const first = await Promise.race([pending, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 3000))]);
    if (first === 'hung') {
      // Release rg (the FIFO's only reader) so no process outlives the test: a writer that closes at once.
      closeSync(openSync(path.join(root, 'pipe'), constants.O_WRONLY | constants.O_NONBLOCK));
      await pending;
    }
    expect(first).not.toBe('hung');
    expect(first).toMatchObject({ ok: false, error: { code: 'not_a_file' } });
  });

  it('covers at least 70 cases across all nine tools, and prints the tally', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(70);
    for (const name of TOOL_NAMES)
      expect(
        CASES.some((c) => c.tool === name),
        name,
      ).toBe(true);
    const rows = (m: Map<string, number>) =>
      [...m]
        .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
        .map(([k, n]) => `  ${k.padEnd(24)} ${String(n).padStart(3)}`);
    console.log(
      [
        `hostile tool-call corpus: ${CASES.length} cases`,
        'per tool:',
        ...rows(tally.byTool),
        'per error code:',
        ...rows(tally.byCode),
      ].join('\n'),
    );
  });
});
