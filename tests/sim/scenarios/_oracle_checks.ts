/**
 * The checks of the `oracle` scenario that run while it runs: every
 * replica applies the same entry at every index, acknowledged appends
 * never conflict, subscriptions see every event once and in order, fencing
 * tokens only grow. It also keeps the history of client operations for the
 * linearizability check at the end.
 *
 * @module
 */

import type {
  ChannelEvent,
  EntryCommand,
  ViewEvent,
} from "../../../oracle/commands.ts";
import type { OracleReplicaObserver } from "../../../oracle/replica.ts";
import type { LogEntry } from "../../../oracle/raft_types.ts";
import type { Recorded, WorkerRecorder } from "./_oracle_worker.ts";

/** Fails the run with a message (thrown inside a sim callback, it stops the run). */
export class CheckFailure extends Error {
  override name = "CheckFailure";
}

interface SubscriptionRecord {
  /** Next seq expected per path (path subscriptions use one path). */
  readonly next: Map<string, number>;
  lastRev: number;
  events: number;
}

/** Online checks, and the history of every client operation. */
export class OracleChecker implements WorkerRecorder {
  readonly history: Recorded[] = [];
  /** Every entry applied anywhere, by index: `term:command` as JSON. */
  readonly #entries = new Map<number, string>();
  readonly #lastApplied = new Map<string, number>();
  /** What the Oracle says each channel holds: path -> seq -> data. */
  readonly #channel = new Map<string, Map<number, unknown>>();
  /** Every data value an append was attempted with -> its path. */
  readonly #attempted = new Map<string, string>();
  readonly #subs = new Map<string, SubscriptionRecord>();
  /** Fencing tokens granted per lock path, to whom. */
  readonly #tokens = new Map<string, Map<number, string>>();
  readonly #now: () => number;
  /**
   * Sessions known to end: observed expired by their client (`ret` is the
   * observation), or whose client crashed (`ret` is Infinity: the expiry
   * takes effect some time after `call`).
   */
  readonly endedSessions: { session: string; call: number; ret: number }[] = [];
  readonly fatalErrors: string[] = [];
  appliedEntries = 0;
  #highestApplied = 0;
  deliveredEvents = 0;
  duplicateEntriesSeen = 0;

  constructor(now: () => number) {
    this.#now = now;
  }

