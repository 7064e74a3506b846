// undici's Agent with its request API, without the rest of the package (fetch, WebSocket,
// EventSource, mocks, caches, proxies, interceptors), which `import("undici")` loads whole: these
// modules load in about 43 ms instead of 100 ms without a code cache, and save ~20 ms of every join
// with one. undici 7 has no "exports" map, so its lib/ paths resolve; package.json pins the
// version,
// and every end-to-end join and renew goes through here.
import Agent from "undici/lib/dispatcher/agent.js";
import Dispatcher from "undici/lib/dispatcher/dispatcher.js";
import api from "undici/lib/api/index.js";
// The TLS connector the Agent builds for a direct connection, built here for a CONNECT tunnel
// (agent/ca/tunnel.ts) from the same options: the Agent loads this module anyway.
import buildConnector from "undici/lib/core/connect.js";

// What undici's index.js does: every dispatcher gets request(), stream(), pipeline() ...
Object.assign(Dispatcher.prototype, api);

export { Agent, buildConnector };
