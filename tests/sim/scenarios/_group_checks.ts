/**
 * The invariant checkers of the group engine (DESIGN.md, "Invariants every
 * test and simulation checks"), as pure functions over a recorded
 * {@linkcode GroupHistory}: they know nothing of the engine. Each returns
 * `undefined` when its rule holds, or a message naming the rule, the
 * member, the view and the messages that break it.
 *
 * Rules that one event decides (view order and agreement, integrity, FIFO,
 * delivery in the current view, state hashes) run as the events are
 * replayed, by the same {@linkcode HistoryReplay} the recorder runs online;
 * the others run over the whole history, each in linear time (plus a
 * factor of the view size), so a history of ~100k deliveries checks in
 * well under a second.
 *
 * @module
 */

import type {
  DeliverEvent,
  EndEvent,
  GroupHistory,
  MemberEvent,
  SentRecord,
  StateEvent,
  Strategy,
  ViewEvent,
} from "./_group_history.ts";

/** The rules, in the order {@linkcode checkGroupHistory} checks them. */
export type GroupRule =
  | "views"
  | "synchrony"
  | "integrity"
  | "fifo"
  | "causal"
  | "total-order"
  | "gbcast"
  | "state"
  | "liveness";

const LABELS: Record<GroupRule, string> = {
  views: "view agreement",
  synchrony: "view synchrony",
  integrity: "integrity",
  fifo: "FIFO",
  causal: "causal order",
  "total-order": "total order",
  gbcast: "gbcast order",
  state: "state transfer",
  liveness: "liveness",
};

/** A sent message and its place (1-based) among its sender's messages of one strategy in one view. */
interface SentInfo {
  readonly record: SentRecord;
  readonly position: number;
}

/** What the replay keeps of one member (one incarnation). */
interface MemberState {
  current: number | undefined;
  ended: "crashed" | "left" | undefined;
  /** Views installed, in order. */
  readonly views: number[];
  readonly installed: Set<number>;
  /** Per view, the ids delivered in it, in order, each once. */
  readonly deliveries: Map<number, string[]>;
  readonly delivered: Set<string>;
  /** Per sender, strategy and view: the position of the next message expected. */
  readonly fifoNext: Map<string, number>;
  /** Per view, the state hash recorded at it. */
  readonly states: Map<number, string>;
}

function seriesKey(sender: string, strategy: Strategy, viewId: number): string {
  return `${sender}\u0000${strategy}\u0000${viewId}`;
}

function at(event: MemberEvent): string {
  return `(t=${event.at})`;
}

function list(names: readonly string[]): string {
  return `[${names.join(", ")}]`;
}

/**
 * Replays a history event by event, applying the rules one event decides
 * and indexing what the end-of-run rules need. The recorder feeds it live;
 * {@linkcode HistoryReplay.of} feeds it a finished history (every send
 * first, then each member's events). Only the first failure of each rule
 * is kept.
 *
 * @example Replaying a delivery of a message nobody sent
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const replay = new HistoryReplay();
 * replay.event("a", { type: "view", viewId: 1, members: ["a"], at: 0 });
 * replay.event("a", { type: "deliver", id: "x", sender: "a", strategy: "fbcast", viewId: 1, at: 1 });
 * assert.match(replay.failure("integrity") ?? "", /never sent/);
 * ```
 */
export class HistoryReplay {
  /** Each view's member list as first recorded, and by whom. */
  readonly lists: Map<number, { members: readonly string[]; by: string }> =
    new Map();
  /** Every sent message by id. */
  readonly messages: Map<string, SentInfo> = new Map();
  /** The members' indexed events, in first-recorded order. */
  readonly members: Map<string, MemberState> = new Map();
  readonly #series = new Map<string, string[]>();
  readonly #hashes = new Map<number, { hash: string; by: string }>();
  readonly #failures = new Map<GroupRule, string>();
  #first: string | undefined;

  /** Replays a finished history. */
  static of(history: GroupHistory): HistoryReplay {
    const replay = new HistoryReplay();
    for (const record of history.sent) replay.sent(record);
    for (const [member, events] of history.members) {
      for (const event of events) replay.event(member, event);
    }
    return replay;
  }

  /** The first failure found, of any rule. */
  get firstFailure(): string | undefined {
    return this.#first;
  }

  /** The first failure found of `rule`. */
  failure(rule: GroupRule): string | undefined {
    return this.#failures.get(rule);
  }

