/**
 * Typed actors in process groups: {@linkcode Actor}, the
 * {@linkcode handler} and {@linkcode onView} decorators, the
 * {@linkcode Node} runtime and the {@linkcode GroupHandle} it returns.
 *
 * @module
 */

export {
  Actor,
  type DispatchTable,
  dispatchTable,
  handler,
  type HandlerEntry,
  type HandlerOptions,
  type MessageContext,
  onView,
  type Ordering,
  ORDERINGS,
  type View,
} from "./actor.ts";
export {
  type EngineMessage,
  type EngineView,
  type FailurePolicy,
  type GroupEngine,
  type GroupEngineEvents,
  GroupHandle,
  type GroupHandleOptions,
  type GroupHandleStats,
  type GroupJoinOptions,
  type HandlerFailure,
  NotMemberError,
  type QueryOptions,
  type QueryReply,
  QueryTimeoutError,
  type ReplyCount,
} from "./group_handle.ts";
export {
  type JoinOptions,
  Node,
  type NodeOptions,
  type NodeReplicaOptions,
} from "./node.ts";
export {
  describeIssues,
  type InferInput,
  type InferOutput,
  type Schema,
  type SchemaIssue,
  type SchemaResult,
  validate,
} from "./schema.ts";
