/**
 * The client side of the `oracle-tree` scenario: a simulated node with one
 * {@linkcode OracleTreeClient} (one session for the whole tree) that runs
 * appends, lock cycles, try-locks and reads on paths of the root and of
 * both delegated subtrees, follows a channel of each subtree and joins a
 * group in each, and reports every call, return and delivered event to
 * the recorder. It writes under a subtree only once the operator's
 * delegation of it was acknowledged (a delegation needs an empty
 * subtree); it reads and subscribes there from the start, so its requests
 * and subscriptions meet the delegation and must follow it.
 *
 * @module
 */

import type { SimNodeEnv } from "../../../sim/mod.ts";
import { viewChannel, type ViewEvent } from "../../../oracle/commands.ts";
import { OracleError } from "../../../oracle/client.ts";
import { OracleTreeClient } from "../../../oracle/tree_client.ts";
import type { Transport } from "../../../transport/transport.ts";
import { TransportMux } from "../../../transport/mux.ts";
import type { WorkerRecorder } from "./_oracle_worker.ts";
import { RecordedCalls } from "./_recorded_calls.ts";

/** Channels the workload appends to: one root-owned, the others in the subtrees `/a` and `/b`. */
export const TREE_CHANNELS: readonly string[] = [
  "/r/ch/1",
  "/a/ch/1",
  "/a/ch/2",
  "/b/ch/1",
];
/** Lock paths the workload contends on, one per group. */
export const TREE_LOCKS: readonly string[] = ["/r/lk", "/a/lk", "/b/lk"];
/** The groups every worker joins, one per child Oracle group. */
export const TREE_GROUPS: readonly string[] = ["/a/g", "/b/g"];

/** Settings of every worker in one run. */
export interface TreeWorkerPlan {
  /** The root group's replicas. */
  readonly root: readonly string[];
  readonly sessionTtlMs: number;
  readonly thinkMs: number;
  readonly holdMs: number;
  /** The time after which workers start no new operation. */
  readonly stopAt: number;
  /** Whether the operator's delegation covering `path` was acknowledged. */
  writable(path: string): boolean;
}

/** One client generation: its tree client and the transports it runs on. */
interface Generation {
  readonly client: OracleTreeClient;
  readonly root: Transport;
  readonly joined: Set<string>;
  readonly left: Set<string>;
}

/** One incarnation of a client node. */
export class TreeWorker {
  readonly #env: SimNodeEnv;
  readonly #plan: TreeWorkerPlan;
  readonly #recorder: WorkerRecorder;
  readonly #mux: TransportMux;
  readonly #calls: RecordedCalls;
  #current: Generation;
  #generation = 0;
  #counter = 0;
  #idle = true;

  constructor(env: SimNodeEnv, plan: TreeWorkerPlan, recorder: WorkerRecorder) {
    this.#env = env;
    this.#plan = plan;
    this.#recorder = recorder;
    this.#mux = new TransportMux(env.transport);
    this.#calls = new RecordedCalls(recorder, env, plan.holdMs);
    this.#current = this.#newGeneration();
  }

  /** `true` when the worker has no operation in flight. */
  get idle(): boolean {
    return this.#idle;
  }

  /** The current session id. */
  get session(): string {
    return this.#current.client.session;
  }

