// GitHub's GraphQL endpoint (`POST /api/graphql` on GHES), held to GitHub's published schema
// (@octokit/graphql-schema): a query the real API would refuse is refused here too, with
// GitHub's error shape, and recorded as a violation. Answers are executed by graphql-js
// against that schema, so a field the stand-in does not serve answers null (or an error for
// a non-null field), never a made-up shape.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  buildSchema,
  execute,
  parse,
  validate,
  type DocumentNode,
  type GraphQLError,
  type GraphQLSchema,
} from 'graphql';

let schema: GraphQLSchema | undefined;

/** GitHub's public schema, built once per process (about a second: it is 1.2 MB of SDL). */
function githubSchema(): GraphQLSchema {
  if (schema) return schema;
  // The package exports only its ESM entry (which parses a 5 MB JSON on import); its SDL sits next to it.
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', '@octokit', 'graphql-schema', 'schema.graphql');
    if (existsSync(candidate)) {
      schema = buildSchema(readFileSync(candidate, 'utf8'), { assumeValidSDL: true });
      return schema;
    }
    if (dirname(dir) === dir) throw new Error('@octokit/graphql-schema is not installed (npm ci)');
  }
}

/** A GraphQL error as GitHub words it: `message`, `locations`, and for validation errors an `extensions.code`. */
function githubError(e: GraphQLError): Record<string, unknown> {
  return {
    message: e.message,
    ...(e.locations ? { locations: e.locations } : {}),
    ...(e.path ? { path: e.path } : {}),
    ...(e.extensions && Object.keys(e.extensions).length ? { extensions: e.extensions } : {}),
  };
}

export interface GraphqlReply {
  status: number;
  body: Record<string, unknown>;
}

/**
 * Answers one GraphQL request body against GitHub's schema. `root` resolves the query's and
 * the mutation's top-level fields (graphql-js calls a function field with its arguments);
 * a resolver throws `GraphqlNotFound` for GitHub's NOT_FOUND answer.
 */
export function answerGraphql(body: unknown, root: Record<string, unknown>, violations: string[]): GraphqlReply {
  const b = (body ?? {}) as { query?: unknown; variables?: unknown; operationName?: unknown };
  if (typeof b.query !== 'string')
    return {
      status: 400,
      body: {
        message: 'A query attribute must be specified and must be a string.',
        documentation_url: 'https://docs.github.com/graphql',
      },
    };
  let document: DocumentNode;
  try {
    document = parse(b.query);
  } catch (err) {
    violations.push(`GraphQL: the query does not parse: ${(err as Error).message}`);
    return { status: 200, body: { errors: [githubError(err as GraphQLError)] } };
  }
  const invalid = validate(githubSchema(), document);
  if (invalid.length > 0) {
    violations.push(...invalid.map((e) => `GraphQL: GitHub's schema refuses the query: ${e.message}`));
    return { status: 200, body: { errors: invalid.map(githubError) } };
  }
  const result = execute({
    schema: githubSchema(),
    document,
    rootValue: root,
    variableValues: (b.variables ?? {}) as Record<string, unknown>,
    operationName: typeof b.operationName === 'string' ? b.operationName : undefined,
  }) as { data?: unknown; errors?: readonly GraphQLError[] };
  if ('then' in result) throw new Error('the stand-in answers GraphQL synchronously');
  const errors = (result.errors ?? []).map((e) =>
    e.originalError instanceof GraphqlNotFound
      ? { type: 'NOT_FOUND', path: e.path, locations: e.locations, message: e.message }
      : githubError(e),
  );
  return { status: 200, body: { data: result.data ?? null, ...(errors.length ? { errors } : {}) } };
}

/** GitHub's NOT_FOUND, e.g. "Could not resolve to a Repository with the name 'o/r'." */
export class GraphqlNotFound extends Error {}
