// The operator API (issue 15): accounts, meetings, participants and join tokens under /api/v1,
// its client (what the CLI uses) and request signing. Re-exported from c4v-media/gateway.
export { createOperatorApi, OperatorApi, API_PREFIX, joinUrl } from './OperatorApi.js';
export type { OperatorApiOptions } from './OperatorApi.js';
export { signApiRequest, verifyApiRequest, randomApiSecret, API_AUDIENCE, MAX_REQUEST_TOKEN_SECONDS } from './auth.js';
export type { ApiPrincipal, ApiKeyRecord } from './auth.js';
export { ApiClient, ApiError } from './client.js';
export type { ApiClientOptions } from './client.js';
export * as apiSchemas from './schemas.js';
