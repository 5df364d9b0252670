// Imported first by every public entry (lib/index.ts, gateway/index.ts): ES modules are evaluated
// in import order, so on Node < 22 this throws NODE_VERSION_UNSUPPORTED before any other module of
// the library runs.
import { assertNodeVersion } from './node-version.js';

assertNodeVersion();
