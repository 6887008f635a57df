/**
 * The simulation's record of one node, shared by the simulation, its
 * transports, clocks and links.
 *
 * @module
 */

import type { PeerId } from "../transport/transport.ts";
import type { SimDisk } from "./_disk.ts";
import type { SimTransport } from "./_sim_transport.ts";
import type { SimNode, SimNodeEnv } from "./sim_types.ts";

/** One node: survives its crashes; `incarnation` counts its starts. */
export interface NodeState {
  /** Position in the simulation's node list; also the node of its events. */
  readonly index: number;
  readonly id: PeerId;
  readonly start: (env: SimNodeEnv) => object;
  readonly disk: SimDisk;
  up: boolean;
  /** 0 until the first start. */
  incarnation: number;
  handle: object | undefined;
  /** The current (or last) incarnation's transport. */
  transport: SimTransport | undefined;
  /** The live view handed to the script. */
  readonly view: SimNode<object>;
}

/**
 * Makes the state of a node that has never started, with its live view.
 *
 * @param index Position in the simulation's node list.
 * @param id The node's id.
 * @param start Builds the node on every start.
 * @param disk The node's disk.
 * @returns The state, down, incarnation 0.
 */
export function newNodeState(
  index: number,
  id: PeerId,
  start: (env: SimNodeEnv) => object,
  disk: SimDisk,
): NodeState {
  const node: NodeState = {
    index,
    id,
    start,
    disk,
    up: false,
    incarnation: 0,
    handle: undefined,
    transport: undefined,
    view: {
      id,
      get up() {
        return node.up;
      },
      get incarnation() {
        return node.incarnation;
      },
      get handle() {
        return node.handle;
      },
      disk,
    },
  };
  return node;
}

/**
 * Whether `incarnation` of `node` is the one running; objects of any other
 * incarnation are silenced.
 *
 * @param node The node.
 * @param incarnation The incarnation an object or event belongs to.
 * @returns `true` if the node is up in that incarnation.
 */
export function isAlive(node: NodeState, incarnation: number): boolean {
  return node.up && node.incarnation === incarnation;
}
