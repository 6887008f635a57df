/**
 * The client side of the `oracle` scenario: a simulated node that opens a
 * session and runs a random stream of appends, lock cycles, try-locks and
 * reads, with a path subscription and a prefix subscription open, and
 * reports every call, return and delivered event to the recorder.
 *
 * @module
 */

import type { SimNodeEnv } from "../../../sim/mod.ts";
import {
  type ChannelEvent,
  viewChannel,
  type ViewEvent,
} from "../../../oracle/commands.ts";
import { OracleClient, OracleError } from "../../../oracle/client.ts";
import { RecordedCalls } from "./_recorded_calls.ts";

/** Channels the workload appends to (all under the `/ch` prefix). */
export const CHANNELS: readonly string[] = ["/ch/a", "/ch/b", "/ch/c"];
/** Lock paths the workload contends on. */
export const LOCKS: readonly string[] = ["/lk/x", "/lk/y"];
/** The group every worker joins (under its session id) and may leave. */
export const GROUP = "/g/x";

/** One recorded operation (the linearizability history). */
export interface Recorded {
  readonly id: number;
  readonly session: string;
  readonly kind: "append" | "lock" | "trylock" | "unlock" | "read" | "expire";
  readonly path: string;
  /** append: the data; unlock: the token; read: from. */
  readonly arg: unknown;
  readonly call: number;
  ret: number;
  /** The result, `undefined` while pending or if it failed in an unknown way. */
  output: unknown;
  /** The error code when the operation failed with a definite error. */
  error: string | undefined;
}

/** What the worker tells the checker. */
export interface WorkerRecorder {
  call(
    session: string,
    kind: Recorded["kind"],
    path: string,
    arg: unknown,
  ): Recorded;
  ret(op: Recorded, output: unknown, error?: string): void;
  delivered(
    session: string,
    subscription: string,
    events: readonly ChannelEvent[],
  ): void;
  subscriptionError(session: string, subscription: string, code: string): void;
  sessionExpired(session: string): void;
  /** A session ended at a time nothing bounds (a tree session: see the checker). */
  sessionEndedSometime(session: string): void;
  /** Something the workload cannot go on from (a liveness or protocol failure). */
  fatal(session: string, text: string): void;
}

/** Settings of every worker in one run. */
export interface WorkerPlan {
  readonly replicas: readonly string[];
  readonly sessionTtlMs: number;
  readonly thinkMs: number;
  readonly holdMs: number;
  /** The time after which workers start no new operation. */
  readonly stopAt: number;
}

/** One incarnation of a client node. */
export class OracleWorker {
  readonly #env: SimNodeEnv;
  readonly #plan: WorkerPlan;
  readonly #recorder: WorkerRecorder;
  readonly #calls: RecordedCalls;
  #client: OracleClient;
  #generation = 0;
  #counter = 0;
  #idle = true;
  #member:
    | { client: OracleClient; joined: boolean; left: boolean }
    | undefined;

  constructor(env: SimNodeEnv, plan: WorkerPlan, recorder: WorkerRecorder) {
    this.#env = env;
    this.#plan = plan;
    this.#recorder = recorder;
    this.#calls = new RecordedCalls(recorder, env, plan.holdMs);
    this.#client = this.#newClient();
  }

  /** `true` when the worker has no operation in flight. */
  get idle(): boolean {
    return this.#idle;
  }

  /** The client's status, for failure reports. */
  status(): string {
    return JSON.stringify({
      ...this.#client.status(),
      stats: this.#client.stats(),
    });
  }

  /** The current session id. */
  get session(): string {
    return this.#client.session;
  }

