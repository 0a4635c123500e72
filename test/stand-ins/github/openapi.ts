// GitHub's published OpenAPI description (GHES flavour), used to hold the stand-in to the real
// API: requests the app sends must name real routes with valid bodies, and the stand-in's own
// answers are checked against the response schemas in its unit test.
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';

type Json = Record<string, unknown>;

interface Parameter {
  name: string;
  in: 'path' | 'query' | 'header' | 'cookie';
  required?: boolean;
  schema?: Json;
}

interface Operation {
  operationId: string;
  parameters?: Parameter[];
  requestBody?: { required?: boolean; content?: Record<string, { schema?: Json }> };
  responses: Record<string, { content?: Record<string, { schema?: Json }> }>;
}

export interface RouteMatch {
  method: string;
  /** The path template as the spec names it, e.g. `/repos/{owner}/{repo}/pulls`. */
  template: string;
  operationId: string;
  params: Record<string, string>;
  operation: Operation;
}

export type RequestCheck =
  | { kind: 'ok'; match: RouteMatch }
  | { kind: 'unknown-route'; violations: string[] }
  | { kind: 'invalid'; match: RouteMatch; violations: string[]; errors: GitHubFieldError[] };

export interface GitHubFieldError {
  resource: string;
  field: string;
  code: 'missing_field' | 'invalid' | 'missing';
  message?: string;
}

interface CompiledRoute {
  template: string;
  regex: RegExp;
  paramNames: string[];
  literalSegments: number;
  methods: Record<string, Operation>;
}

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];
// Parameters that GitHub lets span several path segments (file paths, refs).
const GREEDY_PARAMS = new Set(['path', 'ref']);
// Routes whose trailing path may be empty: the repository root.
const OPTIONAL_TRAILING_PATH = new Set(['/repos/{owner}/{repo}/contents/{path}']);

export class OpenApiSpec {
  readonly file: string;
  private readonly routes: CompiledRoute[];
  private readonly webhooks: Record<string, { post?: Operation }>;
  private readonly ajv: Ajv;
  private readonly cache = new Map<string, ValidateFunction>();

  constructor(file: string) {
    this.file = file;
    const spec = JSON.parse(readFileSync(file, 'utf8')) as {
      paths: Record<string, Record<string, unknown>>;
      'x-webhooks'?: Record<string, { post?: Operation }>;
    };
    this.routes = Object.entries(spec.paths).map(([template, item]) => compileRoute(template, item));
    this.webhooks = spec['x-webhooks'] ?? {};
    this.ajv = new Ajv({ strict: false, allErrors: true, logger: false });
    const addFormats = addFormatsModule as unknown as { default: (ajv: Ajv) => void };
    addFormats.default(this.ajv);
  }

  /** The operation a request names, preferring literal segments over parameters. */
  match(method: string, path: string): RouteMatch | null {
    const lower = method.toLowerCase();
    let best: { route: CompiledRoute; m: RegExpExecArray } | null = null;
    for (const route of this.routes) {
      if (!route.methods[lower]) continue;
      const m = route.regex.exec(path);
      if (m && (!best || route.literalSegments > best.route.literalSegments)) best = { route, m };
    }
    if (!best) return null;
    const params: Record<string, string> = {};
    best.route.paramNames.forEach((name, i) => {
      params[name] = safeDecode(best.m[i + 1] ?? '');
    });
    const operation = best.route.methods[lower]!;
    return {
      method: method.toUpperCase(),
      template: best.route.template,
      operationId: operation.operationId,
      params,
      operation,
    };
  }

