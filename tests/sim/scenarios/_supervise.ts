/**
 * A supervisor for the Oracle scenarios, as a process manager would be: a
 * replica that stopped on a storage failure is restarted from what its
 * disk holds.
 *
 * @module
 */

import type { PeerId, Simulation } from "../../../sim/mod.ts";
import type { OracleReplica } from "../../../oracle/replica.ts";

/** Every 50 ms, restarts each running replica that stopped on a failure. */
export function superviseReplicas(
  sim: Simulation,
  replicas: () => Iterable<[PeerId, OracleReplica]>,
): void {
  const supervise = () => {
    for (const [id, replica] of replicas()) {
      if (sim.node(id).up && replica.status().failure !== null) {
        sim.crash(id);
        sim.restart(id);
      }
    }
    sim.schedule(50, supervise);
  };
  sim.schedule(50, supervise);
}