  #newClient(): OracleClient {
    this.#generation++;
    const client = new OracleClient(this.#env.transport, {
      replicas: this.#plan.replicas,
      clock: this.#env.clock,
      random: this.#env.random,
      sessionTtlMs: this.#plan.sessionTtlMs,
      requestTimeoutMs: 100,
      deadlineMs: 120_000,
      id: `${this.#env.id}-${this.#env.incarnation}-${this.#generation}`,
    });
    const generation = this.#generation;
    client.onSessionExpired(() => {
      if (generation !== this.#generation) return;
      this.#recorder.sessionExpired(client.session);
    });
    this.#idle = false;
    client.open().then(
      () => {
        this.#subscribe(client);
        this.#joinGroup(client);
        this.#next(client);
      },
      (error) => this.#failed(client, error),
    );
    return client;
  }

  #subscribe(client: OracleClient): void {
    const path = CHANNELS[this.#env.random.int(CHANNELS.length)];
    const session = client.session;
    for (const [name, prefix] of [[path, false], ["/ch", true]] as const) {
      const label = `${prefix ? "prefix:" : ""}${name}`;
      client.subscribe(name, {
        from: 1,
        prefix,
        onError: (error) =>
          this.#recorder.subscriptionError(session, label, error.code),
      }, (events) => this.#recorder.delivered(session, label, events));
    }
  }

  /**
   * Joins {@linkcode GROUP} and follows its view channel: for every
   * proposal that names this member a survivor, reports `flushed` (the
   * group engine's part, done at once here). Errors of these calls are
   * expected (a stale proposal, a member already gone) and not checked.
   */
  #joinGroup(client: OracleClient): void {
    const member = client.session;
    this.#member = { client, joined: false, left: false };
    const state = this.#member;
    client.subscribe(viewChannel(GROUP), { from: 1 }, (events) => {
      for (const event of events) {
        const view = event.data as unknown as ViewEvent;
        if (
          view.type === "propose" && !state.left &&
          view.survivors.includes(member)
        ) {
          this.#quietly(client.flushed(GROUP, view.viewId, member));
        }
      }
    });
    this.#quietly(
      client.join(GROUP, member).then(() => void (state.joined = true)),
    );
  }

  /** Runs a call whose Oracle errors do not matter; anything else is fatal. */
  #quietly(call: Promise<unknown>): void {
    call.catch((error) => {
      if (error instanceof OracleError) return;
      this.#recorder.fatal(this.session, String(error));
    });
  }

  #failed(client: OracleClient, error: unknown): void {
    if (client !== this.#client) return;
    if (error instanceof OracleError && error.code === "session_expired") {
      // The Oracle ended this session: go on under a new identity.
      void client.close();
      this.#client = this.#newClient();
      return;
    }
    this.#idle = true;
    this.#recorder.fatal(
      client.session,
      error instanceof Error
        ? `${error.name}: ${error.message}`
        : String(error),
    );
  }

  #next(client: OracleClient): void {
    if (client !== this.#client) return;
    const clock = this.#env.clock;
    if (clock.now() >= this.#plan.stopAt) {
      this.#idle = true;
      return;
    }
    this.#idle = false;
    const think = this.#env.random.int(this.#plan.thinkMs + 1);
    clock.setTimer(think, () => {
      this.#run(client).then(
        () => this.#next(client),
        (error) => this.#failed(client, error),
      );
    });
  }

  async #run(client: OracleClient): Promise<void> {
    const random = this.#env.random;
    const session = client.session;
    const pick = random.int(100);
    const member = this.#member;
    if (
      pick < 3 && member?.client === client && member.joined && !member.left
    ) {
      member.left = true;
      await client.leave(GROUP, client.session).catch((error) => {
        if (!(error instanceof OracleError)) throw error;
      });
    } else if (pick < 50) {
      const path = CHANNELS[random.int(CHANNELS.length)];
      await this.#calls.append(client, path, `${session}#${++this.#counter}`);
    } else if (pick < 75) {
      await this.#calls.lockCycle(client, LOCKS[random.int(LOCKS.length)]);
    } else if (pick < 85) {
      await this.#calls.tryLockCycle(client, LOCKS[random.int(LOCKS.length)]);
    } else {
      await this.#calls.read(client, CHANNELS[random.int(CHANNELS.length)]);
    }
  }
}
