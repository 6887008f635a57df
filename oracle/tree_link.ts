/**
 * How a child Oracle group's leader reaches its parent and the root:
 * an {@linkcode OracleTreeLink} over {@linkcode OracleClient}s, for the
 * real driver ({@linkcode OracleServer} with `tree`) and the simulator
 * alike.
 *
 * @module
 */

import { openOrClose } from "./_open_session.ts";
import type { OracleClient } from "./client.ts";
import type { OracleTreeLink, OracleTreeUpstream } from "./replica.ts";

/** Options of {@linkcode oracleTreeLink}. */
export interface OracleTreeLinkOptions {
  /** This group's name, as its parent's delegations name it. */
  name: string;
  /** Makes a new, unopened client of the parent group (a fresh session id each time). */
  parent: () => Promise<OracleClient>;
  /** Makes a new, unopened client of the root group; default: the parent is the root. */
  root?: (() => Promise<OracleClient>) | undefined;
  /** Milliseconds between two syncs of the leader with upstream. */
  syncMs?: number | undefined;
}

/**
 * A tree link whose every connection opens fresh sessions at the parent
 * (and at the root when it is another group) and whose upstream closes
 * them.
 *
 * @example The link of group "payments", whose parent is the root
 * ```ts ignore
 * import { OracleClient } from "@cohort/cohort/oracle";
 * import { oracleTreeLink } from "./tree_link.ts";
 *
 * const link = oracleTreeLink({
 *   name: "payments",
 *   parent: async () => new OracleClient(rootTransport, { replicas: ["1", "2", "3"], clock, random }),
 * });
 * ```
 *
 * @param options The group's name, the client factories and the sync period.
 * @returns The link to hand to `OracleReplica.open` (option `tree`).
 */
export function oracleTreeLink(options: OracleTreeLinkOptions): OracleTreeLink {
  const { name, parent, root } = options;
  return {
    name,
    syncMs: options.syncMs,
    async connect(): Promise<OracleTreeUpstream> {
      const parentClient = await openOrClose(await parent());
      let rootClient = parentClient;
      if (root !== undefined) {
        try {
          rootClient = await openOrClose(await root());
        } catch (error) {
          await parentClient.close();
          throw error;
        }
      }
      return {
        tree: () => parentClient.getTree(),
        endedSessions: (sessions) => rootClient.endedSessions(sessions),
        close: async () => {
          await Promise.all(
            [...new Set([parentClient, rootClient])].map((c) => c.close()),
          );
        },
      };
    },
  };
}