  /**
   * The ids `sender` sent with `strategy` in `viewId`, in send order
   * (index `k - 1` holds position `k`).
   */
  series(sender: string, strategy: Strategy, viewId: number): string[] {
    return this.#series.get(seriesKey(sender, strategy, viewId)) ?? [];
  }

  /** Records a send. Integrity: an id is sent once. */
  sent(record: SentRecord): void {
    const earlier = this.messages.get(record.id);
    if (earlier !== undefined) {
      this.#fail(
        "integrity",
        `message id ${record.id} was sent twice (by ${earlier.record.sender} in view ${earlier.record.viewId}, by ${record.sender} in view ${record.viewId})`,
      );
      return;
    }
    const key = seriesKey(record.sender, record.strategy, record.viewId);
    let ids = this.#series.get(key);
    if (ids === undefined) this.#series.set(key, ids = []);
    ids.push(record.id);
    this.messages.set(record.id, { record, position: ids.length });
  }

  /** Records one event of `member`. Views: nothing follows a crash or a leave. */
  event(member: string, event: MemberEvent): void {
    const state = this.#member(member);
    if (state.ended !== undefined) {
      this.#fail(
        "views",
        `${member} recorded a "${event.type}" after it ${state.ended} ${
          at(event)
        }`,
      );
      return;
    }
    switch (event.type) {
      case "view":
        return this.#view(member, state, event);
      case "deliver":
        return this.#deliver(member, state, event);
      case "state":
        return this.#state(member, state, event);
      case "crash":
      case "leave":
        return this.#end(state, event);
    }
  }

  #member(name: string): MemberState {
    let state = this.members.get(name);
    if (state === undefined) {
      state = {
        current: undefined,
        ended: undefined,
        views: [],
        installed: new Set(),
        deliveries: new Map(),
        delivered: new Set(),
        fifoNext: new Map(),
        states: new Map(),
      };
      this.members.set(name, state);
    }
    return state;
  }

  /**
   * Views: installed in strictly increasing order, by a member of them,
   * with one member list per view id (same names, same order, no repeats).
   */
  #view(member: string, state: MemberState, event: ViewEvent): void {
    const v = event.viewId;
    if (state.current !== undefined && v <= state.current) {
      this.#fail(
        "views",
        `${member} installed view ${v} after view ${state.current}: views are installed in increasing order ${
          at(event)
        }`,
      );
    }
    if (!event.members.includes(member)) {
      this.#fail(
        "views",
        `${member} installed view ${v} ${
          list(event.members)
        } without being a member of it ${at(event)}`,
      );
    }
    const repeated = event.members.find((name, i) =>
      event.members.indexOf(name) !== i
    );
    if (repeated !== undefined) {
      this.#fail(
        "views",
        `${member} installed view ${v} ${
          list(event.members)
        }, which lists ${repeated} twice ${at(event)}`,
      );
    }
    const agreed = this.lists.get(v);
    if (agreed === undefined) {
      this.lists.set(v, { members: event.members, by: member });
    } else if (
      agreed.members.length !== event.members.length ||
      agreed.members.some((name, i) => event.members[i] !== name)
    ) {
      this.#fail(
        "views",
        `${member} installed view ${v} as ${
          list(event.members)
        } but ${agreed.by} installed it as ${list(agreed.members)} ${
          at(event)
        }`,
      );
    }
    state.current = v;
    state.views.push(v);
    state.installed.add(v);
  }

  /**
   * Synchrony: delivered in the view the member is in. Integrity: sent (by
   * that sender, with that strategy, in that view) and delivered once.
   * FIFO: the next of its sender's messages of that strategy and view.
   */
  #deliver(member: string, state: MemberState, event: DeliverEvent): void {
    const { id, viewId } = event;
    if (state.current !== viewId) {
      this.#fail(
        "synchrony",
        `${member} delivered ${id} of view ${viewId} ${
          state.current === undefined
            ? "before installing any view"
            : `while in view ${state.current}`
        } ${at(event)}`,
      );
    }
    if (state.delivered.has(id)) {
      this.#fail(
        "integrity",
        `${member} delivered ${id} twice (again in view ${viewId}) ${
          at(event)
        }`,
      );
      return;
    }
    state.delivered.add(id);
    let ids = state.deliveries.get(viewId);
    if (ids === undefined) state.deliveries.set(viewId, ids = []);
    ids.push(id);
    const info = this.messages.get(id);
    if (info === undefined) {
      this.#fail(
        "integrity",
        `${member} delivered ${id}, which was never sent ${at(event)}`,
      );
      return;
    }
    const sent = info.record;
    if (sent.sender !== event.sender || sent.strategy !== event.strategy) {
      this.#fail(
        "integrity",
        `${member} delivered ${id} as ${event.sender}'s ${event.strategy}, but ${sent.sender} sent it as ${sent.strategy} ${
          at(event)
        }`,
      );
      return;
    }
    if (sent.viewId !== viewId) {
      this.#fail(
        "integrity",
        `${member} delivered ${id} in view ${viewId}, but ${sent.sender} sent it in view ${sent.viewId} ${
          at(event)
        }`,
      );
      return;
    }
    const key = seriesKey(sent.sender, sent.strategy, viewId);
    const next = state.fifoNext.get(key) ?? 1;
    if (info.position !== next) {
      const expected = this.series(sent.sender, sent.strategy, viewId)[
        next - 1
      ];
      this.#fail(
        "fifo",
        `${member} delivered ${id} (${sent.sender}'s ${sent.strategy} #${info.position} of view ${viewId}) without having delivered ${expected} (#${next}) before it ${
          at(event)
        }`,
      );
    }
    state.fifoNext.set(key, Math.max(next, info.position + 1));
  }

  /**
   * State: recorded once per view, in that view before any delivery in it,
   * and with the same hash at every member.
   */
  #state(member: string, state: MemberState, event: StateEvent): void {
    const v = event.viewId;
    const first = state.deliveries.get(v)?.[0];
    if (state.current !== v) {
      this.#fail(
        "state",
        `${member} recorded its state at view ${v} ${
          state.current === undefined
            ? "before installing any view"
            : `while in view ${state.current}`
        } ${at(event)}`,
      );
    } else if (first !== undefined) {
      this.#fail(
        "state",
        `${member} recorded its state at view ${v} after delivering ${first} in it ${
          at(event)
        }`,
      );
    }
    if (state.states.has(v)) {
      this.#fail(
        "state",
        `${member} recorded its state at view ${v} twice ${at(event)}`,
      );
    }
    state.states.set(v, event.hash);
    const agreed = this.#hashes.get(v);
    if (agreed === undefined) {
      this.#hashes.set(v, { hash: event.hash, by: member });
    } else if (agreed.hash !== event.hash) {
      this.#fail(
        "state",
        `${member}'s state at view ${v} is ${event.hash}, but ${agreed.by}'s is ${agreed.hash} ${
          at(event)
        }`,
      );
    }
  }

  #end(state: MemberState, event: EndEvent): void {
    state.ended = event.type === "crash" ? "crashed" : "left";
  }

  #fail(rule: GroupRule, text: string): void {
    if (this.#failures.has(rule)) return;
    const message = `${LABELS[rule]}: ${text}`;
    this.#failures.set(rule, message);
    this.#first ??= message;
  }
}