  /** Route, required query parameters, path parameter types and JSON body, as GitHub documents them. */
  checkRequest(method: string, path: string, query: URLSearchParams, body: unknown): RequestCheck {
    const match = this.match(method, path);
    if (!match) {
      const other = this.routes.some((r) => r.regex.test(path));
      const why = other ? 'the route exists but not with this method' : "no such route in GitHub's API";
      return { kind: 'unknown-route', violations: [`${method.toUpperCase()} ${path}: ${why}`] };
    }
    const where = `${match.method} ${match.template}`;
    const violations: string[] = [];
    const errors: GitHubFieldError[] = [];
    const resource = resourceName(match.operationId);
    for (const p of match.operation.parameters ?? []) {
      if (p.in === 'query' && p.required && !query.has(p.name)) {
        violations.push(`${where}: query/${p.name} is required`);
        errors.push({ resource, field: p.name, code: 'missing_field' });
      }
      if (p.in === 'path' && p.schema?.type === 'integer' && !/^\d+$/.test(match.params[p.name] ?? '')) {
        violations.push(`${where}: path/${p.name} must be an integer, got ${JSON.stringify(match.params[p.name])}`);
        errors.push({ resource, field: p.name, code: 'invalid' });
      }
    }
    const requestBody = match.operation.requestBody;
    const schema = requestBody?.content?.['application/json']?.schema;
    if (body === undefined) {
      if (requestBody?.required && schema) {
        violations.push(`${where}: body is required`);
        errors.push({ resource, field: '', code: 'missing' });
      }
    } else if (schema) {
      const validate = this.compile(`req ${where}`, schema);
      if (!validate(body)) {
        for (const e of validate.errors ?? []) {
          violations.push(`${where}: ${describeError('body', e)}`);
          errors.push(fieldError(resource, e));
        }
      }
    }
    return violations.length ? { kind: 'invalid', match, violations, errors } : { kind: 'ok', match };
  }

  /** Problems with a response body against the operation's schema for that status ([] when fine). */
  checkResponse(method: string, path: string, status: number, body: unknown): string[] {
    const match = this.match(method, path);
    if (!match) return [`${method.toUpperCase()} ${path}: no such route in GitHub's API`];
    const where = `${match.method} ${match.template} → ${status}`;
    const response = match.operation.responses[String(status)] ?? match.operation.responses.default;
    if (!response) {
      return [
        `${where}: GitHub does not document status ${status} (documented: ${Object.keys(match.operation.responses).join(', ')})`,
      ];
    }
    const schema = response.content?.['application/json']?.schema;
    if (!schema) return [];
    const validate = this.compile(`res ${where}`, schema);
    if (validate(body)) return [];
    return (validate.errors ?? []).map((e) => `${where}: ${describeError('response', e)}`);
  }

  /**
   * Problems with a webhook payload against GitHub's documented schema for it ([] when fine).
   * `name` is the description's key: the event and action in kebab case, e.g. `issue-comment-created`.
   */
  checkWebhook(name: string, payload: unknown): string[] {
    const schema = this.webhooks[name]?.post?.requestBody?.content?.['application/json']?.schema;
    if (!schema) return [`webhook ${name}: not in GitHub's description`];
    const validate = this.compile(`webhook ${name}`, schema);
    if (validate(payload)) return [];
    return (validate.errors ?? []).map((e) => `webhook ${name}: ${describeError('payload', e)}`);
  }

  private compile(key: string, schema: Json): ValidateFunction {
    let validate = this.cache.get(key);
    if (!validate) {
      validate = this.ajv.compile(toJsonSchema(schema) as Json);
      this.cache.set(key, validate);
    }
    return validate;
  }
}

let loaded: OpenApiSpec | undefined;

/** The newest GHES description shipped in @octokit/openapi, parsed once per process. */
export function loadOpenApi(): OpenApiSpec {
  if (!loaded) loaded = new OpenApiSpec(newestGhesSpecFile());
  return loaded;
}

export function newestGhesSpecFile(): string {
  const require = createRequire(import.meta.url);
  const dir = join(dirname(require.resolve('@octokit/openapi/package.json')), 'generated');
  const candidates = readdirSync(dir)
    .map((name) => ({ name, m: /^ghes-(\d+)\.(\d+)\.deref\.json$/.exec(name) }))
    .filter((c): c is { name: string; m: RegExpExecArray } => c.m !== null)
    .sort((a, b) => Number(b.m[1]) - Number(a.m[1]) || Number(b.m[2]) - Number(a.m[2]));
  const newest = candidates[0];
  if (!newest) throw new Error(`no ghes-*.deref.json in ${dir}; is @octokit/openapi installed?`);
  return join(dir, newest.name);
}

