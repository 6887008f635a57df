/**
 * The error a {@linkcode Simulation} throws when it cannot go on: a node or
 * script callback threw, or the event budget ran out.
 *
 * @module
 */

import type { PeerId } from "../transport/transport.ts";

/** Why a {@linkcode SimulationError} was thrown. */
export type SimulationErrorCode = "callback" | "budget";

/** Details of a {@linkcode SimulationError}. */
export interface SimulationErrorOptions {
  /** Virtual time of the failure, in ms. */
  time: number;
  /** The node whose callback threw, if any. */
  node?: PeerId | undefined;
  /** The value a callback threw, if any. */
  cause?: unknown;
}

/**
 * A simulation could not go on: a node or script callback threw (code
 * `"callback"`, the thrown value is the `cause`), or the event budget ran
 * out (code `"budget"`, a livelock or a run without end).
 */
export class SimulationError extends Error {
  /** Why the simulation stopped. */
  readonly code: SimulationErrorCode;
  /** Virtual time of the failure, in ms. */
  readonly time: number;
  /** The node whose callback threw, if any. */
  readonly node: PeerId | undefined;

  /**
   * Creates a simulation error.
   *
   * @param code Why the simulation stopped.
   * @param message What failed, with the values involved.
   * @param options The virtual time, the node involved and the thrown value.
   */
  constructor(
    code: SimulationErrorCode,
    message: string,
    options: SimulationErrorOptions,
  ) {
    super(
      message,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = "SimulationError";
    this.code = code;
    this.time = options.time;
    this.node = options.node;
  }
}
