// Static checks of the container setup. No Docker engine runs on CI machines, so the compose
// file is validated against the Compose Specification's own JSON Schema and the Dockerfile
// against hadolint-style rules (hadolint's rule ids in the messages; IA- for this project's
// own) plus dockerfile-utils' linter, and the healthcheck commands are run for real against
// the app's own health endpoints.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { DockerfileParser, type Instruction, type ModifiableInstruction } from 'dockerfile-ast';
import { validate as dockerfileValidate, ValidationSeverity, type ValidatorSettings } from 'dockerfile-utils';
import picomatch from 'picomatch';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { EnvSchema } from '../../src/config/env.js';
import { REDIS_PERSISTENCE_ARGS } from '../../src/queue/redis.js';
import { sanitise } from '../../src/util/sanitise.js';
import { healthHandler, startOpsServer } from '../../src/web/health.js';
import { freePort } from '../helpers/redis.js';

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const read = (f: string) => readFileSync(path.join(ROOT, f), 'utf8');

const DOCKERFILE = read('Dockerfile');
const COMPOSE = read('docker-compose.yml');
const DOCKERIGNORE = read('.dockerignore');
/** The variables the app reads (src/config/env.ts): the only ones the containers may set. */
const KNOWN_ENV = new Set(Object.keys(EnvSchema.shape));
const SECRET_NAME = /KEY|SECRET|TOKEN|PASSWORD|PASSWD/i;
/** The packages the worker's sandbox and tools run on (src/sandbox, the search tool). */
const RUNTIME_PACKAGES = ['git', 'bubblewrap', 'ripgrep', 'util-linux'];

// ---------------------------------------------------------------- the Dockerfile

interface Step {
  keyword: string;
  /** The arguments without flags, line continuations joined. */
  args: string;
  flags: Record<string, string | null>;
  line: number;
}
interface Stage {
  image: string;
  name?: string;
  steps: Step[];
}

function stepOf(i: Instruction): Step {
  const flags: Record<string, string | null> = {};
  const modifiable = i as Partial<ModifiableInstruction>;
  for (const f of modifiable.getFlags?.() ?? []) flags[f.getName()] = f.getValue();
  return {
    keyword: i.getKeyword().toUpperCase(),
    args: i.getArgumentsContent() ?? '',
    flags,
    line: i.getRange().start.line + 1,
  };
}

/** The stages of a Dockerfile, with global ARGs (those before the first FROM) resolved in FROM. */
function stagesOf(text: string): { stages: Stage[]; globalArgs: Record<string, string>; all: Step[] } {
  const all = DockerfileParser.parse(text).getInstructions().map(stepOf);
  const globalArgs: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const step of all) {
    if (step.keyword === 'FROM') {
      const [image = '', as, name] = step.args.split(/\s+/);
      const resolved = image.replace(/\$\{?(\w+)\}?/g, (_, v: string) => globalArgs[v] ?? '');
      stages.push({ image: resolved, ...(as?.toUpperCase() === 'AS' && name ? { name } : {}), steps: [] });
    } else if (stages.length === 0 && step.keyword === 'ARG') {
      const [k, v = ''] = step.args.split('=');
      globalArgs[k!.trim()] = v.trim();
    } else {
      stages.at(-1)?.steps.push(step);
    }
  }
  return { stages, globalArgs, all };
}

/** A JSON array of strings (exec form), or undefined for shell form. */
function execForm(args: string): string[] | undefined {
  try {
    const v: unknown = JSON.parse(args);
    return Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string') ? (v as string[]) : undefined;
  } catch {
    return undefined;
  }
}

/** The simple commands of a RUN line: split on &&, ||, ;, |. */
function commandsOf(run: string): string[] {
  return run
    .split(/&&|\|\||;|\|/)
    .map((c) => c.trim())
    .filter(Boolean);
}

/** Variables a command reads from the environment (`process.env.X`, `$X`, `${X}`). */
function envReads(text: string): string[] {
  return [...text.matchAll(/process\.env\.([A-Z_][A-Z0-9_]*)|\$\{?([A-Z_][A-Z0-9_]*)\}?/g)].map((m) => (m[1] ?? m[2])!);
}

const ALL_RULES_AS_ERRORS: ValidatorSettings = {
  deprecatedMaintainer: ValidationSeverity.ERROR,
  directiveCasing: ValidationSeverity.ERROR,
  emptyContinuationLine: ValidationSeverity.ERROR,
  instructionCasing: ValidationSeverity.ERROR,
  instructionCmdMultiple: ValidationSeverity.ERROR,
  instructionEntrypointMultiple: ValidationSeverity.ERROR,
  instructionHealthcheckMultiple: ValidationSeverity.ERROR,
  instructionJSONInSingleQuotes: ValidationSeverity.ERROR,
  instructionWorkdirRelative: ValidationSeverity.ERROR,
};