function compileRoute(template: string, item: Record<string, unknown>): CompiledRoute {
  const paramNames: string[] = [];
  const segments = template.split('/').slice(1);
  let literalSegments = 0;
  const parts = segments.map((seg, i) => {
    const whole = /^\{([^}]+)\}$/.exec(seg);
    if (whole) {
      paramNames.push(whole[1]!);
      return i === segments.length - 1 && GREEDY_PARAMS.has(whole[1]!) ? '(.+)' : '([^/]+)';
    }
    literalSegments++;
    // Segments such as `{owner}.git` mix literals and parameters.
    return seg
      .split(/(\{[^}]+\})/)
      .map((piece) => {
        const p = /^\{([^}]+)\}$/.exec(piece);
        if (p) {
          paramNames.push(p[1]!);
          return '([^/]+?)';
        }
        return piece.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      })
      .join('');
  });
  const methods: Record<string, Operation> = {};
  for (const m of HTTP_METHODS) if (item[m]) methods[m] = item[m] as Operation;
  // GitHub answers the repository root for an empty content path, with or without the
  // trailing slash (Octokit sends `/contents?ref=…` for `path: ''`).
  const regex = OPTIONAL_TRAILING_PATH.has(template)
    ? new RegExp(`^/${parts.slice(0, -1).join('/')}(?:/(.*?))?/?$`)
    : new RegExp(`^/${parts.join('/')}/?$`);
  return { template, regex, paramNames, literalSegments, methods };
}

const converted = new WeakMap<object, unknown>();

/**
 * OpenAPI 3.0's `nullable` is not JSON Schema; Ajv only accepts it next to `type`. Rewrite it
 * everywhere into a `null` type (or an `anyOf` with null) so composed schemas compile too.
 */
function toJsonSchema(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(toJsonSchema);
  if (!node || typeof node !== 'object') return node;
  const cached = converted.get(node);
  if (cached) return cached;
  const out: Json = {};
  for (const [k, v] of Object.entries(node as Json)) {
    if (k === 'nullable' || k === 'example' || k === 'examples') continue;
    if (k === 'properties' || k === 'patternProperties') {
      // A map of property name → schema: names like `required` or `nullable` are data here.
      out[k] = Object.fromEntries(Object.entries(v as Json).map(([name, sub]) => [name, toJsonSchema(sub)]));
    } else {
      out[k] = k === 'enum' || k === 'required' || k === 'default' || k === 'const' ? v : toJsonSchema(v);
    }
  }
  let result: Json = out;
  if ((node as Json).nullable === true) {
    if (typeof out.type === 'string') {
      out.type = [out.type, 'null'];
      if (Array.isArray(out.enum) && !out.enum.includes(null)) out.enum = [...out.enum, null];
    } else if (out.type === undefined) {
      result = { anyOf: [{ type: 'null' }, out] };
    }
  }
  converted.set(node, result);
  return result;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function resourceName(operationId: string): string {
  const map: Record<string, string> = {
    pulls: 'PullRequest',
    issues: 'Issue',
    reactions: 'Reaction',
    repos: 'Repository',
  };
  return map[operationId.split('/')[0] ?? ''] ?? 'Resource';
}

function describeError(root: string, e: ErrorObject): string {
  const at = `${root}${e.instancePath}`;
  if (e.keyword === 'required') return `${at}/${(e.params as { missingProperty: string }).missingProperty} is required`;
  if (e.keyword === 'additionalProperties') {
    return `${at}/${(e.params as { additionalProperty: string }).additionalProperty} is not a known field`;
  }
  if (e.keyword === 'enum')
    return `${at} must be one of ${JSON.stringify((e.params as { allowedValues: unknown[] }).allowedValues)}`;
  return `${at} ${e.message ?? e.keyword}`;
}

function fieldError(resource: string, e: ErrorObject): GitHubFieldError {
  const path = e.instancePath.split('/').filter(Boolean);
  if (e.keyword === 'required') {
    path.push((e.params as { missingProperty: string }).missingProperty);
    return { resource, field: path.join('.'), code: 'missing_field' };
  }
  return { resource, field: path.join('.'), code: 'invalid', message: e.message };
}
