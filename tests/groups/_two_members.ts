/**
 * Two group members, `a` and `b`, over a simulated network, with the test
 * playing the Oracle.
 *
 * @module
 */

import type { ViewEvent } from "../../oracle/commands.ts";
import { Simulation } from "../../sim/mod.ts";
import { simMembers } from "./_sim_members.ts";

export const encoder = new TextEncoder();
const decoder = new TextDecoder();
export const members = (...names: string[]) =>
  names.map((member) => ({ member, session: member }));

/**
 * Members `a` and `b` in view 1 over a simulated network; the test plays
 * the Oracle: it records gbcast requests and flush reports, and feeds the
 * view events.
 */
export function group() {
  const sim = new Simulation({ seed: 7 });
  const log = new Map<string, string[]>([["a", []], ["b", []]]);
  const requests: { seq: number; payload: string }[] = [];
  const flushed: string[] = [];
  const sent: string[] = [];
  const nodes = simMembers(sim, ["a", "b"], (me) => ({
    deliver: (m) =>
      log.get(me)!.push(
        `${m.strategy} ${decoder.decode(m.payload)} in ${m.viewId}`,
      ),
    viewInstalled: (v) => log.get(me)!.push(`view ${v.viewId}`),
    flushed: (viewId) => flushed.push(`${me} ${viewId}`),
    orderGbcast: (seq, payload) =>
      requests.push({ seq, payload: decoder.decode(payload) }),
    sent: (payload, viewId, seq, strategy) =>
      sent.push(`${strategy} ${decoder.decode(payload)} ${viewId}:${seq}`),
  }));
  sim.runFor(1);
  const feed = (event: ViewEvent) => {
    for (const node of nodes.values()) node.onViewEvent(event);
  };
  feed({
    type: "view",
    group: "/g",
    viewId: 1,
    members: members("a", "b"),
    joined: ["a", "b"],
    left: [],
  });
  return { sim, log, requests, flushed, sent, nodes, feed };
}