/** Options of {@linkcode checkGroupHistory}. */
export interface GroupCheckOptions {
  /**
   * Faults have stopped and the group has settled: also check liveness.
   * Default false.
   */
  readonly settled?: boolean | undefined;
  /** Rules that do not apply to the history (for example `state` where nothing has state). */
  readonly skip?: readonly GroupRule[] | undefined;
}

type Check = (
  history: GroupHistory,
  replay: HistoryReplay,
) => string | undefined;

function fail(rule: GroupRule, text: string): string {
  return `${LABELS[rule]}: ${text}`;
}

function sortedViews(replay: HistoryReplay): number[] {
  return [...replay.lists.keys()].sort((a, b) => a - b);
}

/** Views: a member that leaves a view never appears in a later one. */
function noneComesBack(
  _: GroupHistory,
  replay: HistoryReplay,
): string | undefined {
  const gone = new Map<string, { lastIn: number; firstOut: number }>();
  let previous: readonly string[] = [];
  let previousId = 0;
  for (const v of sortedViews(replay)) {
    const members = replay.lists.get(v)!.members;
    for (const name of previous) {
      if (!members.includes(name)) {
        gone.set(name, { lastIn: previousId, firstOut: v });
      }
    }
    for (const name of members) {
      const out = gone.get(name);
      if (out !== undefined) {
        return fail(
          "views",
          `${name} was in view ${out.lastIn}, not in view ${out.firstOut}, and is back in view ${v}: a member that leaves or is excluded never comes back under the same name`,
        );
      }
    }
    previous = members;
    previousId = v;
  }
  return undefined;
}

