// The OpenAPI 3.1 document of the operator API, generated from the route table and the zod
// schemas that validate the requests (OpenAPI 3.1 uses JSON Schema 2020-12, which is what
// z.toJSONSchema writes). Schemas with a `meta({ id })` become components, referenced by $ref.
import { createRequire } from 'node:module';
import { z } from 'zod';
import type { Route } from './OperatorApi.js';
import { ErrorBody } from './schemas.js';

const require = createRequire(import.meta.url);
const VERSION = (require('../../../package.json') as { version: string }).version;

const REASONS: Record<number, string> = {
  400: 'Schema error (the field is named in error.field) or a bad value',
  401: 'Missing, malformed, unknown or expired API request token (INVALID_TOKEN, TOKEN_EXPIRED)',
  403: 'NOT_PERMITTED (a meeting-scoped key outside its meeting) or SETTING_LOCKED',
  404: 'NOT_FOUND',
  409: 'INVALID_STATE (exists already), MEETING_ENDED or MEETING_FULL',
  429: 'RATE_LIMITED',
  503: 'REGION_UNAVAILABLE or NO_WORKER_AVAILABLE',
};

type JsonSchema = Record<string, unknown>;

/** @internal Builds the document from the routes (with the prefix they are served under). */
export function buildOpenApiDocument(routes: readonly Route[], prefix: string): Record<string, unknown> {
  // Every schema with a meta id (schemas.ts) becomes a component; references between them use
  // the components' URIs.
  const { schemas } = z.toJSONSchema(z.globalRegistry, {
    target: 'draft-2020-12',
    io: 'input',
    unrepresentable: 'any',
    uri: (id) => `#/components/schemas/${id}`,
  }) as { schemas: Record<string, JsonSchema> };
  const components: Record<string, JsonSchema> = {};
  for (const [id, json] of Object.entries(schemas)) {
    const { $schema: _s, $id: _d, id: _i, ...rest } = json;
    components[id] = rest;
  }
  const refOf = {
    get(schema: z.ZodType): JsonSchema {
      const id = z.globalRegistry.get(schema)?.id;
      if (!id || !components[id]) throw new TypeError('every API body and response schema needs a meta id');
      return { $ref: `#/components/schemas/${id}` };
    },
  };
  const errorRef = refOf.get(ErrorBody);
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const path = `${prefix}${r.path}`;
    const params = [...r.path.matchAll(/\{(\w+)\}/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
    const responses: Record<string, unknown> = {
      [String(r.status)]: { description: 'OK', content: { 'application/json': { schema: refOf.get(r.response) } } },
    };
    for (const s of [...(r.body ? [400] : []), 401, ...r.refusals, 429]) {
      responses[String(s)] ??= { description: REASONS[s] ?? 'Refused', content: { 'application/json': { schema: errorRef } } };
    }
    (paths[path] ??= {})[r.method.toLowerCase()] = {
      operationId: r.operationId,
      summary: r.summary,
      tags: [r.path.split('/')[1]],
      ...(params.length > 0 ? { parameters: params } : {}),
      ...(r.body ? { requestBody: { required: true, content: { 'application/json': { schema: refOf.get(r.body) } } } } : {}),
      responses,
      'x-c4v-scope': r.scope === 'admin' ? 'admin key' : 'admin key, or a key scoped to this meeting',
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'c4v-media operator API',
      version: VERSION,
      description:
        'Accounts, meetings, participants and join tokens of a c4v-media server. Every request carries ' +
        '`Authorization: Bearer <JWT>`: a JWT the caller signs with its API key secret (HS256, header kid = key id, ' +
        'aud "c4v-media/api/v1", iat and exp at most 600 s apart). Errors are `{ "error": { "code", "reason", "field"? } }` ' +
        "with the library's error codes.",
    },
    servers: [{ url: '/' }],
    security: [{ apiKeyJwt: [] }],
    paths,
    components: {
      schemas: components,
      securitySchemes: { apiKeyJwt: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT (HS256, kid = API key id)' } },
    },
  };
}