  #fail(text: string): never {
    throw new CheckFailure(`${text} (t=${this.#now().toFixed(3)}ms)`);
  }

  /** A replica (re)starts: it applies from scratch or from its snapshot. */
  replicaStarted(replica: string): void {
    this.#lastApplied.set(replica, 0);
  }

  /** Highest index any replica applied. */
  get highestApplied(): number {
    return this.#highestApplied;
  }

  /** The hooks the replicas call. */
  readonly observer: OracleReplicaObserver = {
    applied: (replica: string, entry: LogEntry<EntryCommand>) => {
      const last = this.#lastApplied.get(replica) ?? 0;
      if (entry.index !== last + 1) {
        this.#fail(
          `replica ${replica} applied index ${entry.index} after ${last}`,
        );
      }
      this.#lastApplied.set(replica, entry.index);
      const text = `${entry.term}:${JSON.stringify(entry.command)}`;
      const seen = this.#entries.get(entry.index);
      if (seen === undefined) {
        this.#entries.set(entry.index, text);
        this.appliedEntries++;
        this.#highestApplied = Math.max(this.#highestApplied, entry.index);
      } else if (seen !== text) {
        this.#fail(
          `divergence at index ${entry.index}: replica ${replica} applied ${text} but another replica applied ${seen}`,
        );
      } else {
        this.duplicateEntriesSeen++;
      }
    },
    restored: (replica: string, index: number) => {
      const last = this.#lastApplied.get(replica) ?? 0;
      if (index < last) {
        this.#fail(
          `replica ${replica} restored a snapshot at ${index} after applying ${last}`,
        );
      }
      this.#lastApplied.set(replica, index);
    },
  };

  call(
    session: string,
    kind: Recorded["kind"],
    path: string,
    arg: unknown,
  ): Recorded {
    const op: Recorded = {
      id: this.history.length,
      session,
      kind,
      path,
      arg,
      call: this.#now(),
      ret: Infinity,
      output: undefined,
      error: undefined,
    };
    this.history.push(op);
    if (kind === "append") this.#attempted.set(String(arg), path);
    return op;
  }

  ret(op: Recorded, output: unknown, error?: string): void {
    if (op.ret !== Infinity) {
      this.#fail(`operation ${op.id} (${op.kind} ${op.path}) returned twice`);
    }
    op.ret = this.#now();
    op.output = output;
    op.error = error;
    if (error !== undefined) return;
    if (op.kind === "append") {
      const { seq } = output as { seq: number };
      this.#learn(op.path, seq, op.arg, `append by ${op.session}`);
    } else if (op.kind === "lock" || op.kind === "trylock") {
      const { token } = output as { token: number };
      if (token > 0) {
        // Replies race (a grant's reply can arrive after a later grant's),
        // so growth is checked by the lock model at the end; online, a
        // token is never given to two sessions.
        let tokens = this.#tokens.get(op.path);
        if (tokens === undefined) this.#tokens.set(op.path, tokens = new Map());
        const holder = tokens.get(token);
        if (holder !== undefined && holder !== op.session) {
          this.#fail(
            `fencing: token ${token} of ${op.path} was granted to ${holder} and to ${op.session}`,
          );
        }
        tokens.set(token, op.session);
      }
    } else if (op.kind === "read") {
      const { events } = output as { events: ChannelEvent[] };
      for (const event of events) {
        this.#learn(event.path, event.seq, event.data, `read by ${op.session}`);
      }
    }
  }

  delivered(
    session: string,
    subscription: string,
    events: readonly ChannelEvent[],
  ): void {
    const key = `${session} ${subscription}`;
    let sub = this.#subs.get(key);
    if (sub === undefined) {
      sub = { next: new Map(), lastRev: 0, events: 0 };
      this.#subs.set(key, sub);
    }
    for (const event of events) {
      const expected = sub.next.get(event.path) ?? 1;
      if (event.seq !== expected) {
        this.#fail(
          `subscription ${key} got ${event.path}#${event.seq}, expected #${expected} (${
            event.seq < expected ? "duplicate" : "gap"
          })`,
        );
      }
      if (event.rev <= sub.lastRev) {
        this.#fail(
          `subscription ${key} got rev ${event.rev} after rev ${sub.lastRev}`,
        );
      }
      sub.next.set(event.path, expected + 1);
      sub.lastRev = event.rev;
      sub.events++;
      this.deliveredEvents++;
      this.#learn(event.path, event.seq, event.data, `subscription ${key}`);
    }
  }

  subscriptionError(session: string, subscription: string, code: string): void {
    if (code === "session_expired" || code === "closed") return;
    this.#fail(`subscription ${session} ${subscription} ended with ${code}`);
  }

  sessionExpired(session: string): void {
    this.endedSessions.push({ session, call: 0, ret: this.#now() });
  }

  /**
   * A tree client reported its session ended: some group of the tree
   * ended it, and each group ends it at its own time, before or after
   * this report, so the expiry is bounded by nothing but the run.
   */
  sessionEndedSometime(session: string): void {
    this.endedSessions.push({ session, call: 0, ret: Infinity });
  }

  /** A client node crashed while its session was `session`. */
  clientCrashed(session: string): void {
    this.endedSessions.push({ session, call: this.#now(), ret: Infinity });
  }

  fatal(session: string, text: string): void {
    this.fatalErrors.push(`${session}: ${text}`);
  }

  /** Records that the Oracle holds `data` at `path`#`seq`; fails on any conflict. */
  #learn(path: string, seq: number, data: unknown, source: string): void {
    const attemptedPath = this.#attempted.get(String(data));
    if (attemptedPath !== path) {
      this.#fail(
        `${source}: ${path}#${seq} holds ${
          JSON.stringify(data)
        }, which no client appended there`,
      );
    }
    let channel = this.#channel.get(path);
    if (channel === undefined) this.#channel.set(path, channel = new Map());
    const known = channel.get(seq);
    if (known === undefined) {
      channel.set(seq, data);
    } else if (known !== data) {
      this.#fail(
        `${source}: ${path}#${seq} holds ${JSON.stringify(data)} but it held ${
          JSON.stringify(known)
        } before`,
      );
    }
  }

  /** Every acknowledged append: path -> seq -> data. */
  acknowledged(): Map<string, Map<number, unknown>> {
    const acked = new Map<string, Map<number, unknown>>();
    for (const op of this.history) {
      if (op.kind !== "append" || op.ret === Infinity || op.error) continue;
      const { seq } = op.output as { seq: number };
      let channel = acked.get(op.path);
      if (channel === undefined) acked.set(op.path, channel = new Map());
      channel.set(seq, op.arg);
    }
    return acked;
  }

  /** Checks a full read of a channel against everything learned. */
  checkChannel(path: string, events: readonly ChannelEvent[]): void {
    for (const [i, event] of events.entries()) {
      if (event.seq !== i + 1) {
        this.#fail(`final read of ${path}: event ${i} has seq ${event.seq}`);
      }
      this.#learn(path, event.seq, event.data, "final read");
    }
    const known = this.#channel.get(path);
    for (const [seq, data] of known ?? []) {
      if (seq > events.length) {
        this.#fail(
          `lost: ${path}#${seq} (${
            JSON.stringify(data)
          }) was acknowledged or delivered but is gone after every replica restarted (channel has ${events.length})`,
        );
      }
    }
  }

  /** Operations still without a return, except those of ended sessions. */
  pending(): Recorded[] {
    const ended = new Set(this.endedSessions.map((e) => e.session));
    return this.history.filter((op) =>
      op.ret === Infinity && !ended.has(op.session)
    );
  }
}