/**
 * Synchrony: no member skips a view it belongs to (with {@linkcode noneComesBack},
 * two members that both go on from view v go on to the same next view), and
 * two members that both go from v to the same next view delivered the same
 * set in v.
 */
function sameViewsSameMessages(
  _: GroupHistory,
  replay: HistoryReplay,
): string | undefined {
  for (const v of sortedViews(replay)) {
    for (const name of replay.lists.get(v)!.members) {
      const state = replay.members.get(name);
      if (state === undefined || state.installed.has(v)) continue;
      const later = state.views.find((w) => w > v);
      if (later === undefined) continue;
      const earlier = state.views.findLast((w) => w < v);
      return fail(
        "synchrony",
        `${name} belongs to view ${v} but went from ${
          earlier === undefined ? "no view" : `view ${earlier}`
        } to view ${later} without installing it`,
      );
    }
  }
  const firsts = new Map<string, { member: string; ids: Set<string> }>();
  for (const [member, state] of replay.members) {
    for (let i = 0; i + 1 < state.views.length; i++) {
      const [v, next] = [state.views[i], state.views[i + 1]];
      const ids = state.deliveries.get(v) ?? [];
      const key = `${v}>${next}`;
      const first = firsts.get(key);
      if (first === undefined) {
        firsts.set(key, { member, ids: new Set(ids) });
        continue;
      }
      if (
        ids.length === first.ids.size && ids.every((id) => first.ids.has(id))
      ) {
        continue;
      }
      const extra = ids.find((id) => !first.ids.has(id));
      const mine = new Set(ids);
      const [has, lacks, id] = extra !== undefined
        ? [member, first.member, extra]
        : [first.member, member, [...first.ids].find((id) => !mine.has(id))];
      return fail(
        "synchrony",
        `${member} and ${first.member} both went from view ${v} to view ${next}, but ${has} delivered ${id} in view ${v} and ${lacks} did not`,
      );
    }
  }
  return undefined;
}

/** Integrity: a message's sender is a member of the view it sent it in. */
function sentByMembers(
  _: GroupHistory,
  replay: HistoryReplay,
): string | undefined {
  for (const { record } of replay.messages.values()) {
    const view = replay.lists.get(record.viewId);
    if (view !== undefined && !view.members.includes(record.sender)) {
      return fail(
        "integrity",
        `${record.sender} sent ${record.id} in view ${record.viewId} ${
          list(view.members)
        }, which it is not a member of`,
      );
    }
  }
  return undefined;
}

/** Per view and sender, the longest prefix of the sender's cbcasts delivered. */
class Prefixes {
  readonly #views = new Map<
    number,
    Map<string, { frontier: number; pending: Set<number> }>
  >();

  add(viewId: number, sender: string, position: number): void {
    let senders = this.#views.get(viewId);
    if (senders === undefined) this.#views.set(viewId, senders = new Map());
    let prefix = senders.get(sender);
    if (prefix === undefined) {
      senders.set(sender, prefix = { frontier: 0, pending: new Set() });
    }
    if (position <= prefix.frontier) return;
    prefix.pending.add(position);
    for (
      let next = prefix.frontier + 1;
      prefix.pending.delete(next);
      next++
    ) {
      prefix.frontier = next;
    }
  }

  frontier(viewId: number, sender: string): number {
    return this.#views.get(viewId)?.get(sender)?.frontier ?? 0;
  }

  snapshot(viewId: number): Map<string, number> {
    const vector = new Map<string, number>();
    for (const [sender, { frontier }] of this.#views.get(viewId) ?? []) {
      vector.set(sender, frontier);
    }
    return vector;
  }
}

/** The sent record of a consistent cbcast delivery, else undefined. */
function cbcastDelivery(
  replay: HistoryReplay,
  event: MemberEvent,
): SentInfo | undefined {
  if (event.type !== "deliver" || event.strategy !== "cbcast") return undefined;
  const info = replay.messages.get(event.id);
  const sent = info?.record;
  return sent?.strategy === "cbcast" && sent.sender === event.sender &&
      sent.viewId === event.viewId
    ? info
    : undefined;
}

