/**
 * Cohort: replicated services out of typed actors in process groups with
 * virtual-synchrony guarantees.
 *
 * This root module exports the stable core: typed actors and the `Node`
 * runtime that hosts them, the Oracle's client and the ways to run an
 * Oracle, and the runtime interfaces. Optional parts have
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
  Actor,
  describeIssues,
  type DispatchTable,
  dispatchTable,
  type EngineMessage,
  type EngineView,
  type FailurePolicy,
  type GroupEngine,
  type GroupEngineEvents,
  GroupHandle,
  type GroupHandleOptions,
  type GroupHandleStats,
  type GroupJoinOptions,
  handler,
  type HandlerEntry,
  type HandlerFailure,
  type HandlerOptions,
  type InferInput,
  type InferOutput,
  type JoinOptions,
  type MessageContext,
  Node,
  type NodeOptions,
  type NodeReplicaOptions,
  NotMemberError,
  onView,
  type Ordering,
  ORDERINGS,
  type QueryOptions,
  type QueryReply,
  QueryTimeoutError,
  type ReplyCount,
  type Schema,
  type SchemaIssue,
  type SchemaResult,
  validate,
  type View,
} from "./actors/mod.ts";
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
  withFields,
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
export type { GroupDriverStatus } from "./groups/driver.ts";
export type { GroupMemberStatus } from "./groups/member.ts";
export type { StateTransferRecord } from "./groups/_member_history.ts";
export type { GroupView as InstalledView, MemberId } from "./groups/types.ts";
