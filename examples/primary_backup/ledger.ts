/**
 * The replicated state of the primary/backup example: a bank ledger.
 *
 * Every member holds the whole ledger. The primary (the oldest member of
 * the view) turns each client request into an abcast query; every member
 * applies it in the same order and answers; the primary tells the client
 * "done" only once every member of the view has it, so the update
 * survives the primary's crash. Requests carry the client's id and a
 * sequence number: a retried request (its first try's fate unknown to
 * the client) is applied once.
 *
 * @module
 */

import { z } from "zod";
import { Actor, handler, onView, type View } from "../../mod.ts";

/** A deposit (negative: a withdrawal) from a client. */
export const Deposit = z.object({
  client: z.string().min(1).max(64),
  seq: z.number().int().positive(),
  account: z.string().min(1).max(64),
  amount: z.number().int().min(-1_000_000).max(1_000_000),
});

/** What a deposit looks like. */
export type DepositRequest = z.infer<typeof Deposit>;

/** The ledger's state: balances, and each client's last applied request. */
export interface LedgerState {
  /** Balance per account. */
  balances: Record<string, number>;
  /** Per client, the highest request seq applied. */
  applied: Record<string, number>;
}

/** What a member answers to a deposit. */
export interface DepositReply {
  /** The account's balance after it. */
  readonly balance: number;
  /** Whether it was applied before (a retry). */
  readonly duplicate: boolean;
}

/** The ledger actor. */
export class Ledger extends Actor<LedgerState> {
  /** The state. */
  state: LedgerState = { balances: {}, applied: {} };
  /** Told of every view (the member process prints it). */
  viewChanged: (view: View) => void = () => {};

  /** Applies a deposit once, in the group's total order. */
  @handler(Deposit, { order: "abcast" })
  deposit(request: DepositRequest): DepositReply {
    const { balances, applied } = this.state;
    const duplicate = request.seq <= (applied[request.client] ?? 0);
    if (!duplicate) {
      // Requests of one client come one at a time, in seq order.
      applied[request.client] = request.seq;
      balances[request.account] = (balances[request.account] ?? 0) +
        request.amount;
    }
    return { balance: balances[request.account] ?? 0, duplicate };
  }

  /** A new view: the primary may have changed. */
  @onView
  view(view: View): void {
    this.viewChanged(view);
  }

  /** The ledger, for a new member. */
  override checkpoint(): LedgerState {
    return this.state;
  }

  /** A new member takes the ledger the others have. */
  override restore(state: LedgerState): void {
    this.state = state;
  }
}
