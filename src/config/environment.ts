import { type ParseError, parse, printParseErrorCode } from 'jsonc-parser';
import { parseImageRef } from '../sandbox/environment/image-ref.js';
import { REPO_CONFIG_PATH, type RepoConfig } from './repo-config.js';

/** Where a devcontainer is looked for, in this order (the two places the spec's tools look first). */
export const DEVCONTAINER_PATHS = ['.devcontainer/devcontainer.json', '.devcontainer.json'] as const;

/** Where a repository's commands run: an image and its setup commands, and where that was said. */
export interface EnvironmentSpec {
  image: string;
  setup: string[];
  /** The file it came from: `.github/agent.yml` or a devcontainer. */
  from: string;
  /** The devcontainer's settings this app does not apply (features, postStartCommand, …), for the PR body. */
  ignored: string[];
}

/** A declared environment this app cannot use, and what to do instead: the job ends with it, before any model call. */
export interface UnusableEnvironment {
  from: string;
  problem: string;
}

const MAX_DEVCONTAINER_BYTES = 256 * 1024;
const MAX_SETUP_COMMANDS = 20;
const MAX_COMMAND_CHARS = 1000;

/** The create commands, run once per environment in the spec's order. */
const CREATE_COMMANDS = ['onCreateCommand', 'updateContentCommand', 'postCreateCommand'] as const;

/**
 * Settings a devcontainer may have that are not applied here. `initializeCommand` runs on the
 * host in the spec and is never run by this app; the start and attach commands start
 * services for an editor; features and the container's options need a container engine.
 */
const NOT_APPLIED = [
  'features',
  'initializeCommand',
  'postStartCommand',
  'postAttachCommand',
  'containerEnv',
  'remoteEnv',
  'containerUser',
  'remoteUser',
  'mounts',
  'runArgs',
  'capAdd',
  'privileged',
  'securityOpt',
  'workspaceFolder',
  'workspaceMount',
] as const;

const INSTEAD = `name an image from a registry under \`environment: image:\` in ${REPO_CONFIG_PATH} (with its setup commands under \`setup:\`), or give the devcontainer an \`image:\``;

/**
 * The repository's environment: `environment:` in its config, else its devcontainer's image
 * and create commands, else none (the worker's own system). Both are read from the default branch.
 */
export async function environmentOf(
  config: RepoConfig,
  read: (path: string) => Promise<string | undefined>,
): Promise<EnvironmentSpec | UnusableEnvironment | undefined> {
  const declared = config.environment;
  if (declared) {
    const setup =
      declared.setup === undefined ? [] : typeof declared.setup === 'string' ? [declared.setup] : declared.setup;
    return { image: declared.image, setup, from: REPO_CONFIG_PATH, ignored: [] };
  }
  for (const file of DEVCONTAINER_PATHS) {
    const text = await read(file);
    if (text !== undefined) return fromDevcontainer(file, text);
  }
  return undefined;
}

/** A devcontainer's `image` and create commands; one that builds its image cannot be used. */
export function fromDevcontainer(file: string, text: string): EnvironmentSpec | UnusableEnvironment {
  if (Buffer.byteLength(text) > MAX_DEVCONTAINER_BYTES)
    return { from: file, problem: `it is larger than ${MAX_DEVCONTAINER_BYTES / 1024} KiB` };
  const errors: ParseError[] = [];
  const doc: unknown = parse(text, errors, { allowTrailingComma: true, disallowComments: false });
  if (errors.length > 0) {
    const first = errors[0]!;
    const line = text.slice(0, first.offset).split('\n').length;
    return {
      from: file,
      problem: `it is not valid JSON with comments (${printParseErrorCode(first.error)} on line ${line})`,
    };
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    return { from: file, problem: 'it is not a JSON object' };
  const dc = doc as Record<string, unknown>;
  if (dc.dockerComposeFile !== undefined)
    return {
      from: file,
      problem: `it starts its container with Docker Compose, which this app does not run; ${INSTEAD}`,
    };
  if (typeof dc.image !== 'string') {
    const builds = dc.build !== undefined || dc.dockerFile !== undefined || dc.dockerfile !== undefined;
    return {
      from: file,
      problem: builds
        ? `it builds its image from a Dockerfile, which this app does not build; build and push that image to a registry, then ${INSTEAD}`
        : `it names no \`image\`; ${INSTEAD}`,
    };
  }
  // Checked here, not at the pull: the reference is shown in the job's comments.
  if (!parseImageRef(dc.image).ok)
    return {
      from: file,
      problem:
        'its `image` is not an image reference (expected [registry/]name[:tag][@sha256:digest], lower-case name, e.g. python:3.12-bookworm)',
    };
  const setup: string[] = [];
  for (const key of CREATE_COMMANDS) {
    const commands = lifecycleCommands(dc[key]);
    if (commands === undefined)
      return { from: file, problem: `its \`${key}\` is neither a string, a list nor an object of them` };
    setup.push(...commands);
  }
  // The bounds .github/agent.yml's setup has: a devcontainer is the repository's text too.
  if (setup.length > MAX_SETUP_COMMANDS)
    return {
      from: file,
      problem: `its create commands are ${setup.length} commands; at most ${MAX_SETUP_COMMANDS} run`,
    };
  const long = setup.find((c) => c.length > MAX_COMMAND_CHARS);
  if (long !== undefined)
    return { from: file, problem: `a create command is ${long.length} characters long; at most ${MAX_COMMAND_CHARS}` };
  return { image: dc.image, setup, from: file, ignored: NOT_APPLIED.filter((k) => dc[k] !== undefined) };
}

/**
 * A lifecycle command as the spec allows it: a string (run by a shell), an array (one program
 * and its arguments, no shell) or an object of either (run here one after the other, in key order).
 */
function lifecycleCommands(value: unknown): string[] | undefined {
  if (value === undefined) return [];
  if (typeof value === 'string') return value.trim() ? [workspaceFolder(value)] : [];
  if (Array.isArray(value)) {
    if (!value.every((a) => typeof a === 'string')) return undefined;
    return value.length > 0 ? [value.map((a) => shellQuote(workspaceFolder(a))).join(' ')] : [];
  }
  if (typeof value === 'object' && value !== null) {
    const all: string[] = [];
    for (const v of Object.values(value)) {
      if (typeof v === 'object' && !Array.isArray(v)) return undefined;
      const one = lifecycleCommands(v);
      if (one === undefined) return undefined;
      all.push(...one);
    }
    return all;
  }
  return undefined;
}

/** The spec's workspace-folder variables: the commands run in the work tree, so `.` is that folder. */
function workspaceFolder(command: string): string {
  return command.replace(/\$\{(containerWorkspaceFolder|localWorkspaceFolder)\}/g, '.');
}

function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function isUsable(e: EnvironmentSpec | UnusableEnvironment | undefined): e is EnvironmentSpec {
  return e !== undefined && 'image' in e;
}
