/**
 * The Oracle client's option defaults, shared by `OracleClient` and
 * `OracleTreeClient`.
 *
 * @module
 */

/** Default `sessionTtlMs`. */
export const DEFAULT_SESSION_TTL_MS = 10_000;
/** Default `requestTimeoutMs`. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 300;
/** Default `deadlineMs`. */
export const DEFAULT_DEADLINE_MS = 30_000;
/** Default `maxInflight`. */
export const DEFAULT_MAX_INFLIGHT = 1024;
/** Default `limit` of a read. */
export const DEFAULT_READ_LIMIT = 1000;
