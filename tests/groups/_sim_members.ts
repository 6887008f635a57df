/**
 * Group members on simulated nodes, wired to their node's transport,
 * with do-nothing callbacks unless a test gives its own.
 *
 * @module
 */

import { GroupMember, type GroupMemberOptions } from "../../groups/member.ts";
import type { SimNodeEnv, Simulation } from "../../sim/mod.ts";

/**
 * Adds one node per name to `sim`, each running a {@linkcode GroupMember}
 * named after it; `options` overrides callbacks per member.
 *
 * @returns The members by name (made when the simulation starts the nodes).
 */
export function simMembers(
  sim: Simulation,
  names: readonly string[],
  options: (me: string, env: SimNodeEnv) => Partial<GroupMemberOptions> =
    () => ({}),
): Map<string, GroupMember> {
  const members = new Map<string, GroupMember>();
  for (const me of names) {
    sim.addNode(me, (env) => {
      const member = new GroupMember({
        me,
        clock: env.clock,
        send: (to, frame) => env.transport.send(to, frame),
        deliver: () => {},
        viewInstalled: () => {},
        flushed: () => {},
        suspect: () => {},
        ...options(me, env),
      });
      env.transport.setHandler({
        onFrame: (from, bytes) => member.receive(from, bytes),
      });
      members.set(me, member);
      return {};
    });
  }
  return members;
}