/**
 * Every problem found in a Dockerfile, one line each, prefixed with the hadolint rule id
 * where hadolint has one (IA- for this project's own rules).
 */
function dockerfileProblems(text: string): string[] {
  const problems: string[] = [];
  // The syntax and instruction checks of dockerfile-utils (the VS Code Docker linter).
  for (const d of dockerfileValidate(text, ALL_RULES_AS_ERRORS))
    problems.push(`dockerfile-utils line ${d.range.start.line + 1}: ${d.message}`);
  const { stages, all } = stagesOf(text);
  const final = stages.at(-1);
  if (!final) return [...problems, 'no FROM'];
  const names = stages.map((s) => s.name).filter(Boolean);

  // Multi-stage: a build stage, and a runtime stage that is a different one.
  if (stages.length < 2) problems.push('IA-multi-stage: expected a build stage and a runtime stage');
  if (stages[0]?.name !== 'build')
    problems.push(`IA-multi-stage: the first stage must be "FROM … AS build" (got ${stages[0]?.name ?? 'no name'})`);
  if (final.name === 'build') problems.push('IA-multi-stage: the final stage must not be the build stage');

  for (const [i, s] of stages.entries()) {
    if (names.includes(s.image)) continue; // FROM an earlier stage
    const m = /^(?<repo>[^@]+?)(?::(?<tag>[^:@/]+))?(?:@(?<digest>sha256:[0-9a-f]{64}))?$/.exec(s.image);
    if (!m || !s.image) problems.push(`DL3006 stage ${i + 1}: cannot read the image "${s.image}"`);
    else if (!m.groups!.tag && !m.groups!.digest)
      problems.push(`DL3006 stage ${i + 1}: ${s.image} has no tag; pin a version`);
    else if (m.groups!.tag === 'latest')
      problems.push(`DL3007 stage ${i + 1}: ${s.image} uses "latest"; pin a version`);
    else if (m.groups!.tag && !/\d/.test(m.groups!.tag))
      problems.push(`DL3006 stage ${i + 1}: the tag of ${s.image} names no version`);
    if (stages.filter((o) => o.name && o.name === s.name).length > 1)
      problems.push(`DL3024 stage name "${s.name}" is used twice`);
  }

  for (const [i, s] of stages.entries()) {
    const earlier = stages.slice(0, i).map((o) => o.name);
    for (const step of s.steps) {
      const at = `line ${step.line}`;
      if (step.keyword === 'WORKDIR' && !step.args.startsWith('/'))
        problems.push(`DL3000 ${at}: WORKDIR must be absolute`);
      if (step.keyword === 'ADD' && !/^(https?:|git@)/.test(step.args))
        problems.push(`DL3020 ${at}: use COPY, not ADD, for files`);
      if (step.keyword === 'COPY' && step.flags.from !== undefined && !earlier.includes(step.flags.from ?? '')) {
        problems.push(`DL3022 ${at}: COPY --from=${step.flags.from} does not name an earlier stage`);
      }
      if (step.keyword === 'MAINTAINER') problems.push(`DL4000 ${at}: MAINTAINER is deprecated`);
      if (step.keyword !== 'RUN') continue;
      const cmds = commandsOf(step.args);
      for (const c of cmds) {
        if (/^sudo\b/.test(c)) problems.push(`DL3004 ${at}: do not use sudo`);
        if (/^cd\s/.test(c)) problems.push(`DL3003 ${at}: use WORKDIR, not cd`);
        if (/^apt\s/.test(c)) problems.push(`DL3027 ${at}: use apt-get, not apt`);
        if (/^apt-get\s+(-\S+\s+)*upgrade\b/.test(c)) problems.push(`DL3005 ${at}: do not apt-get upgrade in an image`);
        if (/^npm\s+(i|install)\b/.test(c))
          problems.push(`IA-npm-ci ${at}: use npm ci (the lock file), not npm install`);
        if (/^apt-get\s+(-\S+\s+)*install\b/.test(c)) {
          if (!/\s(-y|--yes|--assume-yes)\b/.test(c)) problems.push(`DL3014 ${at}: apt-get install without -y`);
          if (!c.includes('--no-install-recommends'))
            problems.push(`DL3015 ${at}: apt-get install without --no-install-recommends`);
          if (!cmds.some((o) => /^rm\s+-rf\s+\/var\/lib\/apt\/lists\/\*/.test(o)))
            problems.push(`DL3009 ${at}: apt lists not removed in the same RUN (rm -rf /var/lib/apt/lists/*)`);
          if (!cmds.some((o) => /^apt-get\s+(-\S+\s+)*update\b/.test(o)))
            problems.push(`DL3009 ${at}: apt-get install without apt-get update in the same RUN`);
        }
      }
      if (step.args.includes('|') && !/\|\||pipefail/.test(step.args))
        problems.push(`DL4006 ${at}: a pipe without set -o pipefail`);
    }
  }

  // The build: npm ci then npm run build; the runtime: production dependencies and dist only.
  const buildRuns = (stages[0]?.steps ?? []).filter((s) => s.keyword === 'RUN').flatMap((s) => commandsOf(s.args));
  const ciAt = buildRuns.findIndex((c) => /^npm ci\b/.test(c) && !c.includes('--omit=dev'));
  const buildAt = buildRuns.findIndex((c) => /^npm run build\b/.test(c));
  if (ciAt < 0 || buildAt < ciAt)
    problems.push('IA-build: the build stage must run npm ci (all dependencies), then npm run build');
  const copiesFrom = (what: string) =>
    final.steps.find((s) => s.keyword === 'COPY' && s.flags.from && s.args.includes(what));
  const modulesFrom = copiesFrom('/app/node_modules')?.flags.from;
  const modulesStage = stages.find((s) => s.name === modulesFrom);
  if (
    !modulesStage?.steps.some(
      (s) => s.keyword === 'RUN' && commandsOf(s.args).some((c) => /^npm ci\b.*--omit=dev/.test(c)),
    )
  ) {
    problems.push('IA-runtime: node_modules must come from a stage that ran npm ci --omit=dev');
  }
  if (copiesFrom('/app/dist')?.flags.from !== stages[0]?.name)
    problems.push('IA-runtime: dist must be copied from the build stage');
  if (final.steps.some((s) => s.keyword === 'RUN' && /\bnpm (ci|i|install|run build)\b/.test(s.args)))
    problems.push('IA-runtime: the runtime stage must not install or build');

  // The runtime's packages.
  const installed = final.steps
    .filter((s) => s.keyword === 'RUN')
    .flatMap((s) => commandsOf(s.args))
    .filter((c) => /^apt-get\s+(-\S+\s+)*install\b/.test(c))
    .flatMap((c) =>
      c
        .split(/\s+/)
        .slice(2)
        .filter((w) => !w.startsWith('-')),
    );
  for (const p of RUNTIME_PACKAGES)
    if (!installed.includes(p)) problems.push(`IA-packages: the runtime stage does not install ${p}`);

  // A non-root user in the final stage, set before the entry point.
  const users = final.steps.filter((s) => s.keyword === 'USER');
  const user = users.at(-1)?.args.split(':')[0];
  if (!user || user === 'root' || user === '0')
    problems.push(`DL3002 the final stage must switch to a non-root USER (got ${user ?? 'none'})`);

  // Exec form for what runs as PID 1 and for the healthcheck.
  for (const k of ['CMD', 'ENTRYPOINT']) {
    const s = final.steps.filter((x) => x.keyword === k).at(-1);
    if (k === 'CMD' && !s) problems.push('IA-cmd: no CMD in the final stage');
    if (s && !execForm(s.args)) problems.push(`DL3025 line ${s.line}: ${k} must use the exec (JSON) form`);
  }
  const entry = execForm(final.steps.filter((x) => x.keyword === 'ENTRYPOINT').at(-1)?.args ?? '');
  if (entry?.[0]?.endsWith('/tini') && !installed.includes('tini'))
    problems.push('IA-packages: ENTRYPOINT runs tini but the runtime stage does not install it');
  const health = final.steps.filter((x) => x.keyword === 'HEALTHCHECK').at(-1);
  if (health && health.args.trim() !== 'NONE' && !execForm(health.args.replace(/^CMD\s+/, '')))
    problems.push(`DL3025 line ${health.line}: HEALTHCHECK CMD must use the exec form`);

  // Every variable set is one the app reads, and none carries a secret.
  for (const s of all) {
    if (s.keyword !== 'ENV' && s.keyword !== 'ARG') continue;
    const names = [...s.args.matchAll(/(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)(?==|\s|$)/g)].map((m) => m[1]!);
    for (const n of names) {
      if (SECRET_NAME.test(n))
        problems.push(`IA-secrets line ${s.line}: ${s.keyword} ${n} would bake a secret into the image`);
      if (s.keyword === 'ENV' && !KNOWN_ENV.has(n))
        problems.push(`IA-env line ${s.line}: ENV ${n} is not a variable of src/config/env.ts`);
    }
  }
  for (const s of all) {
    if (s.keyword === 'COPY' && !s.flags.from && /(^|\s)(\S*\.env|\S*\.pem)(\s|$)/.test(s.args))
      problems.push(`IA-secrets line ${s.line}: COPY of a secret file`);
  }
  return problems;
}