/**
 * Causal: among the cbcasts of one view, m1 → m2 when m2's sender sent m1
 * before m2, or had delivered m1 before sending m2 (its first
 * `deliveredBefore` events), closed transitively. A member that delivers
 * m2 has delivered every such m1 before it.
 *
 * Each message gets a vector: per sender, how many of that sender's
 * cbcasts of the view its sender had delivered in an unbroken prefix (its
 * own: how many it sent before). Checking every direct edge at every
 * member covers the transitive closure: a member delivering m2 needs m1
 * first, and needed m1's own past before m1.
 */
function causalOrder(
  history: GroupHistory,
  replay: HistoryReplay,
): string | undefined {
  const bySender = new Map<string, SentInfo[]>();
  for (const info of replay.messages.values()) {
    if (info.record.strategy !== "cbcast") continue;
    const sends = bySender.get(info.record.sender);
    if (sends === undefined) bySender.set(info.record.sender, [info]);
    else sends.push(info);
  }
  const required = new Map<string, Map<string, number>>();
  for (const [sender, sends] of bySender) {
    const events = history.members.get(sender) ?? [];
    const seen = new Prefixes();
    let e = 0;
    sends.sort((a, b) => a.record.deliveredBefore - b.record.deliveredBefore);
    for (const { record, position } of sends) {
      for (; e < Math.min(record.deliveredBefore, events.length); e++) {
        const info = cbcastDelivery(replay, events[e]);
        if (info !== undefined) {
          seen.add(info.record.viewId, info.record.sender, info.position);
        }
      }
      const vector = seen.snapshot(record.viewId);
      vector.set(sender, Math.max(vector.get(sender) ?? 0, position - 1));
      required.set(record.id, vector);
    }
  }
  for (const [member, events] of history.members) {
    const done = new Prefixes();
    for (const event of events) {
      const info = cbcastDelivery(replay, event);
      if (info === undefined) continue;
      const m2 = info.record;
      for (const [sender, count] of required.get(m2.id)!) {
        const have = done.frontier(m2.viewId, sender);
        if (have >= count) continue;
        const series = replay.series(sender, "cbcast", m2.viewId);
        const why = sender === m2.sender
          ? `${sender} sent ${series[have]} first`
          : `${m2.sender} had delivered ${sender}'s cbcasts of view ${m2.viewId} through #${count} (${
            series[count - 1]
          }) before sending ${m2.id}`;
        return fail(
          "causal",
          `${member} delivered ${m2.id} (cbcast, view ${m2.viewId}) without having delivered ${
            series[have]
          } before it, which happened before it: ${why} ${at(event)}`,
        );
      }
      done.add(m2.viewId, m2.sender, info.position);
    }
  }
  return undefined;
}

interface Edge {
  readonly from: string;
  readonly to: string;
  readonly by: string;
}

/**
 * Total order: per view, the orders in which members delivered abcasts fit
 * one total order (no cycle among "delivered before" of consecutive
 * abcasts, which also covers two members delivering two messages in
 * opposite orders). Agreed order, as in Spread: among the members that
 * did not crash or leave in the view; one that did may have delivered
 * abcasts whose order no survivor learned (the sequencer's last ones).
 */
function totalOrder(
  history: GroupHistory,
  replay: HistoryReplay,
): string | undefined {
  const endedIn = new Map<string, number>();
  for (const [member, events] of history.members) {
    let view = 0;
    for (const event of events) {
      if (event.type === "view") view = event.viewId;
      if (event.type === "crash" || event.type === "leave") {
        endedIn.set(member, view);
      }
    }
  }
  const byView = new Map<number, { member: string; ids: string[] }[]>();
  for (const [member, state] of replay.members) {
    for (const [v, delivered] of state.deliveries) {
      if (endedIn.get(member) === v) continue;
      const ids = delivered.filter((id) =>
        replay.messages.get(id)?.record.strategy === "abcast"
      );
      if (ids.length === 0) continue;
      const sequences = byView.get(v);
      if (sequences === undefined) byView.set(v, [{ member, ids }]);
      else sequences.push({ member, ids });
    }
  }
  for (const v of [...byView.keys()].sort((a, b) => a - b)) {
    const cycle = findCycle(byView.get(v)!);
    if (cycle !== undefined) {
      return fail(
        "total-order",
        `in view ${v} no one order fits the abcast deliveries: ${
          cycle.map((e) => `${e.by} delivered ${e.from} before ${e.to}`)
            .join("; ")
        }`,
      );
    }
  }
  return undefined;
}

