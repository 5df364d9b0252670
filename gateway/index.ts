// The edge's public API (package export "c4v-media/gateway"): the signalling gateway, join
// tokens, the demo server and its configuration, and the wire mappings for client authors.
export { createGateway, Gateway, DEFAULT_LIMITS } from './Gateway.js';
export type { GatewayOptions, GatewayLimits } from './Gateway.js';
export { JoinTokens } from './tokens.js';
export type { JoinTokenClaims } from './tokens.js';
export { loadConfig, DEFAULT_CONFIG, ENV_VARS } from './config.js';
export type { ServeConfig } from './config.js';
export { startDemoServer } from './serve.js';
export type { DemoServer } from './serve.js';
export { pb, PROTOCOL_VERSIONS, closeFrameFor, closeReasonToWire, errorToWire } from './wire.js';
export type { GatewayCore, GatewayMeeting, GatewayParticipant } from './model.js';
// Issue 15: the operator API under /api/v1, its client and request signing.
export * from './api/index.js';
