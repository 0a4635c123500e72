import { realpathSync } from 'node:fs';
import path from 'node:path';
import type { RunRequest } from './runner.js';

export interface ResolvedPaths {
  workTree: string;
  cwd: string;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function isInside(parent: string, child: string): boolean {
  const rel = path.relative(parent, child);
  // `..data` is a name inside; only `..` itself or `../…` leaves.
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}

/**
 * Checks what both backends rely on: absolute paths, a cwd that stays inside the work
 * tree even after symlinks are resolved, sane limits and variable names.
 */
export function resolveRunRequest(req: RunRequest): ResolvedPaths {
  if (!path.isAbsolute(req.workTree)) throw new Error(`workTree must be absolute, got ${JSON.stringify(req.workTree)}`);
  // Symlinks resolved first: a link in the work tree must not move cwd or the binds elsewhere.
  const workTree = realpathSync(req.workTree);
  if (workTree === '/') throw new Error('workTree must not be /');
  const wanted = req.cwd ?? req.workTree;
  if (!path.isAbsolute(wanted)) throw new Error(`cwd must be absolute, got ${JSON.stringify(wanted)}`);
  if (!isInside(path.resolve(req.workTree), path.resolve(wanted)) && !isInside(workTree, path.resolve(wanted))) {
    throw new Error(`cwd ${wanted} is outside the work tree ${req.workTree}`);
  }
  const cwd = realpathSync(wanted);
  if (!isInside(workTree, cwd)) throw new Error(`cwd ${wanted} resolves to ${cwd}, outside the work tree ${workTree}`);
  if (!Number.isFinite(req.timeoutMs) || req.timeoutMs <= 0)
    throw new Error(`timeoutMs must be a positive number, got ${req.timeoutMs}`);
  for (const [name, value] of Object.entries(req.env ?? {})) {
    if (!ENV_NAME.test(name)) throw new Error(`invalid environment variable name ${JSON.stringify(name)}`);
    if (value.includes('\0')) throw new Error(`environment variable ${name} contains a NUL byte`);
  }
  for (const p of req.pathPrefix ?? []) {
    if (!path.isAbsolute(p) || p.includes(':') || p.includes('\0'))
      throw new Error(`pathPrefix entries must be absolute paths without ":", got ${JSON.stringify(p)}`);
  }
  for (const p of req.readOnlyPaths ?? []) {
    if (!path.isAbsolute(p)) throw new Error(`readOnlyPaths entries must be absolute, got ${JSON.stringify(p)}`);
  }
  return { workTree, cwd };
}

export { isInside };
