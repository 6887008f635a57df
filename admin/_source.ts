/**
 * What the admin endpoint shows and acts on, read from a {@linkcode Node}
 * or from one Oracle replica ({@linkcode OracleServer}) through one
 * interface, so the routes do not care which they serve.
 *
 * @module
 */

import type { Node } from "../actors/node.ts";
import type { OracleClient } from "../oracle/client.ts";
import { OracleError } from "../oracle/client.ts";
import type {
  ListEntries,
  ListKind,
  ListPage,
  OpResult,
  OracleGroupStatus,
} from "../oracle/commands.ts";
import type { OracleReplicaStatus } from "../oracle/replica.ts";
import type { OracleServer } from "../oracle/server.ts";
import { OnFirstUse } from "../runtime/_on_first_use.ts";
import type { StateTransferRecord } from "../groups/_member_history.ts";
import type { GroupDriverStatus } from "../groups/driver.ts";
import { VERSION } from "./_version.ts";

/** What a member is doing in its group. */
export type GroupRole =
  | "coordinator"
  | "member"
  | "joining"
  | "flushing"
  | "excluded";

/** One member this process has in one group, as `/v1/groups` shows it. */
export interface AdminGroup {
  /** The group's path. */
  readonly path: string;
  /** The member's name (`label@host:port`). */
  readonly member: string;
  /** Coordinator (first in the view), member, joining (no view or state yet), flushing, or excluded. */
  readonly role: GroupRole;
  /** The installed view, or `null` before the first. */
  readonly view:
    | { readonly id: number; readonly members: readonly string[] }
    | null;
  /** Whether the member's endpoint hears from the Oracle's majority. */
  readonly primary: boolean;
  /** Messages multicast, every view (the abcast sequencer's ordering messages included). */
  readonly sent: number;
  /** Messages delivered to the actor. */
  readonly delivered: number;
  /** Own messages sent again (NAK answers and tail resends). */
  readonly retransmitted: number;
  /** Messages held, not yet known received by every member. */
  readonly unstable: number;
  /** Application sends waiting (no view, a flush, or a full window). */
  readonly queued: number;
  /** Flushes finished. */
  readonly flushes: number;
  /** How long the last flush took, in ms, or `null`. */
  readonly lastFlushMs: number | null;
  /** The latest state transfers, oldest first. */
  readonly stateTransfers: readonly StateTransferRecord[];
  /** Messages handed to a handler. */
  readonly handled: number;
  /** Messages dropped: refused by a schema, malformed, or malformed frames. */
  readonly dropped: number;
  /** Handlers that threw. */
  readonly handlerFailures: number;
}

/** This process, as `/v1/node` shows it. */
export interface AdminNode {
  /** The node's id, or the replica's. */
  readonly id: string;
  /** A node hosting actors, or an Oracle replica. */
  readonly kind: "node" | "oracle";
  /** Where it listens: members by label, or the replica. */
  readonly addresses: Readonly<Record<string, string>>;
  /** Cohort's version. */
  readonly version: string;
  /** Seconds since it started. */
  readonly uptimeSeconds: number;
}

/** The Oracle as this process sees it, as `/v1/oracle` shows it. */
export interface AdminOracle {
  /** Its replicas: id to `"host:port"`. */
  readonly replicas: Readonly<Record<string, string>>;
  /**
   * The leader: as the leader itself says (a node's endpoint reads the
   * Oracle's `get_status` linearizably), or as this replica knows it (a
   * replica's endpoint); `null` if unknown.
   */
  readonly leader: string | null;
  /** The term, from the same source; `null` if the Oracle could not answer. */
  readonly term: number | null;
  /** The commit index (the Oracle's log position), from the same source, or `null`. */
  readonly commitIndex: number | null;
  /** Live sessions, from the same source, or `null`. */
  readonly sessions: number | null;
  /** The status of each replica running in this process. */
  readonly local: readonly OracleReplicaStatus[];
}

/** Everything the admin routes read and do. */
export interface AdminSource {
  /** This process. */
  node(): Promise<AdminNode>;
  /** This process's members, sorted by path then member. */
  groups(): AdminGroup[];
  /** The Oracle. */
  oracle(): Promise<AdminOracle>;
  /** One page of the Oracle's locks, channels or group views under `prefix`. */
  list<K extends ListKind>(
    kind: K,
    prefix: string,
    after: string | undefined,
    limit: number,
  ): Promise<ListPage<ListEntries[K]>>;
  /** Leaves `path` with every member this process has there; `false` if it has none. */
  leave(path: string): Promise<boolean>;
  /** Asks the Oracle to force `member` out of `path`; returns the proposed view. */
  exclude(
    path: string,
    member: string,
    reason: string,
  ): Promise<{ viewId: number }>;
  /** Releases what the source opened (an Oracle session of its own). */
  close(): Promise<void>;
}

/**
 * The admin source of a {@linkcode Node}: its members, its Oracle
 * session and the replicas it runs, if any.
 */