// ---------------------------------------------------------------- .dockerignore

/** Whether the build context holds `file`, by Docker's rules: the last matching line wins; a match on a parent directory counts. */
function inContext(ignore: string, file: string): boolean {
  const rules = ignore
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => ({
      negate: l.startsWith('!'),
      match: picomatch(path.posix.normalize(l.replace(/^!/, '')).replace(/\/$/, ''), { dot: true }),
    }));
  const parts = file.split('/');
  const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
  let excluded = false;
  for (const r of rules) if (prefixes.some((p) => r.match(p))) excluded = !r.negate;
  return !excluded;
}

// ---------------------------------------------------------------- docker-compose.yml

type EnvBlock = Record<string, string | number | boolean | null> | string[];
interface Service {
  image?: string;
  build?: unknown;
  command?: string[] | string;
  environment?: EnvBlock;
  env_file?: string | Array<string | { path: string }>;
  healthcheck?: { test?: string[] | string; disable?: boolean };
  volumes?: Array<string | { source?: string; target: string }>;
  ports?: unknown[];
  depends_on?: Record<string, { condition?: string }> | string[];
  deploy?: { replicas?: number };
  container_name?: string;
  security_opt?: string[];
  cap_add?: string[];
  privileged?: boolean;
  stop_grace_period?: string;
  mem_limit?: string | number;
  pids_limit?: number;
}
interface Compose {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

const composeSchema = JSON.parse(read('test/fixtures/compose-spec/compose-spec.json')) as object;
// strictTypes off: the upstream schema's own style (e.g. additionalProperties without type) is not ours to judge.
const ajv = new Ajv2020({ allErrors: true, strict: true, strictTypes: false });
addFormats.default(ajv);
const validateCompose = ajv.compile(composeSchema);

/** Compose merges YAML `<<` keys, as the yaml package does with `merge: true`. */
const parseCompose = (text: string) => parse(text, { merge: true }) as Compose;

function envEntries(env: EnvBlock | undefined): Array<[string, string | undefined]> {
  if (!env) return [];
  if (Array.isArray(env))
    return env.map((e) =>
      e.includes('=') ? [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)] : [e, undefined],
    );
  return Object.entries(env).map(([k, v]) => [k, v === null ? undefined : String(v)]);
}

