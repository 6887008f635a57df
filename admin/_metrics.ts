/**
 * The admin endpoint's `/metrics`: the Prometheus text exposition format
 * (version 0.0.4), every name prefixed `cohort_`, counters ending in
 * `_total`, units in the name (`_seconds`).
 *
 * @module
 */

import type { AdminGroup, AdminNode, AdminOracle } from "./_source.ts";

/** The content type of the Prometheus text format. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** The admin endpoint's own counters. */
export interface AdminCounters {
  /** Requests answered, by status code. */
  readonly requests: Map<number, number>;
  /** Requests refused before any work: by reason (`unauthorized`, `busy`, `too_large`). */
  readonly refused: Map<string, number>;
}

type Labels = Record<string, string>;
type Sample = readonly [Labels, number];

/** One metric family: name, type, help, samples. */
interface Family {
  readonly name: string;
  readonly type: "counter" | "gauge";
  readonly help: string;
  readonly samples: readonly Sample[];
}

/**
 * Renders the metrics of a node or replica.
 *
 * @param node This process.
 * @param groups Its members.
 * @param oracle The Oracle as seen here, or `null` if it could not be read.
 * @param counters The admin endpoint's counters.
 * @returns The exposition text, ending with a newline.
 */
export function renderMetrics(
  node: AdminNode,
  groups: readonly AdminGroup[],
  oracle: AdminOracle | null,
  counters: AdminCounters,
): string {
  const per = (value: (g: AdminGroup) => number): Sample[] =>
    groups.map((g) => [{ group: g.path, member: g.member }, value(g)]);
  const replicas = oracle?.local ?? [];
  const perReplica = (
    value: (r: (typeof replicas)[number]) => number,
  ): Sample[] => replicas.map((r) => [{ replica: r.id }, value(r)]);
  const families: Family[] = [
    {
      name: "cohort_info",
      type: "gauge",
      help: "Always 1; the labels say what runs here.",
      samples: [[{ id: node.id, kind: node.kind, version: node.version }, 1]],
    },
    {
      name: "cohort_uptime_seconds",
      type: "gauge",
      help: "Seconds since this process started serving.",
      samples: [[{}, node.uptimeSeconds]],
    },
    {
      name: "cohort_group_view_id",
      type: "gauge",
      help: "The id of the installed view (0 before the first).",
      samples: per((g) => g.view?.id ?? 0),
    },
    {
      name: "cohort_group_view_members",
      type: "gauge",
      help: "Members of the installed view.",
      samples: per((g) => g.view?.members.length ?? 0),
    },
    {
      name: "cohort_group_primary",
      type: "gauge",
      help: "1 while the member hears from the Oracle's majority.",
      samples: per((g) => g.primary ? 1 : 0),
    },
    {
      name: "cohort_group_messages_sent_total",
      type: "counter",
      help: "Messages this member multicast.",
      samples: per((g) => g.sent),
    },
    {
      name: "cohort_group_messages_delivered_total",
      type: "counter",
      help: "Messages delivered to the actor.",
      samples: per((g) => g.delivered),
    },
    {
      name: "cohort_group_messages_retransmitted_total",
      type: "counter",
      help: "Own messages sent again (NAK answers and tail resends).",
      samples: per((g) => g.retransmitted),
    },
    {
      name: "cohort_group_messages_dropped_total",
      type: "counter",
      help: "Messages and frames dropped as invalid or malformed.",
      samples: per((g) => g.dropped),
    },
    {
      name: "cohort_group_handler_failures_total",
      type: "counter",
      help: "Handlers that threw.",
      samples: per((g) => g.handlerFailures),
    },
    {
      name: "cohort_group_unstable_messages",
      type: "gauge",
      help: "Messages held, not yet known received by every member.",
      samples: per((g) => g.unstable),
    },
    {
      name: "cohort_group_queued_messages",
      type: "gauge",
      help: "Application sends waiting (no view, a flush, or a full window).",
      samples: per((g) => g.queued),
    },
    {
      name: "cohort_group_flushes_total",
      type: "counter",
      help: "Flushes finished (views installed after one).",
      samples: per((g) => g.flushes),
    },
    {
      name: "cohort_group_last_flush_duration_seconds",
      type: "gauge",
      help: "How long the last flush took, from proposal to new view.",
      samples: groups.filter((g) => g.lastFlushMs !== null).map((
        g,
      ) => [{ group: g.path, member: g.member }, g.lastFlushMs! / 1000]),
    },
    {
      name: "cohort_oracle_leader",
      type: "gauge",
      help: "1 for the replica known to lead the Oracle.",
      samples: oracle?.leader == null ? [] : [[{ replica: oracle.leader }, 1]],
    },
    {
      name: "cohort_oracle_leader_term",
      type: "gauge",
      help:
        "The Oracle leader's term, as the leader (or this replica) reports it.",
      samples: oracle?.term == null ? [] : [[{}, oracle.term]],
    },
    {
      name: "cohort_oracle_commit_index",
      type: "gauge",
      help:
        "The Oracle's commit index (its log position), from the same source.",
      samples: oracle?.commitIndex == null ? [] : [[{}, oracle.commitIndex]],
    },
    {
      name: "cohort_oracle_sessions",
      type: "gauge",
      help: "Live Oracle sessions, from the same source.",
      samples: oracle?.sessions == null ? [] : [[{}, oracle.sessions]],
    },
    {
      name: "cohort_oracle_replica_term",
      type: "gauge",
      help: "The term of each replica running in this process.",
      samples: perReplica((r) => r.term),
    },
    {
      name: "cohort_oracle_replica_commit_index",
      type: "gauge",
      help: "The highest log index known committed, per replica running here.",
      samples: perReplica((r) => r.commitIndex),
    },
    {
      name: "cohort_oracle_replica_applied_index",
      type: "gauge",
      help: "The highest log index applied, per replica running here.",
      samples: perReplica((r) => r.appliedIndex),
    },
    {
      name: "cohort_oracle_replica_leader",
      type: "gauge",
      help: "1 for a replica running here that leads, else 0.",
      samples: perReplica((r) => r.role === "leader" ? 1 : 0),
    },
    {
      name: "cohort_admin_requests_total",
      type: "counter",
      help: "Admin requests answered, by status code.",
      samples: [...counters.requests].map(([code, n]) => [
        { code: String(code) },
        n,
      ]),
    },
    {
      name: "cohort_admin_requests_refused_total",
      type: "counter",
      help: "Admin requests refused before any work, by reason.",
      samples: [...counters.refused].map(([reason, n]) => [{ reason }, n]),
    },
  ];
  const lines: string[] = [];
  for (const family of families) {
    lines.push(`# HELP ${family.name} ${family.help}`);
    lines.push(`# TYPE ${family.name} ${family.type}`);
    for (const [labels, value] of family.samples) {
      lines.push(`${family.name}${labelText(labels)} ${numberText(value)}`);
    }
  }
  return lines.join("\n") + "\n";
}

function labelText(labels: Labels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return "";
  return `{${entries.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}}`;
}

/** Escapes a label value: backslash, double quote and newline. */
function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(
    /\n/g,
    "\\n",
  );
}

function numberText(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}