export function nodeSource(node: Node): AdminSource {
  return {
    async node() {
      return {
        id: node.id,
        kind: "node",
        addresses: await node.addresses(),
        version: VERSION,
        uptimeSeconds: (Date.now() - node.startedAt) / 1000,
      };
    },
    groups() {
      const groups: AdminGroup[] = [];
      for (const handle of node.groups()) {
        const status = handle.memberStatus();
        const stats = handle.stats();
        const view = status?.view ?? null;
        groups.push({
          path: handle.group,
          member: handle.me,
          role: roleOf(handle.me, status),
          view: view === null
            ? null
            : { id: view.viewId, members: view.members },
          primary: status?.primary ?? false,
          sent: status?.sent ?? 0,
          delivered: status?.delivered ?? 0,
          retransmitted: status?.retransmitted ?? 0,
          unstable: status?.unstable ?? 0,
          queued: status?.queued ?? 0,
          flushes: status?.flushes ?? 0,
          lastFlushMs: status?.lastFlushMs ?? null,
          stateTransfers: status?.stateTransfers ?? [],
          handled: stats.handled,
          dropped: stats.invalidReceived + stats.malformedReceived +
            (status?.badFrames ?? 0),
          handlerFailures: stats.handlerFailures,
        });
      }
      return groups.sort((a, b) =>
        compare(a.path, b.path) || compare(a.member, b.member)
      );
    },
    async oracle() {
      const client = await node.oracleClient();
      // From the leader, linearizably; if it cannot answer, what is known here.
      const group = await client.groupStatus().catch(() => ({
        leader: client.status().leader,
      }));
      return oracleInfo(node.oracle, group, node.replicaStatus());
    },
    async list(kind, prefix, after, limit) {
      const client = await node.oracleClient();
      return await client.list(kind, prefix, { after, limit });
    },
    async leave(path) {
      const handles = node.groups().filter((h) => h.group === path);
      await Promise.all(handles.map((h) => h.leave()));
      return handles.length > 0;
    },
    async exclude(path, member, reason) {
      const client = await node.oracleClient();
      return await client.remove(path, member, reason);
    },
    // The node's Oracle session is the node's: it closes with the node.
    close: () => Promise.resolve(),
  };
}

/** Options of {@linkcode replicaSource}. */
export interface ReplicaSourceOptions {
  /** Every replica of the group: id to `"host:port"`. */
  readonly replicas: Readonly<Record<string, string>>;
  /** Opens a session with the group, for `exclude` (the replica itself has none). */
  readonly connect: () => Promise<OracleClient>;
}

/**
 * The admin source of one Oracle replica: its own status, and lists read
 * from its applied state (a follower's may lag the leader's a little).
 */
export function replicaSource(
  server: OracleServer,
  options: ReplicaSourceOptions,
): AdminSource {
  const startedAt = Date.now();
  const client = new OnFirstUse(options.connect);
  return {
    node() {
      const status = server.status();
      return Promise.resolve({
        id: status.id,
        kind: "oracle",
        addresses: { [status.id]: options.replicas[status.id] ?? "" },
        version: VERSION,
        uptimeSeconds: (Date.now() - startedAt) / 1000,
      });
    },
    groups: () => [],
    oracle() {
      const status = server.inspect({ op: "get_status" });
      const group = "ok" in status
        ? status.ok as unknown as OracleGroupStatus
        : {};
      return Promise.resolve(
        oracleInfo(options.replicas, group, [server.status()]),
      );
    },
    list(kind, prefix, after, limit) {
      const result: OpResult = server.inspect({
        op: "list",
        kind,
        prefix,
        after,
        limit,
      });
      if ("error" in result) {
        return Promise.reject(
          new OracleError(result.error.code, result.error.message),
        );
      }
      return Promise.resolve(
        result.ok as unknown as ListPage<ListEntries[typeof kind]>,
      );
    },
    leave: () => Promise.resolve(false),
    async exclude(path, member, reason) {
      return await (await client.get()).remove(path, member, reason);
    },
    async close() {
      await (await client.started())?.close();
    },
  };
}

/** The Oracle's summary from the leader known and the local replicas' status. */
function oracleInfo(
  replicas: Readonly<Record<string, string>>,
  group: Partial<OracleGroupStatus>,
  local: OracleReplicaStatus[],
): AdminOracle {
  return {
    replicas: { ...replicas },
    leader: group.leader ?? null,
    term: group.term ?? null,
    commitIndex: group.commitIndex ?? null,
    sessions: group.sessions ?? null,
    local,
  };
}

function roleOf(me: string, status: GroupDriverStatus | undefined): GroupRole {
  if (status === undefined || status.excluded) return "excluded";
  if (status.view === null || status.awaitingState) return "joining";
  if (status.flushing !== null) return "flushing";
  return status.view.members[0] === me ? "coordinator" : "member";
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