  /** The client's status, for failure reports. */
  status(): string {
    return JSON.stringify(this.#current.client.status());
  }

  #newGeneration(): Generation {
    this.#generation++;
    const generation = this.#generation;
    const root = this.#mux.route(this.#plan.root);
    const client = new OracleTreeClient(root, {
      replicas: this.#plan.root,
      clock: this.#env.clock,
      random: this.#env.random,
      sessionTtlMs: this.#plan.sessionTtlMs,
      requestTimeoutMs: 100,
      deadlineMs: 120_000,
      id: `${this.#env.id}-${this.#env.incarnation}-${generation}`,
      connectGroup: (delegation) =>
        Promise.resolve(this.#mux.route(Object.keys(delegation.replicas))),
    });
    const current: Generation = {
      client,
      root,
      joined: new Set(),
      left: new Set(),
    };
    client.onSessionExpired(() => {
      if (generation !== this.#generation) return;
      // One group ended the session; the others end it on their own.
      this.#recorder.sessionEndedSometime(client.session);
    });
    this.#idle = false;
    client.open().then(
      () => {
        this.#subscribe(current);
        this.#next(current);
      },
      (error) => this.#failed(current, error),
    );
    return current;
  }

  #subscribe({ client }: Generation): void {
    const random = this.#env.random;
    const session = client.session;
    const follow = [
      ["/r/ch/1", false],
      [random.pick(["/a/ch/1", "/a/ch/2"]), false],
      ["/b/ch/1", false],
      ["/a/ch", true],
    ] as const;
    for (const [path, prefix] of follow) {
      const label = `${prefix ? "prefix:" : ""}${path}`;
      client.subscribe(path, {
        from: 1,
        prefix,
        onError: (error) =>
          this.#recorder.subscriptionError(session, label, error.code),
      }, (events) => this.#recorder.delivered(session, label, events));
    }
  }

  /**
   * Joins `group` and follows its view channel: for every proposal that
   * names this member a survivor, reports `flushed` at once (the group
   * engine's part). Errors of these calls are expected (a stale proposal,
   * a member already gone) and not checked.
   */
  #join(current: Generation, group: string): void {
    const { client } = current;
    const member = client.session;
    current.joined.add(group);
    client.subscribe(viewChannel(group), { from: 1 }, (events) => {
      for (const event of events) {
        const view = event.data as unknown as ViewEvent;
        if (
          view.type === "propose" && !current.left.has(group) &&
          view.survivors.includes(member)
        ) {
          this.#quietly(client.flushed(group, view.viewId, member));
        }
      }
    });
    this.#quietly(client.join(group, member));
  }

  /** Runs a call whose Oracle errors do not matter; anything else is fatal. */
  #quietly(call: Promise<unknown>): void {
    call.catch((error) => {
      if (error instanceof OracleError) return;
      this.#recorder.fatal(this.session, String(error));
    });
  }

  #failed(current: Generation, error: unknown): void {
    if (current !== this.#current) return;
    if (error instanceof OracleError && error.code === "session_expired") {
      // The tree ended this session: go on under a new identity once the
      // old client let go of its transports.
      this.#idle = false;
      current.client.close().then(async () => {
        await current.root.close();
        this.#current = this.#newGeneration();
      }).catch((failure) =>
        this.#recorder.fatal(this.session, String(failure))
      );
      return;
    }
    this.#idle = true;
    this.#recorder.fatal(
      current.client.session,
      error instanceof Error
        ? `${error.name}: ${error.message}`
        : String(error),
    );
  }

  #next(current: Generation): void {
    if (current !== this.#current) return;
    const clock = this.#env.clock;
    if (clock.now() >= this.#plan.stopAt) {
      this.#idle = true;
      return;
    }
    this.#idle = false;
    const think = this.#env.random.int(this.#plan.thinkMs + 1);
    clock.setTimer(think, () => {
      this.#run(current).then(
        () => this.#next(current),
        (error) => this.#failed(current, error),
      );
    });
  }

  async #run(current: Generation): Promise<void> {
    const { client } = current;
    const random = this.#env.random;
    const session = client.session;
    for (const group of TREE_GROUPS) {
      if (!current.joined.has(group) && this.#plan.writable(group)) {
        this.#join(current, group);
      }
    }
    const pick = random.int(100);
    if (pick < 3) {
      const group = random.pick(TREE_GROUPS);
      if (current.joined.has(group) && !current.left.has(group)) {
        current.left.add(group);
        await client.leave(group, session).catch((error) => {
          if (!(error instanceof OracleError)) throw error;
        });
      }
    } else if (pick < 50) {
      const path = random.pick(TREE_CHANNELS);
      if (!this.#plan.writable(path)) {
        return await this.#calls.read(client, path);
      }
      await this.#calls.append(client, path, `${session}#${++this.#counter}`);
    } else if (pick < 75) {
      const path = random.pick(TREE_LOCKS);
      if (this.#plan.writable(path)) await this.#calls.lockCycle(client, path);
    } else if (pick < 85) {
      const path = random.pick(TREE_LOCKS);
      if (this.#plan.writable(path)) {
        await this.#calls.tryLockCycle(client, path);
      }
    } else {
      await this.#calls.read(client, random.pick(TREE_CHANNELS));
    }
  }
}
