import path from 'node:path';
import ts from 'typescript';
import { parseAllDocuments } from 'yaml';

export interface SyntaxProblem {
  line: number;
  column: number;
  message: string;
  parser: string;
}

const TS_KINDS: Record<string, ts.ScriptKind> = {
  '.js': ts.ScriptKind.JS,
  '.cjs': ts.ScriptKind.JS,
  '.mjs': ts.ScriptKind.JS,
  '.jsx': ts.ScriptKind.JSX,
  '.ts': ts.ScriptKind.TS,
  '.cts': ts.ScriptKind.TS,
  '.mts': ts.ScriptKind.TS,
  '.tsx': ts.ScriptKind.TSX,
};

function tsProblem(file: string, text: string, kind: ts.ScriptKind): SyntaxProblem | undefined {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, kind);
  // parseDiagnostics holds what the parser alone found: syntax, not types.
  const diagnostics = (source as unknown as { parseDiagnostics?: ts.Diagnostic[] }).parseDiagnostics ?? [];
  const first = diagnostics[0];
  if (!first) return undefined;
  const pos = source.getLineAndCharacterOfPosition(first.start ?? 0);
  return {
    line: pos.line + 1,
    column: pos.character + 1,
    message: ts.flattenDiagnosticMessageText(first.messageText, ' '),
    parser: 'TypeScript',
  };
}

function jsonProblem(file: string, text: string): SyntaxProblem | undefined {
  // TypeScript's JSON parser accepts comments and trailing commas, as tsconfig and
  // .vscode files use them; anything it rejects is broken for every reader.
  const source = ts.parseJsonText(file, text);
  const first = (source as unknown as { parseDiagnostics?: ts.Diagnostic[] }).parseDiagnostics?.[0];
  if (!first) return undefined;
  const pos = source.getLineAndCharacterOfPosition(first.start ?? 0);
  return {
    line: pos.line + 1,
    column: pos.character + 1,
    message: ts.flattenDiagnosticMessageText(first.messageText, ' '),
    parser: 'JSON',
  };
}

function yamlProblem(text: string): SyntaxProblem | undefined {
  for (const doc of parseAllDocuments(text)) {
    const err = doc.errors[0];
    if (err) {
      const pos = err.linePos?.[0];
      return { line: pos?.line ?? 1, column: pos?.col ?? 1, message: err.message.split('\n')[0]!, parser: 'YAML' };
    }
  }
  return undefined;
}

/** The first syntax error in a file we know how to parse; undefined when it parses or we cannot tell. */
export function syntaxProblem(relPath: string, text: string): SyntaxProblem | undefined {
  const ext = path.extname(relPath).toLowerCase();
  const kind = TS_KINDS[ext];
  if (kind !== undefined) return tsProblem(relPath, text, kind);
  if (ext === '.json' || ext === '.jsonc') return jsonProblem(relPath, text);
  if (ext === '.yml' || ext === '.yaml') return yamlProblem(text);
  return undefined;
}

/**
 * Lint on edit: the new text must parse if the old one did. A file that was already
 * broken is not held to it, so the model can repair it step by step.
 */
export function introducedSyntaxProblem(
  relPath: string,
  before: string | undefined,
  after: string,
): SyntaxProblem | undefined {
  const now = syntaxProblem(relPath, after);
  if (!now) return undefined;
  if (before !== undefined && syntaxProblem(relPath, before)) return undefined;
  return now;
}

/** The lines around `line`, numbered, for an error message. */
export function excerptAround(text: string, line: number, radius = 2): string {
  const lines = text.split('\n');
  const from = Math.max(1, line - radius);
  const to = Math.min(lines.length, line + radius);
  const width = String(to).length;
  return lines
    .slice(from - 1, to)
    .map((l, i) => `${String(from + i).padStart(width)}${from + i === line ? '>' : '│'}${l}`)
    .join('\n');
}
