// The edge's public API (package export "c4v-media/gateway"): the signalling gateway, join
// tokens, the demo server and its configuration, and the wire mappings for client authors.
// The guard must stay the first import (Node < 22: NODE_VERSION_UNSUPPORTED before anything runs).
import '../lib/node-guard.js';
export { createGateway, Gateway, DEFAULT_LIMITS } from './Gateway.js';
export type { GatewayOptions, GatewayLimits } from './Gateway.js';
export { JoinTokens, createJoinTokens, joinTokensFromConfig, DEFAULT_CLOCK_TOLERANCE_S } from './tokens.js';
export type { JoinTokenClaims, JoinTokenKey, JoinTokenOptions, JoinTokenAlgorithm, JoinRole, MintOptions } from './tokens.js';
// Issue 10: the client address behind trusted proxies and the Origin rule.
export { TrustedProxies, clientAddress } from './clientAddress.js';
export type { ForwardedHeader } from './clientAddress.js';
export { originAllowed } from './origin.js';
export { loadConfig, DEFAULT_CONFIG, ENV_VARS } from './config.js';
export type { ServeConfig } from './config.js';
export { startDemoServer } from './serve.js';
export type { DemoServer, DemoServerOptions } from './serve.js';
export { pb, PROTOCOL_VERSIONS, closeFrameFor, closeReasonToWire, errorToWire } from './wire.js';
export type { GatewayCore, GatewayMeeting, GatewayParticipant } from './model.js';

// Issue 9: the rest of the wire mappings a client author (and the package's consumer test) needs
// to speak the protocol with the generated code in `pb`.
export { encodeEnvelope, errorFromWire, kindToWire, sourceToWire, rtpParametersToWire, rtpCapabilitiesFromWire } from './wire.js';


// Issue 15: the operator API under /api/v1, its client and request signing.
export * from './api/index.js';
