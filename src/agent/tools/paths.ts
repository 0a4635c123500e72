import { lstat, realpath } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { checkPathPolicy } from './path-policy.js';
import { editDistance } from '../../util/edit-distance.js';
import { runRipgrep } from './ripgrep.js';
import { ToolFailure, type ToolContext } from './tool.js';

const MAX_LISTING_BYTES = 64 * 1024 * 1024;

/**
 * The repository's files (respecting .gitignore, without .git), relative to the work tree.
 * `signal` (the job's) stops the listing with an 'aborted' tool error.
 */
export async function listTreeFiles(workTree: string, under = '.', signal?: AbortSignal): Promise<string[]> {
  // Nor what installs fetched into the tree (TOOL_DIR), whatever the repository's ignore files say.
  const listed = await runRipgrep(
    ['--files', '--hidden', '--no-follow', '--glob', '!.git', '--glob', '!/.issue-agent', '--', under],
    {
      cwd: workTree,
      what: `listing the files under ${under}`,
      ...(signal ? { signal } : {}),
      maxBytes: MAX_LISTING_BYTES,
    },
  );
  // rg exits 1 when there are no files.
  if (listed.exitCode === 1) return [];
  if (listed.exitCode !== 0)
    throw new Error(`rg --files failed (exit code ${listed.exitCode}): ${listed.stderr.trim()}`);
  return listed.lines.map((f) => path.normalize(f)).sort();
}

/** Existing paths closest to `wanted`: the same basename anywhere, then by edit distance. */
export function closestPaths(wanted: string, files: string[], limit = 5): string[] {
  const base = path.basename(wanted).toLowerCase();
  const sameBase = files.filter((f) => path.basename(f).toLowerCase() === base);
  const byDistance = files
    .map((f) => ({
      f,
      d: Math.min(
        editDistance(wanted.toLowerCase(), f.toLowerCase()),
        editDistance(base, path.basename(f).toLowerCase()) + 2,
      ),
    }))
    .filter(({ d }) => d <= Math.max(3, Math.floor(wanted.length / 3)))
    .sort((a, b) => a.d - b.d || a.f.localeCompare(b.f))
    .map(({ f }) => f);
  return [...new Set([...sameBase, ...byDistance])].slice(0, limit);
}

/** A path field of a tool: relative to the repository root, no NUL bytes. */
export function relPath(description: string) {
  return z
    .string()
    .min(1, 'must not be empty')
    .max(4096)
    .refine((p) => !p.includes('\0'), 'must not contain NUL bytes')
    .describe(description);
}

function insideGitDir(rel: string): boolean {
  const first = rel.split(path.sep)[0]!.toLowerCase();
  return first === '.git';
}

/** Edits never write through a symlink: the link's target may be outside the edit scope. */
export async function assertNotSymlink(abs: string, rel: string): Promise<void> {
  const st = await lstat(abs).catch(() => undefined);
  if (st?.isSymbolicLink()) {
    const target = await realpath(abs).catch(() => '(dangling)');
    throw new ToolFailure({
      code: 'symlink',
      message: `${rel} is a symbolic link (to ${target}); tools do not write through links`,
      hint: 'edit the file the link points to, if it is in scope',
    });
  }
}

/**
 * Resolves a model-given path inside the work tree. Absolute paths, `..` escapes, `.git`
 * and symlinks that resolve outside are refused with the allowed root named. `realRel` is
 * where the path lands once symlinked directories on the way are followed.
 */
export async function resolveInTree(
  workTree: string,
  given: string,
): Promise<{ abs: string; rel: string; realRel: string }> {
  const root = await realpath(workTree);
  if (path.isAbsolute(given)) {
    throw new ToolFailure({
      code: 'path_outside_work_tree',
      message: `"${given}" is absolute; paths are relative to the repository root`,
      hint: `use a path relative to the repository root, e.g. "${path.relative(root, given).startsWith('..') ? 'src/index.ts' : path.relative(root, given)}"`,
    });
  }
  const abs = path.resolve(root, given);
  const rel = path.relative(root, abs);
  if (rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new ToolFailure({
      code: 'path_outside_work_tree',
      message: `"${given}" leaves the repository`,
      hint: 'only paths inside the repository root are allowed',
    });
  }
  if (insideGitDir(rel)) {
    throw new ToolFailure({
      code: 'path_forbidden',
      message: `"${given}" is inside .git, which tools do not touch`,
      hint: 'the pipeline commits and pushes; work on the files only',
    });
  }
  // Resolve symlinks on the longest existing prefix, so a link pointing outside is refused
  // even when the final file does not exist yet.
  let probe = abs;
  for (;;) {
    try {
      await lstat(probe);
      break;
    } catch {
      const parent = path.dirname(probe);
      if (parent === probe) break;
      probe = parent;
    }
  }
  const real = await realpath(probe).catch(() => {
    throw new ToolFailure({
      code: 'dangling_symlink',
      message: `"${given}" goes through a symbolic link whose target does not exist`,
      hint: 'use another path; links are not followed to missing targets',
    });
  });
  const realRel = path.relative(root, real);
  if (realRel.startsWith('..') || path.isAbsolute(realRel)) {
    throw new ToolFailure({
      code: 'path_outside_work_tree',
      message: `"${given}" resolves through a symlink to outside the repository`,
      hint: 'only paths inside the repository root are allowed',
    });
  }
  // A link into .git would let an edit plant git config or hooks that the host's git runs.
  if (insideGitDir(realRel)) {
    throw new ToolFailure({
      code: 'path_forbidden',
      message: `"${given}" resolves through a symlink into .git, which tools do not touch`,
      hint: 'work on the repository files only',
    });
  }
  const landing = path.join(realRel, path.relative(probe, abs));
  return { abs, rel: rel === '' ? '.' : rel, realRel: landing === '' ? '.' : landing };
}

/**
 * The repository's own `paths` rules (.github/agent.yml): a denied path is refused whatever
 * the plan says. Both the path as given and where it lands through symlinked directories are
 * checked, so a link cannot carry an edit into a denied directory.
 */
export function assertPathAllowed(
  ctx: Pick<ToolContext, 'pathPolicy'>,
  target: { rel: string; realRel: string },
): void {
  if (!ctx.pathPolicy) return;
  for (const p of new Set([target.rel, target.realRel])) {
    const verdict = checkPathPolicy(ctx.pathPolicy, p);
    if (verdict.ok) continue;
    throw new ToolFailure({
      code: 'path_denied',
      message:
        p === target.rel ? verdict.reason : `${target.rel} resolves through a symlink to ${p}; ${verdict.reason}`,
      hint: "this repository's .github/agent.yml does not let the agent edit it; leave it unchanged or explain in finish_change",
    });
  }
}

/** A not-found error with the closest existing paths and where they were searched. */
export async function notFound(
  workTree: string,
  rel: string,
  kind: 'file' | 'directory' = 'file',
  signal?: AbortSignal,
): Promise<ToolFailure> {
  const files = await listTreeFiles(workTree, '.', signal);
  const candidates =
    kind === 'file' ? closestPaths(rel, files) : closestPaths(rel, [...new Set(files.map((f) => path.dirname(f)))]);
  return new ToolFailure({
    code: 'not_found',
    message: `no ${kind} ${rel}${candidates.length ? `; closest: ${candidates.join(', ')}` : ''}`,
    hint: `searched the whole repository (${files.length} files); use list_files to see a directory`,
    candidates,
  });
}
