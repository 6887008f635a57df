/**
 * One simulated process of the `groups` scenario: an Oracle client (its
 * session) and a {@linkcode GroupMember} of one group over one endpoint,
 * driven as a real process would drive them: the member follows the
 * group's view channel, reports `flushed` and suspicions to the Oracle,
 * and multicasts a numbered message now and then. Each incarnation joins
 * under a new member name (`node.incarnation`): an excluded member never
 * comes back under the same name.
 *
 * Frames between members carry the sender's member name first (one
 * length byte, then UTF-8), so a restarted node's frames are never taken
 * for its former incarnation's.
 *
 * @module
 */

import type { SimNodeEnv } from "../../../sim/mod.ts";
import { viewChannel, type ViewEvent } from "../../../oracle/commands.ts";
import { OracleClient, OracleError } from "../../../oracle/client.ts";
import { TransportMux } from "../../../transport/mux.ts";
import type { Transport } from "../../../transport/transport.ts";
import {
  GroupMember,
  type GroupMemberOptions,
  type GroupMessage,
} from "../../../groups/member.ts";
import { GroupHandle, NotMemberError } from "../../../actors/group_handle.ts";
import { Add, Put, SimLedger } from "./_sim_ledger.ts";
import type { GroupView } from "../../../groups/types.ts";
import type { Strategy } from "./_group_history.ts";
import { DeliveryDigest } from "../../groups/_delivery_digest.ts";

/** Settings shared by every node of a run. */
export interface GroupNodePlan {
  /** The Oracle's replicas. */
  readonly oracle: readonly string[];
  /** The group's path. */
  readonly group: string;
  readonly sessionTtlMs: number;
  /** Mean pause between two multicasts of one member, ms. */
  readonly sendEveryMs: number;
  /** No multicast starts after this time. */
  readonly stopAt: number;
  /** The strategies multicasts pick from, at random. */
  readonly strategies: readonly Strategy[];
  /** Whether members run a replicated actor (the `actors` scenario). */
  readonly actors?: boolean | undefined;
}

/** What a node reports to the scenario's recorder. */
export interface GroupNodeHooks {
  sent(member: string, id: string, viewId: number, strategy: Strategy): void;
  delivered(member: string, id: string, message: GroupMessage): void;
  view(member: string, view: GroupView): void;
  /** The Oracle installed a view without this member (it left, or was forced out). */
  excluded(member: string): void;
  /** The member's Oracle session ended: the Oracle forces it out; it stops. */
  lost(member: string): void;
  /** The member's state at the view just installed (a new member: once restored). */
  state(member: string, viewId: number, hash: string): void;
  /** A new member's state transfer was cut short by the next view: it stopped, and leaves. */
  stateLost(member: string): void;
  /** Something the run cannot go on from. */
  fatal(member: string, text: string): void;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The node id of a member name (`node.incarnation`). */
export function nodeOf(member: string): string {
  return member.slice(0, member.lastIndexOf("."));
}

/** One incarnation of a member process. */
export class GroupNode {
  /** This incarnation's member name. */
  readonly name: string;
  readonly #env: SimNodeEnv;
  readonly #plan: GroupNodePlan;
  readonly #hooks: GroupNodeHooks;
  readonly #client: OracleClient;
  readonly #member: GroupMember;
  readonly #peers: Transport;
  #count = 0;
  #leaving = false;
  /** The application's state. */
  readonly #state = new DeliveryDigest();
  /** In the `actors` scenario: the actor's handle over the member. */
  #handle: GroupHandle<SimLedger> | undefined;
  /** The last view the application was told of (a new member's lag behind the member's). */
  #appView = 0;
  /** The join was refused. */
  #refused = false;
  /** The session ended: the member stopped. */
  #lost = false;