function healthTest(s: Service | undefined): string[] | undefined {
  const t = s?.healthcheck?.test;
  return Array.isArray(t) ? t : undefined;
}

function seconds(duration: string | undefined): number {
  let total = 0;
  for (const m of (duration ?? '').matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g))
    total += Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  return total;
}

/** Every problem found in a compose file, one line each. */
function composeProblems(text: string): string[] {
  const problems: string[] = [];
  const doc = parseCompose(text);
  if (!validateCompose(doc)) {
    for (const e of validateCompose.errors ?? [])
      problems.push(
        `schema ${e.instancePath || '/'}: ${e.message}${e.params && 'additionalProperty' in e.params ? ` (${String(e.params.additionalProperty)})` : ''}`,
      );
    return problems;
  }
  const { services } = doc;
  for (const name of ['redis', 'web', 'worker']) if (!services[name]) problems.push(`services: no ${name}`);
  const { redis, web, worker } = services;
  if (!redis || !web || !worker) return problems;

  // Redis keeps jobs across restarts and never evicts them: the app's own settings.
  const cmd = Array.isArray(redis.command) ? redis.command : (redis.command ?? '').split(/\s+/).filter(Boolean);
  for (let i = 0; i < REDIS_PERSISTENCE_ARGS.length; i += 2) {
    const [flag, value] = [REDIS_PERSISTENCE_ARGS[i]!, REDIS_PERSISTENCE_ARGS[i + 1]!];
    const at = cmd.indexOf(flag);
    if (at < 0 || cmd[at + 1] !== value) problems.push(`redis: command lacks ${flag} ${value}`);
  }
  // Redis is not a trust root: a password, from .env, never written here.
  const pass = cmd.indexOf('--requirepass');
  if (pass < 0 || !/^\$\{REDIS_PASSWORD(:?\?[^}]*)?\}$/.test(cmd[pass + 1] ?? ''))
    problems.push('redis: command lacks --requirepass ${REDIS_PASSWORD} (a password from .env)');
  if (!redis.image || /:latest$|^[^:]+$/.test(redis.image))
    problems.push(`redis: image ${redis.image} is not pinned to a version`);
  if (!(redis.volumes ?? []).some((v) => (typeof v === 'string' ? v.split(':')[1] : v.target) === '/data'))
    problems.push('redis: /data (the append-only file) is not on a volume');

  // Healthchecks, in exec form.
  for (const [name, s] of Object.entries(services)) {
    const t = healthTest(s);
    if (!t || s.healthcheck?.disable) problems.push(`${name}: no healthcheck`);
    else if (t[0] !== 'CMD') problems.push(`${name}: healthcheck test must be ["CMD", …] (exec form)`);
  }
  if (!healthTest(web)?.join(' ').includes('/healthz')) problems.push('web: the healthcheck does not ask GET /healthz');
  // The worker has no web server: its check asks /readyz on METRICS_PORT (consuming, and Redis answers).
  const workerCheck = healthTest(worker)?.join(' ') ?? '';
  const workerPort = Object.fromEntries(envEntries(worker.environment)).METRICS_PORT;
  if (!workerCheck.includes('/readyz') || !workerCheck.includes('process.env.METRICS_PORT') || !workerPort)
    problems.push('worker: the healthcheck must ask GET /readyz on METRICS_PORT, and METRICS_PORT must be set');

  // Roles, the shared Redis, start order.
  for (const [name, s, role] of [
    ['web', web, 'web'],
    ['worker', worker, 'worker'],
  ] as const) {
    if (!Array.isArray(s.command) || s.command.at(-1) !== role)
      problems.push(`${name}: command must run the ${role} role (exec form)`);
    const deps = s.depends_on;
    if (!deps || Array.isArray(deps) || deps.redis?.condition !== 'service_healthy')
      problems.push(`${name}: must depend on redis being healthy`);
    const env = Object.fromEntries(envEntries(s.environment));
    if (!env.REDIS_URL?.startsWith('redis://redis:'))
      problems.push(`${name}: REDIS_URL must point at the redis service`);
    const files = [s.env_file ?? []].flat().map((f) => (typeof f === 'string' ? f : f.path));
    if (!files.includes('.env')) problems.push(`${name}: secrets must come from env_file .env`);
  }

  // A worker container is bounded as a whole, whatever escapes the sandbox's per-command limits.
  if (!worker.mem_limit) problems.push('worker: no mem_limit');
  if (!worker.pids_limit || Number(worker.pids_limit) <= 0) problems.push('worker: no pids_limit');

  // Workers scale: replicas, and nothing that pins one container (a name, a host port).
  if ((worker.deploy?.replicas ?? 1) < 2) problems.push('worker: deploy.replicas must be 2 or more');
  if (worker.container_name) problems.push('worker: container_name prevents scaling');
  if ((worker.ports ?? []).length > 0) problems.push('worker: a published port prevents scaling');
  if (
    !(web.ports ?? []).some((p) =>
      String(typeof p === 'object' ? (p as { target?: unknown }).target : p).endsWith('3000'),
    )
  )
    problems.push('web: port 3000 is not published');

  // DATA_DIR on a named volume.
  const workerEnv = Object.fromEntries(envEntries(worker.environment));
  const dataDir = workerEnv.DATA_DIR;
  const mount = (worker.volumes ?? [])
    .map((v) => (typeof v === 'string' ? { source: v.split(':')[0], target: v.split(':')[1] } : v))
    .find((v) => v.target === dataDir);
  if (!dataDir || !mount) problems.push('worker: DATA_DIR must be the target of a volume');
  else if (!mount.source || !doc.volumes || !(mount.source in doc.volumes))
    problems.push(`worker: ${dataDir} must be a named volume declared under volumes`);

  // A clean drain: Docker's stop timeout outlasts the app's own shutdown timeout.
  const shutdownMs = Number(workerEnv.SHUTDOWN_TIMEOUT_MS ?? EnvSchema.shape.SHUTDOWN_TIMEOUT_MS.parse(undefined));
  if (seconds(worker.stop_grace_period ?? '10s') * 1000 <= shutdownMs)
    problems.push(`worker: stop_grace_period must exceed SHUTDOWN_TIMEOUT_MS (${shutdownMs} ms)`);

  // bubblewrap needs user namespaces, a mount syscall and an unmasked /proc: the worker
  // relaxes exactly those, nobody else does, and nothing gets real root powers.
  const needed = ['seccomp=unconfined', 'apparmor=unconfined', 'systempaths=unconfined'];
  for (const o of needed)
    if (!worker.security_opt?.includes(o)) problems.push(`worker: security_opt lacks ${o} (bubblewrap)`);
  for (const [name, s] of Object.entries(services)) {
    if (s.privileged) problems.push(`${name}: privileged`);
    if ((s.cap_add ?? []).length > 0) problems.push(`${name}: cap_add ${s.cap_add!.join(',')}`);
    if (name !== 'worker' && (s.security_opt ?? []).length > 0)
      problems.push(`${name}: security_opt relaxed without need`);
  }

  // Environment: only the app's variables, and no literal secrets.
  for (const [name, s] of Object.entries(services)) {
    for (const [k, v] of envEntries(s.environment)) {
      if (name !== 'redis' && !KNOWN_ENV.has(k))
        problems.push(`${name}: environment ${k} is not a variable of src/config/env.ts`);
      if (v === undefined || /^\$\{[A-Z0-9_]+(:?[-?][^}]*)?\}$/.test(v)) continue; // passed through from the host or .env
      if (SECRET_NAME.test(k)) problems.push(`${name}: environment ${k} has a literal value; put secrets in .env`);
      if (/:\/\/[^/@\s]*:[^/@\s]+@/.test(v)) problems.push(`${name}: environment ${k} carries credentials in a URL`);
      if (sanitise(v) !== v) problems.push(`${name}: environment ${k} looks like a secret`);
    }
    for (const k of envReads(healthTest(s)?.join(' ') ?? '')) {
      if (name !== 'redis' && !KNOWN_ENV.has(k))
        problems.push(`${name}: the healthcheck reads ${k}, not a variable of src/config/env.ts`);
    }
  }
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) problems.push('a private key is written in the file');
  return problems;
}

