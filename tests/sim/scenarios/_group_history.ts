/**
 * The recorded history of a group scenario: what every sender sent and what
 * every member (one incarnation) saw, in order, plus the recorder a
 * scenario feeds while it runs. The recorder applies the per-event rules of
 * `_group_checks.ts` as events arrive, so a violation is found at the
 * moment it happens; `checkGroupHistory(recorder.history)` checks the rest
 * at the end.
 *
 * @module
 */

import { HistoryReplay } from "./_group_checks.ts";

/** The ordering strategies of the group engine. */
export type Strategy = "fbcast" | "cbcast" | "abcast" | "gbcast";

/** Names one message: its unique id, sender, strategy and view. */
export interface MessageRef {
  /** Unique over the whole run, for example `${sender}:${n}`. */
  readonly id: string;
  /** The incarnation name of the sender. */
  readonly sender: string;
  readonly strategy: Strategy;
  /** The view the message is sent in (and so delivered in). */
  readonly viewId: number;
}

/** One message as its sender sent it. */
export interface SentRecord extends MessageRef {
  readonly at: number;
  /**
   * How many events the sender had recorded when it sent: the deliveries
   * among its first `deliveredBefore` events are the causal past of the
   * message (with the sender's own earlier sends).
   */
  readonly deliveredBefore: number;
}

/** A member installs a view. */
export interface ViewEvent {
  readonly type: "view";
  readonly viewId: number;
  /** The ordered member list, incarnation names. */
  readonly members: readonly string[];
  readonly at: number;
}

/** A member delivers a message (as the engine tags it). */
export interface DeliverEvent extends MessageRef {
  readonly type: "deliver";
  readonly at: number;
}

/**
 * The hash of a member's state right after it installs `viewId` (a joiner:
 * right after it restores the transferred state).
 */
export interface StateEvent {
  readonly type: "state";
  readonly viewId: number;
  readonly hash: string;
  readonly at: number;
}

/** The incarnation ends: it crashed, or it left (voluntarily or forced out). */
export interface EndEvent {
  readonly type: "crash" | "leave";
  readonly at: number;
}

/** One thing one member saw. */
export type MemberEvent = ViewEvent | DeliverEvent | StateEvent | EndEvent;

/** Everything a group scenario recorded. */
export interface GroupHistory {
  /** Every message sent, in the order the sends happened. */
  readonly sent: readonly SentRecord[];
  /** Each incarnation's events, in order; keys in first-recorded order. */
  readonly members: ReadonlyMap<string, readonly MemberEvent[]>;
}

/** Options of {@linkcode GroupRecorder}. */
export interface GroupRecorderOptions {
  /** The clock (virtual in the simulator) that stamps every record. */
  readonly now: () => number;
  /** Called once, with the first violation the per-event rules find. */
  readonly onFailure?: ((message: string) => void) | undefined;
}

/**
 * Records a group scenario as it runs and applies the per-event rules
 * (view order and agreement, integrity, FIFO, delivery in the current view,
 * state hashes) online.
 *
 * Call `sent` before the engine can deliver the message anywhere (its own
 * sender included), with the view the engine sends it in: the sender's
 * events recorded so far are the message's causal past. A restarted member
 * records under a new incarnation name.
 *
 * @example Recording a view, a send and its delivery
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const recorder = new GroupRecorder({ now: () => 0 });
 * recorder.view("a:1", { viewId: 1, members: ["a:1"] });
 * const m = { id: "a:1:1", sender: "a:1", strategy: "fbcast", viewId: 1 } as const;
 * recorder.sent(m);
 * recorder.delivered("a:1", m);
 * assert.equal(recorder.failure, undefined);
 * ```
 */
export class GroupRecorder {
  readonly #now: () => number;
  readonly #onFailure: ((message: string) => void) | undefined;
  readonly #sent: SentRecord[] = [];
  readonly #members = new Map<string, MemberEvent[]>();
  readonly #replay = new HistoryReplay();
  #reported = false;
  /** What was recorded so far (live: it grows with later records). */
  readonly history: GroupHistory = { sent: this.#sent, members: this.#members };

  /** @param options the clock, and who hears of the first violation */
  constructor(options: GroupRecorderOptions) {
    this.#now = options.now;
    this.#onFailure = options.onFailure;
  }

  /** The first violation the per-event rules found, if any. */
  get failure(): string | undefined {
    return this.#replay.firstFailure;
  }

  /** `message.sender` sends `message`. */
  sent(message: MessageRef): void {
    const record: SentRecord = {
      id: message.id,
      sender: message.sender,
      strategy: message.strategy,
      viewId: message.viewId,
      at: this.#now(),
      deliveredBefore: this.#members.get(message.sender)?.length ?? 0,
    };
    this.#sent.push(record);
    this.#replay.sent(record);
    this.#report();
  }

  /** `member` installs a view. */
  view(
    member: string,
    view: { readonly viewId: number; readonly members: readonly string[] },
  ): void {
    this.#add(member, {
      type: "view",
      viewId: view.viewId,
      members: [...view.members],
      at: this.#now(),
    });
  }

  /** `member` delivers `message`. */
  delivered(member: string, message: MessageRef): void {
    this.#add(member, {
      type: "deliver",
      id: message.id,
      sender: message.sender,
      strategy: message.strategy,
      viewId: message.viewId,
      at: this.#now(),
    });
  }

  /** `member`'s state hash right after installing (or, joining, restoring) a view. */
  state(
    member: string,
    state: { readonly viewId: number; readonly hash: string },
  ): void {
    this.#add(member, {
      type: "state",
      viewId: state.viewId,
      hash: state.hash,
      at: this.#now(),
    });
  }

  /** `member` (this incarnation) crashed. */
  crashed(member: string): void {
    this.#add(member, { type: "crash", at: this.#now() });
  }

  /** `member` left the group, voluntarily or forced out by the Oracle. */
  left(member: string): void {
    this.#add(member, { type: "leave", at: this.#now() });
  }

  #add(member: string, event: MemberEvent): void {
    let events = this.#members.get(member);
    if (events === undefined) this.#members.set(member, events = []);
    events.push(event);
    this.#replay.event(member, event);
    this.#report();
  }

  #report(): void {
    const failure = this.#replay.firstFailure;
    if (failure === undefined || this.#reported) return;
    this.#reported = true;
    this.#onFailure?.(failure);
  }
}