/** A cycle in the union of consecutive-delivery edges, or undefined (Kahn). */
function findCycle(
  sequences: readonly { member: string; ids: string[] }[],
): Edge[] | undefined {
  const outgoing = new Map<string, Edge[]>();
  const incoming = new Map<string, Edge[]>();
  const indegree = new Map<string, number>();
  for (const { member, ids } of sequences) {
    for (const [i, id] of ids.entries()) {
      if (!indegree.has(id)) {
        indegree.set(id, 0);
        outgoing.set(id, []);
        incoming.set(id, []);
      }
      if (i === 0) continue;
      const edge = { from: ids[i - 1], to: id, by: member };
      outgoing.get(edge.from)!.push(edge);
      incoming.get(id)!.push(edge);
      indegree.set(id, indegree.get(id)! + 1);
    }
  }
  const ready = [...indegree.keys()].filter((id) => indegree.get(id) === 0);
  const done = new Set<string>();
  for (let id = ready.pop(); id !== undefined; id = ready.pop()) {
    done.add(id);
    for (const { to } of outgoing.get(id)!) {
      const left = indegree.get(to)! - 1;
      indegree.set(to, left);
      if (left === 0) ready.push(to);
    }
  }
  if (done.size === indegree.size) return undefined;
  // Every node left has a predecessor left: walk back until one repeats.
  const walked: Edge[] = [];
  const step = new Map<string, number>();
  let node = [...indegree.keys()].find((id) => !done.has(id))!;
  for (let i = 0; i <= indegree.size && !step.has(node); i++) {
    step.set(node, i);
    const edge = incoming.get(node)!.find((e) => !done.has(e.from))!;
    walked.push(edge);
    node = edge.from;
  }
  return walked.slice(step.get(node)).reverse();
}

/**
 * gbcast: for every gbcast g, every member that delivers g delivered the
 * same set of messages (of every strategy) before g in g's view. Checked
 * per gbcast against the first member that delivered it: the same
 * previous gbcast, and the same messages since it. (That the messages after
 * g also agree follows from view synchrony.)
 */
function gbcastOrder(
  _: GroupHistory,
  replay: HistoryReplay,
): string | undefined {
  const firsts = new Map<
    string,
    { member: string; viewId: number; previous?: string; since: Set<string> }
  >();
  for (const [member, state] of replay.members) {
    for (const [v, ids] of state.deliveries) {
      let previous: string | undefined;
      let since: string[] = [];
      for (const id of ids) {
        if (replay.messages.get(id)?.record.strategy !== "gbcast") {
          since.push(id);
          continue;
        }
        const first = firsts.get(id);
        if (first === undefined) {
          firsts.set(id, {
            member,
            viewId: v,
            previous,
            since: new Set(since),
          });
        } else if (
          first.viewId === v && (first.previous !== previous ||
            first.since.size !== since.length ||
            since.some((m) => !first.since.has(m)))
        ) {
          return gbcastDifference(replay, v, id, member, first.member);
        }
        previous = id;
        since = [];
      }
    }
  }
  return undefined;
}

/** Names a message delivered before gbcast `g` in `viewId` by one of `a`, `b` only. */
function gbcastDifference(
  replay: HistoryReplay,
  viewId: number,
  g: string,
  a: string,
  b: string,
): string {
  const before = (member: string) => {
    const ids = replay.members.get(member)!.deliveries.get(viewId)!;
    return ids.slice(0, ids.indexOf(g));
  };
  const [ofA, ofB] = [before(a), before(b)];
  const [setA, setB] = [new Set(ofA), new Set(ofB)];
  const onlyA = ofA.find((id) => !setB.has(id));
  // When the checks of every earlier gbcast passed, the sets differ.
  const [has, lacks, id] = onlyA !== undefined
    ? [a, b, onlyA]
    : [b, a, ofB.find((id) => !setA.has(id))];
  return fail(
    "gbcast",
    `${has} delivered ${id} before gbcast ${g} in view ${viewId}, and ${lacks} did not: every member delivers the same messages before a gbcast`,
  );
}

