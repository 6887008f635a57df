/**
 * The Oracle: Cohort's replicated membership service. A few replicas run
 * Raft over a durable write-ahead log and hold path-named event channels
 * (subscribe and resume where you left off), sessions, locks with fencing
 * tokens, and group views with flush-then-view changes.
 *
 * - {@linkcode startOracleGroup} runs a whole group in this process;
 *   {@linkcode OracleServer} runs one replica on TCP and files (what
 *   `deno task oracle` starts).
 * - {@linkcode OracleClient} talks to any replica, follows the leader,
 *   retries safely and resumes subscriptions with no gap and no duplicate.
 * - {@linkcode OracleReplica} is the replica itself over injected
 *   transport, storage, clock and randomness: the same code runs in the
 *   simulator.
 *
 * @example A group of three, a lock and a channel
 * ```ts
 * import { OracleClient, startOracleGroup } from "@cohort/cohort/oracle";
 *
 * const group = await startOracleGroup({ size: 3 });
 * const client = await OracleClient.connect({ replicas: group.replicas });
 * const { token } = await client.lock("/apps/kv/primary");
 * await client.append("/apps/kv/log", { put: "a", token });
 * await client.unlock("/apps/kv/primary", token);
 * await client.close();
 * await group.stop();
 * ```
 *
 * @module
 */

export {
  OracleClient,
  type OracleClientErrorCode,
  type OracleClientOptions,
  type OracleClientState,
  type OracleClientStats,
  type OracleClientStatus,
  type OracleConnectOptions,
  OracleError,
  type OracleErrorOptions,
  type OracleListOptions,
  type OracleLockInfo,
  type OracleReadResult,
  type OracleViewInfo,
  type OracleViewProposal,
  type SubscribeOptions,
  type Subscription,
} from "./client.ts";
export {
  OracleTreeClient,
  type OracleTreeClientOptions,
  type OracleTreeClientStats,
  type OracleTreeClientStatus,
  type OracleTreeConnectOptions,
} from "./tree_client.ts";
export {
  type OracleGroup,
  type OracleGroupOptions,
  OracleServer,
  type OracleServerOptions,
  type OracleTreeOptions,
  type OracleTuning,
  startOracleGroup,
} from "./server.ts";
export { oracleTreeLink, type OracleTreeLinkOptions } from "./tree_link.ts";
export {
  OracleReplica,
  type OracleReplicaCounters,
  type OracleReplicaObserver,
  type OracleReplicaOptions,
  type OracleReplicaStatus,
  type OracleTreeLink,
  type OracleTreeUpstream,
} from "./replica.ts";
export {
  type AppendOp,
  type ChannelEvent,
  type ClientRequest,
  type CloseSessionOp,
  type DelegateOp,
  type Delegation,
  type EndedSessionsOp,
  type EntryCommand,
  type FlushedOp,
  type GbcastMessage,
  type GbcastOp,
  type GetLockOp,
  type GetStatusOp,
  type GetTreeOp,
  type GetViewOp,
  type GroupView,
  type JoinOp,
  type Json,
  type KeepAliveOp,
  type LeaveOp,
  type ListedChannel,
  type ListedGroup,
  type ListedLock,
  type ListEntries,
  type ListKind,
  type ListOp,
  type ListPage,
  type LockOp,
  MAX_GBCAST_DATA_LENGTH,
  type OpenSessionOp,
  type OpResult,
  type OracleErrorCode,
  type OracleErrorResult,
  type OracleGroupStatus,
  type OracleOp,
  type OracleTree,
  ownerPath,
  type ReadChannelOp,
  type ReadOp,
  type RemoveOp,
  SYSTEM_PREFIX,
  TREE_CHANNEL,
  type TruncateOp,
  type UnlockOp,
  viewChannel,
  type ViewEvent,
  type ViewMember,
  type WriteOp,
} from "./commands.ts";
export type { LogEntry, ReplicaId } from "./raft_types.ts";
export {
  checkPath,
  isUnder,
  MAX_PATH_BYTES,
  MAX_PATH_SEGMENTS,
  MAX_SEGMENT_BYTES,
  type PathOptions,
} from "./path.ts";
export type { StateMachineOptions } from "./state_machine.ts";
export { WalCorruptionError, type WalOptions } from "./wal.ts";
export type { Clock, TimerId } from "../runtime/clock.ts";
export type { LogFields, Logger, LogLevel } from "../runtime/log.ts";
export type { Random } from "../runtime/random.ts";
export type { Storage } from "../runtime/storage.ts";
export type {
  PeerId,
  Transport,
  TransportHandler,
  TransportStats,
} from "../transport/transport.ts";