  constructor(env: SimNodeEnv, plan: GroupNodePlan, hooks: GroupNodeHooks) {
    this.#env = env;
    this.#plan = plan;
    this.#hooks = hooks;
    this.name = `${env.id}.${env.incarnation}`;
    const mux = new TransportMux(env.transport);
    this.#client = new OracleClient(mux.route(plan.oracle), {
      replicas: plan.oracle,
      clock: env.clock,
      random: env.random,
      sessionTtlMs: plan.sessionTtlMs,
      requestTimeoutMs: 100,
      deadlineMs: 120_000,
      id: this.name,
    });
    this.#peers = mux.rest();
    const prefix = encoder.encode(this.name);
    const common: Omit<
      GroupMemberOptions,
      "deliver" | "viewInstalled" | "state" | "sent"
    > = {
      me: this.name,
      clock: env.clock,
      send: (to, frame) => {
        const bytes = new Uint8Array(1 + prefix.length + frame.length);
        bytes[0] = prefix.length;
        bytes.set(prefix, 1);
        bytes.set(frame, 1 + prefix.length);
        return this.#peers.send(nodeOf(to), bytes);
      },
      stateLost: () => {
        // The member stopped: it must not hold up a flush, so it forces
        // itself out (a leave would wait for the proposal in flight).
        hooks.stateLost(this.name);
        this.#leaving = true;
        this.#quietly(
          this.#client.remove(
            plan.group,
            this.name,
            "state transfer cut short",
          ),
        );
      },
      excluded: () => hooks.excluded(this.name),
      flushed: (viewId) =>
        this.#quietly(this.#client.flushed(plan.group, viewId, this.name)),
      suspect: (member, reason, viewId) =>
        this.#quietly(this.#client.remove(plan.group, member, reason, viewId)),
      orderGbcast: (seq, payload) =>
        this.#quietly(
          this.#client.gbcast(plan.group, this.name, seq, payload),
        ),
    };
    this.#member = plan.actors ? this.#actorMember(common) : new GroupMember({
      ...common,
      deliver: (message) => {
        const id = decoder.decode(message.payload);
        this.#state.apply(id);
        hooks.delivered(this.name, id, message);
      },
      viewInstalled: (view) => {
        this.#appView = view.viewId;
        hooks.view(this.name, view);
        if (!this.#member.status().awaitingState) {
          hooks.state(this.name, view.viewId, String(this.#state));
        }
      },
      state: {
        checkpoint: () => this.#state.checkpoint(),
        restore: (bytes) => {
          this.#state.restore(bytes);
          hooks.state(this.name, this.#appView, String(this.#state));
        },
      },
      sent: (payload, viewId, _seq, strategy) =>
        hooks.sent(
          this.name,
          decoder.decode(payload),
          viewId,
          strategy as Strategy,
        ),
    });
    this.#peers.setHandler({
      onFrame: (_from, bytes) => {
        const length = bytes[0] ?? 0;
        if (bytes.length < 1 + length) return;
        const sender = decoder.decode(bytes.subarray(1, 1 + length));
        this.#member.receive(sender, bytes.subarray(1 + length));
      },
      // The simulator reports a node's crash to the others, as a TCP
      // transport reports a lost connection: its members are unreachable.
      onPeerDown: (node) => this.#reachable(node, false),
      onPeerUp: (node) => this.#reachable(node, true),
    });
    this.#client.onSessionExpired(() => this.#lose());
    this.#client.open().then(() => {
      this.#client.subscribe(viewChannel(plan.group), { from: 1 }, (events) => {
        for (const event of events) {
          const view = event.data as unknown as ViewEvent;
          this.#member.onViewEvent(view);
        }
      });
      this.#client.join(plan.group, this.name).catch(
        (error) => {
          // Refused (a name the Oracle removed cannot come back).
          if (error instanceof OracleError) this.#refused = true;
          else hooks.fatal(this.name, String(error));
        },
      );
      this.#next();
    }, (error) => {
      if (error instanceof OracleError && error.code === "session_expired") {
        this.#lose();
      } else {
        hooks.fatal(this.name, `open: ${String(error)}`);
      }
    });
  }

  /** The member's state, for reports. */
  status(): string {
    return JSON.stringify({
      name: this.name,
      member: this.#member.status(),
      client: this.#client.status().state,
    });
  }

  /** The installed view, if any. */
  get view(): GroupView | undefined {
    return this.#member.view;
  }

  /** Whether the member is in a view and not flushing (settled). */
  get settled(): boolean {
    const status = this.#member.status();
    return status.view !== null && status.flushing === null &&
      status.queued === 0 && !status.gbcastPending;
  }

  /** Whether the member left, was excluded, was refused or lost its session. */
  get gone(): boolean {
    return this.#leaving || this.#refused || this.#lost ||
      this.#member.status().excluded;
  }

  /** Leaves the group voluntarily; sends nothing more. */
  leave(): void {
    this.#leaving = true;
    this.#quietly(this.#client.leave(this.#plan.group, this.name));
  }

  /** The session ended (the Oracle forces the member out): stop. */
  #lose(): void {
    if (this.#lost) return;
    this.#lost = true;
    this.#member.close();
    this.#hooks.lost(this.name);
  }

  #next(): void {
    const clock = this.#env.clock;
    const pause = this.#env.random.int(2 * this.#plan.sendEveryMs + 1);
    clock.setTimer(pause, () => {
      if (clock.now() >= this.#plan.stopAt || this.gone) return;
      const strategy = this.#env.random.pick(this.#plan.strategies);
      const id = `${this.name}:${++this.#count}`;
      if (this.#handle === undefined) {
        this.#member.multicast(encoder.encode(id), strategy);
      } else {
        // Totally ordered overwrites, or commutative raises.
        const key = `k${this.#env.random.int(4)}`;
        const sent = strategy === "abcast" || strategy === "gbcast"
          ? this.#handle.send(Put, { id, key, value: id }, { order: strategy })
          : this.#handle.send(
            Add,
            { id, key, n: 1 + this.#env.random.int(9) },
            {
              order: strategy,
            },
          );
        sent.catch((error) => {
          if (!(error instanceof NotMemberError)) {
            this.#hooks.fatal(this.name, `send: ${String(error)}`);
          }
        });
      }
      this.#next();
    });
  }

  /**
   * The member of the `actors` scenario: a {@linkcode SimLedger} actor
   * behind a {@linkcode GroupHandle} over it. Deliveries are recorded as
   * the actor applies them; the state recorded at each view is the
   * actor's.
   */
  #actorMember(
    common: Omit<
      GroupMemberOptions,
      "deliver" | "viewInstalled" | "state" | "sent"
    >,
  ): GroupMember {
    const hooks = this.#hooks;
    const ledger = new SimLedger({
      applied: (id, context) =>
        hooks.delivered(this.name, id, {
          sender: context.sender,
          seq: 0,
          viewId: context.view.viewId,
          strategy: context.order,
          payload: new Uint8Array(0),
        }),
      view: (view) => {
        hooks.view(this.name, view);
        hooks.state(this.name, view.viewId, ledger.hash());
      },
    });
    let member: GroupMember | undefined;
    this.#handle = GroupHandle.attach({
      group: this.#plan.group,
      actor: ledger,
      clock: this.#env.clock,
      failurePolicy: "continue",
      onFailure: (failure) =>
        hooks.fatal(this.name, `handler ${failure.handler}: ${failure.error}`),
      onInvalid: (from, why) => hooks.fatal(this.name, `from ${from}: ${why}`),
    }, (events) => {
      member = new GroupMember({
        ...common,
        deliver: events.deliver,
        direct: events.direct,
        writable: events.writable,
        viewInstalled: (view) =>
          events.viewInstalled(view, member!.status().awaitingState),
        state: { checkpoint: events.checkpoint, restore: events.restore },
        sent: (payload, viewId, _seq, strategy) =>
          hooks.sent(
            this.name,
            (JSON.parse(decoder.decode(payload)) as { m: { id: string } }).m
              .id,
            viewId,
            strategy as Strategy,
          ),
      });
      const engine = member;
      return {
        name: this.name,
        get view() {
          return engine.view;
        },
        multicast: (payload, order) => engine.multicast(payload, order),
        sendDirect: (to, payload) => engine.sendDirect(to, payload),
        close: () => {
          engine.close();
          return Promise.resolve();
        },
      };
    });
    return member!;
  }

  /** Tells the member whether the members of node `node` are reachable. */
  #reachable(node: string, reachable: boolean): void {
    for (const member of this.#member.view?.members ?? []) {
      if (nodeOf(member) === node) this.#member.reachable(member, reachable);
    }
  }

  /** Runs an Oracle call whose Oracle errors are expected (a stale view, a member gone). */
  #quietly(call: Promise<unknown>): void {
    call.catch((error) => {
      if (error instanceof OracleError) return;
      this.#hooks.fatal(this.name, String(error));
    });
  }
}