// ---------------------------------------------------------------- the tests

describe('Dockerfile (hadolint-style rules; no Docker engine here)', () => {
  it('passes every rule', () => {
    expect(dockerfileProblems(DOCKERFILE)).toEqual([]);
  });

  it('is multi-stage: build (npm ci && npm run build), deps (npm ci --omit=dev), runtime', () => {
    const { stages } = stagesOf(DOCKERFILE);
    expect(stages.map((s) => s.name)).toEqual(['build', 'deps', 'runtime']);
    // One Node line for all three, pinned to a version.
    expect(new Set(stages.map((s) => s.image)).size).toBe(1);
    expect(stages[0]!.image).toMatch(/^node:20\.\d+-bookworm-slim$/);
  });

  it('the Node version of the image satisfies package.json engines', () => {
    const engines = (JSON.parse(read('package.json')) as { engines: { node: string } }).engines.node;
    const [major, minor] = /^node:(\d+)\.(\d+)/.exec(stagesOf(DOCKERFILE).stages[0]!.image)!.slice(1).map(Number) as [
      number,
      number,
    ];
    const [wantMajor, wantMinor] = /(\d+)\.(\d+)/.exec(engines)!.slice(1).map(Number) as [number, number];
    expect(major > wantMajor || (major === wantMajor && minor >= wantMinor)).toBe(true);
  });

  it('catches what it checks (each rule fails on a Dockerfile that breaks it)', () => {
    const broken = (from: string | RegExp, to: string) => {
      const text = DOCKERFILE.replace(from, to);
      expect(text).not.toBe(DOCKERFILE);
      return dockerfileProblems(text).join('\n');
    };
    expect(broken('ARG NODE_IMAGE=node:20.20-bookworm-slim', 'ARG NODE_IMAGE=node:latest')).toMatch(/DL3007/);
    expect(broken('ARG NODE_IMAGE=node:20.20-bookworm-slim', 'ARG NODE_IMAGE=node')).toMatch(/DL3006/);
    expect(broken('USER node', 'USER root')).toMatch(/DL3002/);
    expect(broken('\nUSER node\n', '\n')).toMatch(/DL3002/);
    expect(broken('--no-install-recommends ', '')).toMatch(/DL3015/);
    expect(broken(' \\\n && rm -rf /var/lib/apt/lists/*', '')).toMatch(/DL3009/);
    expect(broken('RUN npm ci --no-audit --no-fund --ignore-scripts', 'RUN npm install')).toMatch(/IA-npm-ci/);
    expect(broken('CMD ["node", "dist/main.js"]', 'CMD node dist/main.js')).toMatch(/DL3025/);
    expect(broken('ENTRYPOINT ["/usr/bin/tini", "--"]', 'ENTRYPOINT /usr/bin/tini --')).toMatch(/DL3025/);
    expect(broken(' ripgrep ', ' ')).toMatch(/does not install ripgrep/);
    expect(broken(' bubblewrap ', ' ')).toMatch(/does not install bubblewrap/);
    expect(broken(' ca-certificates tini', ' ca-certificates')).toMatch(/does not install it/);
    expect(broken('ENV DATA_DIR=/data', 'ENV DATA_DIR=/data NODE_OPTIONZ=1')).toMatch(/IA-env.*NODE_OPTIONZ/);
    expect(broken('ENV DATA_DIR=/data', 'ENV DATA_DIR=/data WEBHOOK_SECRET=x')).toMatch(/IA-secrets/);
    expect(broken('COPY package.json app.yml ./', 'COPY package.json app.yml .env ./')).toMatch(/IA-secrets/);
    expect(broken('COPY --from=deps /app/node_modules', 'COPY --from=build /app/node_modules')).toMatch(
      /npm ci --omit=dev/,
    );
    expect(broken('COPY --from=deps', 'COPY --from=later')).toMatch(/DL3022/);
    expect(broken('RUN npm run build', 'RUN true')).toMatch(/IA-build/);
    expect(broken('FROM ${NODE_IMAGE} AS build', 'FROM ${NODE_IMAGE} AS compile')).toMatch(/IA-multi-stage/);
    expect(broken('WORKDIR /app\nCOPY --from', 'WORKDIR app\nCOPY --from')).toMatch(/DL3000|relative/);
    expect(broken('RUN mkdir -p /data', 'RUN cd / && mkdir -p /data')).toMatch(/DL3003/);
  });

  it('the build context (.dockerignore) holds what the Dockerfile copies and no secret or local state', () => {
    const copied = stagesOf(DOCKERFILE)
      .all.filter((s) => s.keyword === 'COPY' && !s.flags.from)
      .flatMap((s) => s.args.split(/\s+/).slice(0, -1));
    expect(copied.sort()).toEqual([
      'app.yml',
      'package-lock.json',
      'package-lock.json',
      'package.json',
      'package.json',
      'package.json',
      'src',
      'tsconfig.build.json',
      'tsconfig.json',
    ]);
    for (const f of [...copied, 'src/main.ts', 'src/sandbox/bwrap.ts'])
      expect(inContext(DOCKERIGNORE, f), f).toBe(true);
    for (const f of [
      '.env',
      'private-key.pem',
      'keys/app.pem',
      '.data/mirrors/x',
      'node_modules/zod/package.json',
      'dist/main.js',
      '.git/config',
      'test/e2e/harness.ts',
      'src/web/app.test.ts',
      'coverage/index.html',
    ]) {
      expect(inContext(DOCKERIGNORE, f), f).toBe(false);
    }
  });
});

