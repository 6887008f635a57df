/**
 * The replicated actor of the `actors` scenario: registers overwritten by
 * totally ordered `Put`s (abcast or gbcast) and counters raised by
 * commutative `Add`s (fbcast or cbcast). Whatever order concurrent Adds
 * arrive in, members that delivered the same messages hold the same state,
 * so its hash must agree at every member of a view.
 *
 * @module
 */

import { z } from "zod";
import {
  Actor,
  handler,
  type MessageContext,
  onView,
  type View,
} from "../../../actors/actor.ts";

/** Overwrites a register. */
export const Put = z.object({
  id: z.string(),
  key: z.string(),
  value: z.string(),
});
/** Raises a counter. */
export const Add = z.object({
  id: z.string(),
  key: z.string(),
  n: z.number().int(),
});

/** The ledger's state. */
export interface SimLedgerState {
  registers: Record<string, string>;
  counters: Record<string, number>;
  /** How many messages were applied. */
  applied: number;
}

/** What the scenario hears from the actor. */
export interface SimLedgerHooks {
  /** A message was applied. */
  applied(id: string, context: MessageContext): void;
  /** A view reached the actor (a new member: after its state). */
  view(view: View): void;
}

/** The scenario's actor. */
export class SimLedger extends Actor<SimLedgerState> {
  state: SimLedgerState = { registers: {}, counters: {}, applied: 0 };
  readonly #hooks: SimLedgerHooks;

  constructor(hooks: SimLedgerHooks) {
    super();
    this.#hooks = hooks;
  }

  /** Overwrites a register, in one order everywhere. */
  @handler(Put, { order: "abcast" })
  put(m: z.infer<typeof Put>, context: MessageContext): void {
    this.state.registers[m.key] = m.value;
    this.state.applied++;
    this.#hooks.applied(m.id, context);
  }

  /** Raises a counter (commutes with every other Add). */
  @handler(Add)
  add(m: z.infer<typeof Add>, context: MessageContext): void {
    this.state.counters[m.key] = (this.state.counters[m.key] ?? 0) + m.n;
    this.state.applied++;
    this.#hooks.applied(m.id, context);
  }

  /** Every view, after the previous view's messages. */
  @onView
  view(view: View): void {
    this.#hooks.view(view);
  }

  override checkpoint(): SimLedgerState {
    return this.state;
  }

  override restore(state: SimLedgerState): void {
    this.state = state;
  }

  /** The state as canonical text (keys sorted), for comparing members. */
  hash(): string {
    const sorted = (record: Record<string, unknown>) =>
      Object.keys(record).sort().map((k) => [k, record[k]]);
    return JSON.stringify([
      sorted(this.state.registers),
      sorted(this.state.counters),
      this.state.applied,
    ]);
  }
}
