/**
 * Cohort: replicated services out of typed actors in process groups with
 * virtual-synchrony guarantees.
 *
 * This root module exports the stable core: the Oracle's client and the
 * ways to run an Oracle, and the runtime interfaces. Optional parts have
 * their own entry points: `@cohort/cohort/oracle` (the Oracle in full:
 * replica, protocol types, path rules), `@cohort/cohort/transport` (TCP,
 * UDP and in-memory transports) and `@cohort/cohort/sim` (the
 * deterministic simulator).
 *
 * @example Encode a message with the default codec
 * ```ts
 * import { JsonCodec } from "@cohort/cohort";
 * import assert from "node:assert/strict";
 *
 * const codec = new JsonCodec<{ key: string }>();
 * assert.deepEqual(codec.decode(codec.encode({ key: "a" })), { key: "a" });
 * ```
 *
 * @module
 */

export {
  type Clock,
  CryptoRandom,
  FileStorage,
  type FileStorageOptions,
  JsonLogger,
  type JsonLoggerOptions,
  type LogFields,
  type Logger,
  type LogLevel,
  type Random,
  silentLogger,
  type Storage,
  SystemClock,
  type TimerId,
} from "./runtime/mod.ts";
export {
  type Codec,
  JsonCodec,
  type JsonCodecOptions,
  type PeerId,
  type Transport,
  type TransportHandler,
  type TransportOptions,
  type TransportStats,
} from "./transport/mod.ts";
export {
  type ChannelEvent,
  type GroupView,
  type Json,
  OracleClient,
  type OracleClientOptions,
  type OracleConnectOptions,
  OracleError,
  type OracleErrorCode,
  type OracleGroup,
  type OracleGroupOptions,
  OracleServer,
  type OracleServerOptions,
  startOracleGroup,
  type SubscribeOptions,
  type Subscription,
  type ViewEvent,
  type ViewMember,
} from "./oracle/mod.ts";