describe('docker-compose.yml (Compose Specification schema; no Docker engine here)', () => {
  const doc = parseCompose(COMPOSE);

  it('is valid against the Compose Specification and passes every check', () => {
    expect(validateCompose(doc), JSON.stringify(validateCompose.errors)).toBe(true);
    expect(composeProblems(COMPOSE)).toEqual([]);
  });

  it('runs redis with the persistence the app requires (REDIS_PERSISTENCE_ARGS)', () => {
    expect(doc.services.redis!.command).toEqual([
      'redis-server',
      ...REDIS_PERSISTENCE_ARGS,
      '--requirepass',
      '${REDIS_PASSWORD:?set REDIS_PASSWORD in .env, e.g. openssl rand -hex 24}',
    ]);
  });

  it('builds web and worker from the Dockerfile; the worker scales and keeps DATA_DIR on a volume', () => {
    expect(doc.services.web!.build).toBe('.');
    expect(doc.services.worker!.build).toBe('.');
    expect(doc.services.worker!.deploy?.replicas).toBeGreaterThanOrEqual(2);
    expect(doc.services.worker!.volumes).toContain('agent-data:/data');
    expect(Object.keys(doc.volumes ?? {})).toEqual(expect.arrayContaining(['agent-data', 'redis-data']));
  });

  it('catches what it checks (each check fails on a compose file that breaks it)', () => {
    const broken = (from: string | RegExp, to: string) => {
      const text = COMPOSE.replace(from, to);
      expect(text).not.toBe(COMPOSE);
      return composeProblems(text).join('\n');
    };
    expect(broken('"--appendfsync", "everysec", ', '')).toMatch(/appendfsync everysec/);
    expect(broken('"noeviction"', '"allkeys-lru"')).toMatch(/maxmemory-policy noeviction/);
    expect(broken('replicas: 2', 'replicas: 1')).toMatch(/replicas/);
    expect(
      broken(
        'WORKER_CONCURRENCY: "1"',
        'WORKER_CONCURRENCY: "1"\n      ANTHROPIC_API_KEY: sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789',
      ),
    ).toMatch(/literal value/);
    expect(
      broken('WORKER_CONCURRENCY: "1"', 'WORKER_CONCURRENCY: "1"\n      ANTHROPIC_API_KEY: ${ANTHROPIC_API_KEY}'),
    ).toBe('');
    expect(
      broken('REDIS_URL: redis://redis:6379\n      HOST', 'REDIS_URL: redis://:hunter2@redis:6379\n      HOST'),
    ).toMatch(/credentials in a URL/);
    expect(broken(/, "--requirepass", "[^"]+"/, '')).toMatch(/--requirepass/);
    expect(broken(/"--requirepass", "[^"]+"/, '"--requirepass", "hunter2"')).toMatch(/a password from \.env/);
    expect(broken('WORKER_CONCURRENCY: "1"', 'WORKER_CONCURRENCY: "1"\n      WORKERS: "3"')).toMatch(
      /WORKERS is not a variable/,
    );
    expect(broken('env_file: .env', 'env_file: secrets.env')).toMatch(/env_file \.env/);
    expect(broken('      - systempaths=unconfined\n', '')).toMatch(/systempaths=unconfined/);
    expect(broken('    stop_grace_period: 75s\n', '')).toMatch(/stop_grace_period/);
    expect(broken('    mem_limit: 12g\n', '')).toMatch(/mem_limit/);
    expect(broken('    pids_limit: 4096\n', '')).toMatch(/pids_limit/);
    expect(broken('      - agent-data:/data\n', '      - agent-data:/var/agent\n')).toMatch(/DATA_DIR/);
    expect(broken('      - agent-data:/data\n', '      - ./data:/data\n')).toMatch(/named volume/);
    expect(broken('condition: service_healthy', 'condition: service_started')).toMatch(/redis being healthy/);
    expect(
      broken(
        '    healthcheck:\n      test: ["CMD", "redis-cli", "ping"]',
        '    healthcheck:\n      tests: ["CMD", "redis-cli", "ping"]',
      ),
    ).toMatch(/schema .*tests/);
    expect(broken('image: redis:7.4-alpine', 'image: redis:latest')).toMatch(/not pinned/);
    expect(broken('    deploy:\n', '    container_name: w\n    deploy:\n')).toMatch(/container_name/);
    expect(broken('    stop_grace_period: 75s\n', '    stop_grace_period: 75s\n    privileged: true\n')).toMatch(
      /privileged/,
    );
    expect(broken("/readyz').then", "/healthz').then")).toMatch(/readyz on METRICS_PORT/);
    expect(broken('      METRICS_PORT: "9090"\n', '')).toMatch(/METRICS_PORT must be set/);
  });
});

describe('healthchecks, run for real', () => {
  let server: Server;
  let healthy = true;
  let port = 0;
  beforeAll(async () => {
    // The app's own endpoints (src/web/health.ts), as a worker's METRICS_PORT serves them;
    // "healthy" is whether Redis answers.
    port = await freePort();
    server = await startOpsServer({
      port,
      host: '127.0.0.1',
      handler: healthHandler({ redisPing: async () => healthy, workerState: () => 'consuming' }),
    });
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
  });

  /** Runs a ["CMD", "node", …] or ["node", …] check as the container would (cwd = the app's root), answering its exit code. */
  const exitOf = async (check: string[], env: Record<string, string>): Promise<number> => {
    const argv = check[0] === 'CMD' ? check.slice(1) : check;
    expect(argv[0]).toBe('node');
    try {
      await run(process.execPath, argv.slice(1), {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
        timeout: 15_000,
      });
      return 0;
    } catch (err) {
      return (err as { code?: number }).code ?? -1;
    }
  };

  const checks: Array<[string, () => string[], string]> = [
    [
      "the image's HEALTHCHECK",
      () =>
        execForm(
          stagesOf(DOCKERFILE)
            .stages.at(-1)!
            .steps.find((s) => s.keyword === 'HEALTHCHECK')!
            .args.replace(/^CMD\s+/, ''),
        )!,
      'PORT',
    ],
    ["web's healthcheck", () => healthTest(parseCompose(COMPOSE).services.web)!, 'PORT'],
    ["the worker's healthcheck", () => healthTest(parseCompose(COMPOSE).services.worker)!, 'METRICS_PORT'],
  ];
  it.each(checks)(
    '%s: 0 while the app is healthy, 1 when Redis is down and when nothing listens',
    async (_, check, portVariable) => {
      healthy = true;
      expect(await exitOf(check(), { [portVariable]: String(port) })).toBe(0);
      healthy = false;
      expect(await exitOf(check(), { [portVariable]: String(port) })).toBe(1);
      expect(await exitOf(check(), { [portVariable]: String(await freePort()) })).toBe(1);
    },
  );
});