/**
 * State transfer, coverage: at a view that adds members to a running group,
 * every earlier member that installs it records its state, and every
 * joiner records its restored state, unless it crashed before restoring
 * (it then delivered nothing in that view and installed no later one).
 * The hashes are compared as they are recorded.
 */
function stateRecorded(
  _: GroupHistory,
  replay: HistoryReplay,
): string | undefined {
  for (const v of sortedViews(replay)) {
    const names = replay.lists.get(v)!.members;
    const joiners = names.filter((n) => replay.members.get(n)?.views[0] === v);
    const earlier = names.filter((n) => {
      const state = replay.members.get(n);
      return state !== undefined && state.views[0] < v &&
        state.installed.has(v);
    });
    if (joiners.length === 0 || earlier.length === 0) continue;
    for (const name of earlier) {
      if (!replay.members.get(name)!.states.has(v)) {
        return fail(
          "state",
          `${name} recorded no state at view ${v}, which added ${
            joiners.join(", ")
          }`,
        );
      }
    }
    for (const name of joiners) {
      const state = replay.members.get(name)!;
      if (state.states.has(v)) continue;
      const first = state.deliveries.get(v)?.[0];
      if (first === undefined && state.views.length === 1) continue;
      return fail(
        "state",
        `joiner ${name} recorded no restored state at view ${v} but ${
          first !== undefined
            ? `delivered ${first} in it`
            : `went on to view ${state.views[1]}`
        }`,
      );
    }
  }
  return undefined;
}

/**
 * Liveness (once settled): every message whose sender never crashed or
 * left is delivered by every member of its view that never crashed or
 * left; every member still up ends in the same view, which lists exactly
 * the members still up.
 */
function liveness(_: GroupHistory, replay: HistoryReplay): string | undefined {
  const up = (name: string) => {
    const state = replay.members.get(name);
    return state !== undefined && state.ended === undefined;
  };
  for (const { record } of replay.messages.values()) {
    if (!up(record.sender)) continue;
    const view = replay.lists.get(record.viewId);
    if (view === undefined) {
      return fail(
        "liveness",
        `${record.sender} sent ${record.id} in view ${record.viewId}, which no member installed`,
      );
    }
    for (const name of view.members) {
      if (up(name) && !replay.members.get(name)!.delivered.has(record.id)) {
        return fail(
          "liveness",
          `${name} never delivered ${record.id}, which ${record.sender} sent in view ${record.viewId}, though both stayed up`,
        );
      }
    }
  }
  const survivors = [...replay.members.keys()].filter(up);
  let final: { member: string; viewId: number } | undefined;
  for (const member of survivors) {
    const viewId = replay.members.get(member)!.views.at(-1);
    if (viewId === undefined) {
      return fail("liveness", `${member} stayed up but installed no view`);
    }
    final ??= { member, viewId };
    if (viewId !== final.viewId) {
      return fail(
        "liveness",
        `${final.member} ended in view ${final.viewId} but ${member} in view ${viewId}`,
      );
    }
  }
  if (final === undefined) return undefined;
  const names = replay.lists.get(final.viewId)!.members;
  const stale = names.find((name) => !up(name));
  if (stale === undefined) return undefined;
  const ended = replay.members.get(stale)?.ended ?? "recorded nothing";
  return fail(
    "liveness",
    `the final view ${final.viewId} ${
      list(names)
    } still lists ${stale}, which ${ended}`,
  );
}

const CHECKS: Record<GroupRule, Check | undefined> = {
  views: noneComesBack,
  synchrony: sameViewsSameMessages,
  integrity: sentByMembers,
  fifo: undefined,
  causal: causalOrder,
  "total-order": totalOrder,
  gbcast: gbcastOrder,
  state: stateRecorded,
  liveness,
};

function check(
  rule: GroupRule,
  history: GroupHistory,
  replay: HistoryReplay,
): string | undefined {
  return replay.failure(rule) ?? CHECKS[rule]?.(history, replay);
}

