import { describe, expect, it } from 'vitest';
import { introducedSyntaxProblem, syntaxProblem } from './syntax.js';

describe('syntax checks', () => {
  it('finds the first syntax error with its line in JS, TS, JSON and YAML', () => {
    expect(syntaxProblem('a.js', 'function f() {\n  return 1;\n')).toMatchObject({
      parser: 'TypeScript',
      line: 3,
      message: expect.stringContaining("'}' expected"),
    });
    expect(syntaxProblem('a.ts', 'const x: number = ;\n')).toMatchObject({ line: 1, message: 'Expression expected.' });
    expect(syntaxProblem('a.tsx', 'const x = <div>{1}</div>;\n')).toBeUndefined();
    expect(syntaxProblem('a.json', '{\n  "a": 1\n  "b": 2\n}\n')).toMatchObject({ parser: 'JSON', line: 3 });
    expect(syntaxProblem('tsconfig.json', '{\n  // comments are fine here\n  "a": 1,\n}\n')).toBeUndefined();
    expect(syntaxProblem('c.yml', 'a: [1, 2\nb: 3\n')).toMatchObject({ parser: 'YAML' });
    expect(syntaxProblem('README.md', '# {{{')).toBeUndefined();
  });

  it('holds an edit to parsing only when the file parsed before', () => {
    expect(introducedSyntaxProblem('a.js', 'ok();\n', 'ok(;\n')).toBeDefined();
    expect(introducedSyntaxProblem('a.js', 'broken(;\n', 'still(;\n')).toBeUndefined();
    expect(introducedSyntaxProblem('new.js', undefined, 'x = ;')).toBeDefined();
  });

  it('does not take types for syntax', () => {
    expect(syntaxProblem('a.ts', 'const x: number = "a string";\n')).toBeUndefined();
  });
});