/**
 * Checks a group's whole view channel: proposals and installed views have
 * increasing ids, a proposal names survivors of the installed view, an
 * installed view follows from the view before it (members minus those
 * who left, plus those who joined) and equals its proposal when it had
 * one.
 *
 * @returns A failure message, or `undefined`.
 */
export function checkViewStream(
  events: readonly ChannelEvent[],
): string | undefined {
  let installed = { viewId: 0, members: [] as string[] };
  let proposal: { viewId: number; members: string[] } | undefined;
  let lastProposal = 0;
  for (const event of events) {
    const view = event.data as unknown as ViewEvent;
    const members = view.members.map((m) => m.member);
    const where = `view event #${event.seq} (${view.type} ${view.viewId})`;
    if (view.viewId <= installed.viewId) {
      return `${where}: id not above the installed view's, ${installed.viewId}`;
    }
    if (view.type === "propose") {
      if (view.viewId <= lastProposal) {
        return `${where}: id not above the last proposal's, ${lastProposal}`;
      }
      lastProposal = view.viewId;
      if (view.fromViewId !== installed.viewId) {
        return `${where}: proposed from view ${view.fromViewId}, installed is ${installed.viewId}`;
      }
      for (const survivor of view.survivors) {
        if (!installed.members.includes(survivor)) {
          return `${where}: survivor ${survivor} is not in view ${installed.viewId}`;
        }
        if (!members.includes(survivor)) {
          return `${where}: survivor ${survivor} is not in the proposed view`;
        }
      }
      proposal = { viewId: view.viewId, members };
      continue;
    }
    const expected = installed.members.filter((m) => !view.left.includes(m))
      .concat(view.joined);
    if (JSON.stringify(expected) !== JSON.stringify(members)) {
      return `${where}: members ${JSON.stringify(members)} do not follow from ${
        JSON.stringify(installed.members)
      } - ${JSON.stringify(view.left)} + ${JSON.stringify(view.joined)}`;
    }
    if (proposal !== undefined && proposal.viewId > view.viewId) {
      return `${where}: installed under pending proposal ${proposal.viewId}`;
    }
    if (
      proposal !== undefined && proposal.viewId === view.viewId &&
      JSON.stringify(proposal.members) !== JSON.stringify(members)
    ) {
      return `${where}: installed members differ from the proposal's`;
    }
    if (proposal === undefined && view.viewId <= lastProposal) {
      return `${where}: installed without a proposal, under the last proposal's id ${lastProposal}`;
    }
    lastProposal = Math.max(lastProposal, view.viewId);
    if (new Set(members).size !== members.length) {
      return `${where}: a member appears twice`;
    }
    installed = { viewId: view.viewId, members };
    proposal = undefined;
  }
  return undefined;
}

/**
 * Checks that every acknowledged append is in the channel read back at
 * the end, at its sequence number.
 *
 * @returns A failure message, or `undefined`.
 */
export function checkAcknowledgedKept(
  checker: OracleChecker,
  finalReads: ReadonlyMap<string, readonly ChannelEvent[]>,
): string | undefined {
  for (const [path, channel] of checker.acknowledged()) {
    const events = finalReads.get(path) ?? [];
    for (const [seq, data] of channel) {
      if (events[seq - 1]?.data !== data) {
        return `lost: acknowledged append ${path}#${seq} (${
          JSON.stringify(data)
        }) is not in the channel after every replica restarted`;
      }
    }
  }
  return undefined;
}

/** Reads a whole channel, page by page (at most 100 pages of 1,000). */
export async function readWholeChannel(
  read: (
    path: string,
    from: number,
    limit: number,
  ) => Promise<{ events: ChannelEvent[] }>,
  path: string,
): Promise<ChannelEvent[]> {
  const events: ChannelEvent[] = [];
  for (let page = 0; page < 100; page++) {
    const got = await read(path, events.length + 1, 1000);
    events.push(...got.events);
    if (got.events.length < 1000) break;
  }
  return events;
}