/**
 * Checks every rule (liveness only when `options.settled`, none of
 * `options.skip`) and returns the
 * first failure, in the order of {@linkcode GroupRule}.
 *
 * @param history what the scenario recorded
 * @param options whether the group has settled
 * @returns undefined, or a message naming the rule, member, view and messages
 * @example A member that delivered nothing its view-mate delivered
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const view = { type: "view", viewId: 1, members: ["a", "b"], at: 0 } as const;
 * const m = { id: "a:1", sender: "a", strategy: "fbcast", viewId: 1 } as const;
 * const history = {
 *   sent: [{ ...m, at: 1, deliveredBefore: 1 }],
 *   members: new Map([
 *     ["a", [view, { type: "deliver", ...m, at: 2 } as const]],
 *     ["b", [view]],
 *   ]),
 * };
 * assert.match(checkGroupHistory(history, { settled: true }) ?? "", /^liveness/);
 * ```
 */
export function checkGroupHistory(
  history: GroupHistory,
  options: GroupCheckOptions = {},
): string | undefined {
  const replay = HistoryReplay.of(history);
  for (const rule of Object.keys(LABELS) as GroupRule[]) {
    if (rule === "liveness" && options.settled !== true) continue;
    if (options.skip?.includes(rule)) continue;
    const failure = check(rule, history, replay);
    if (failure !== undefined) return failure;
  }
  return undefined;
}

/**
 * View agreement: every member that installs view v sees the same ordered
 * member list (no name twice); each member installs views in strictly
 * increasing order and is a member of each; nothing follows a member's
 * crash or leave; a name that drops out of the views never comes back.
 */
export function checkViewAgreement(history: GroupHistory): string | undefined {
  return check("views", history, HistoryReplay.of(history));
}

/**
 * View synchrony: a member delivers a message while in the view the message
 * is tagged with; no member skips a view it belongs to; two members that
 * both go from v to the same next view delivered the same set in v. (That
 * a message is delivered in the same view everywhere follows from
 * integrity: it is delivered in the view it was sent in.)
 */
export function checkViewSynchrony(history: GroupHistory): string | undefined {
  return check("synchrony", history, HistoryReplay.of(history));
}

/**
 * Integrity: ids are sent once, by a member of the view they are sent in;
 * every delivery is of a sent id, with its sender, strategy and view; no
 * member delivers an id twice.
 */
export function checkIntegrity(history: GroupHistory): string | undefined {
  return check("integrity", history, HistoryReplay.of(history));
}

/**
 * FIFO, for every strategy: per sender, strategy and view, the messages a
 * member delivers are the sender's first k of them, in send order. A
 * member may stop short of the sender's last messages (a sender that
 * crashed mid-multicast), but never skips one or inverts two.
 */
export function checkFifo(history: GroupHistory): string | undefined {
  return check("fifo", history, HistoryReplay.of(history));
}

/**
 * Causal order, among the cbcasts of one view: m1 → m2 when m2's sender
 * sent m1 earlier, or delivered m1 among its first `deliveredBefore`
 * events, closed transitively; whoever delivers m2 delivered m1 before.
 * Deliveries of other strategies create no edge (cbcast's vector
 * timestamps count cbcasts only), and earlier views are left to view
 * synchrony (every member of the new view delivered the same set in the
 * old one, or restored a state that includes it).
 */
export function checkCausal(history: GroupHistory): string | undefined {
  return check("causal", history, HistoryReplay.of(history));
}

/**
 * Total order: in each view, the abcasts the members deliver fit one total
 * order (for any two members, any two abcasts both deliver are in the same
 * relative order, and no cycle spans three or more members), among the
 * members that did not crash or leave in that view (agreed order).
 */
export function checkTotalOrder(history: GroupHistory): string | undefined {
  return check("total-order", history, HistoryReplay.of(history));
}

/**
 * gbcast order: every member that delivers a gbcast delivered exactly the
 * same messages (every strategy, other gbcasts included) before it in its
 * view.
 */
export function checkGbcast(history: GroupHistory): string | undefined {
  return check("gbcast", history, HistoryReplay.of(history));
}

/**
 * State transfer: all state hashes recorded at one view are equal; each is
 * recorded while in that view before any delivery in it; a view that adds
 * members to a running group has the states of its earlier members and its
 * joiners (a joiner that crashed before restoring is excused).
 */
export function checkStateTransfer(history: GroupHistory): string | undefined {
  return check("state", history, HistoryReplay.of(history));
}

/**
 * Liveness, for a settled group: every message whose sender never crashed
 * or left is delivered by every member of its view that never crashed or
 * left, and the members still up end in one view listing exactly them.
 */
export function checkLiveness(history: GroupHistory): string | undefined {
  return check("liveness", history, HistoryReplay.of(history));
}
