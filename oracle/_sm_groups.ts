/**
 * The Oracle state machine's group views: joins, voluntary leaves and
 * forced removals, ordered into flush-then-view changes.
 *
 * Per group: the installed view, at most one proposal in flight (the next
 * view, the survivors that must report `flushed` for it, those that did),
 * and a queue of joins and leaves waiting for the proposal to install.
 * A removal (a failure) never waits: it restarts the proposal in flight
 * under a higher view id. Every proposal and installation is appended to
 * the group's view channel.
 *
 * A gbcast is a change too: a proposal with the same members that carries
 * the message, so the members deliver it at the end of the installed view,
 * after every other message of that view and before the next one. Queued
 * gbcasts and membership changes keep their order: consecutive gbcasts
 * share a proposal, consecutive membership changes another.
 *
 * @module
 */

import type {
  GbcastMessage,
  GroupView,
  Json,
  OracleErrorResult,
  ViewEvent,
  ViewMember,
} from "./commands.ts";
import { viewChannel } from "./commands.ts";
import { fail, quote } from "./_sm_sessions.ts";

interface Proposal {
  viewId: number;
  fromViewId: number;
  members: ViewMember[];
  survivors: string[];
  flushed: string[];
  /** gbcasts delivered at the end of the installed view, in order. */
  messages: GbcastMessage[];
}

type Change =
  | { kind: "join"; member: string; session: string }
  | { kind: "leave"; member: string }
  | { kind: "gbcast"; message: GbcastMessage };

/** Most gbcasts one proposal carries (the rest wait for the next). */
const MAX_GBCASTS_PER_VIEW = 16;

interface Group {
  /** The highest view id used, by an installed view or a proposal. */
  lastId: number;
  installed: { viewId: number; members: ViewMember[] } | null;
  proposal: Proposal | null;
  pending: Change[];
  /** Names removed by force: they may never rejoin. */
  removed: Set<string>;
  /** Per member, the highest gbcast `seq` taken (a retry is taken once). */
  gbcastSeq: Map<string, number>;
}

type PendingSnapshot =
  | [string, "join", string]
  | [string, "leave"]
  | [string, "gbcast", number, string];

/** A group as a snapshot stores it. */
export type GroupSnapshot = [
  name: string,
  lastId: number,
  installed: [number, [string, string][]] | null,
  proposal:
    | [
      number,
      number,
      [string, string][],
      string[],
      string[],
      messages?: [string, number, string][],
    ]
    | null,
  pending: PendingSnapshot[],
  removed: string[],
  gbcastSeq?: [string, number][],
];

/** A group operation's result: the view id concerned, or an error. */
export type GroupResult = { viewId: number } | { error: OracleErrorResult };

const toPairs = (members: ViewMember[]): [string, string][] =>
  members.map((m) => [m.member, m.session]);
const fromPairs = (pairs: [string, string][]): ViewMember[] =>
  pairs.map(([member, session]) => ({ member, session }));

function without(members: ViewMember[], member: string): ViewMember[] {
  return members.filter((m) => m.member !== member);
}

function has(members: readonly ViewMember[], member: string): boolean {
  return members.some((m) => m.member === member);
}

/** Every group, and which session owns which members. */
export class GroupTable {
  #groups = new Map<string, Group>();
  /** session -> group -> member names it owns (an index, rebuilt on restore). */
  #owned = new Map<string, Map<string, Set<string>>>();
  #append: (path: string, data: Json) => void;

  /** `append` records a view event in a group's view channel. */
  constructor(append: (path: string, data: Json) => void) {
    this.#append = append;
  }

  #group(name: string): Group {
    let group = this.#groups.get(name);
    if (group === undefined) {
      group = {
        lastId: 0,
        installed: null,
        proposal: null,
        pending: [],
        removed: new Set(),
        gbcastSeq: new Map(),
      };
      this.#groups.set(name, group);
    }
    return group;
  }

  #own(session: string, group: string, member: string): void {
    let groups = this.#owned.get(session);
    if (groups === undefined) this.#owned.set(session, groups = new Map());
    let members = groups.get(group);
    if (members === undefined) groups.set(group, members = new Set());
    members.add(member);
  }

  #disown(session: string, group: string, member: string): void {
    const groups = this.#owned.get(session);
    const members = groups?.get(group);
    if (groups === undefined || members === undefined) return;
    members.delete(member);
    if (members.size === 0) groups.delete(group);
    if (groups.size === 0) this.#owned.delete(session);
  }

  /** The session that owns a member the group knows, if any. */
  #ownerOf(g: Group, member: string): string | undefined {
    const find = (members: readonly ViewMember[] | undefined) =>
      members?.find((m) => m.member === member)?.session;
    return find(g.installed?.members) ?? find(g.proposal?.members) ??
      g.pending.find((c): c is Change & { kind: "join" } =>
        c.kind === "join" && c.member === member
      )?.session;
  }

  /** An error unless `session` owns `member` of group `name`. */
  #notOwned(
    name: string,
    g: Group,
    member: string,
    session: string,
  ): { error: OracleErrorResult } | undefined {
    const owner = this.#ownerOf(g, member);
    if (owner === session) return undefined;
    return fail(
      "membership",
      `Member ${quote(member)} of group ${quote(name)} belongs to session ${
        quote(owner ?? "")
      }`,
    );
  }

  /** The members after the proposal in flight, or the installed ones. */
  #effective(g: Group): ViewMember[] {
    return g.proposal?.members ?? g.installed?.members ?? [];
  }

  #pendingIndex(g: Group, kind: "join" | "leave", member: string): number {
    return g.pending.findIndex((c) => c.kind === kind && c.member === member);
  }

  /** Forgets a member's owner once the group no longer knows the member. */
  #forgetIfGone(name: string, g: Group, member: string, session: string) {
    if (this.#ownerOf(g, member) === undefined) {
      this.#disown(session, name, member);
    }
  }

  /**
   * Proposes the next view: `members`, and `messages` (gbcasts) delivered
   * at the end of the installed view, those of senders that survive.
   */
  #propose(
    name: string,
    g: Group,
    members: ViewMember[],
    messages: readonly GbcastMessage[] = [],
  ): number {
    const viewId = ++g.lastId;
    const current = g.installed?.members ?? [];
    const names = new Set(members.map((m) => m.member));
    const survivors = current.filter((m) => names.has(m.member)).map((m) =>
      m.member
    );
    g.proposal = null;
    if (survivors.length === 0) {
      this.#install(name, g, viewId, members, []);
      return viewId;
    }
    const fromViewId = g.installed?.viewId ?? 0;
    const carried = messages.filter((m) => survivors.includes(m.member));
    g.proposal = {
      viewId,
      fromViewId,
      members,
      survivors,
      flushed: [],
      messages: carried,
    };
    const event: ViewEvent = {
      type: "propose",
      group: name,
      viewId,
      fromViewId,
      members,
      survivors,
      joining: members.filter((m) => !has(current, m.member)).map((m) =>
        m.member
      ),
      leaving: current.filter((m) => !names.has(m.member)).map((m) => m.member),
      ...(carried.length > 0 ? { messages: carried } : {}),
    };
    this.#append(viewChannel(name), event as unknown as Json);
    return viewId;
  }

  #install(
    name: string,
    g: Group,
    viewId: number,
    members: ViewMember[],
    messages: readonly GbcastMessage[],
  ) {
    const old = g.installed?.members ?? [];
    g.installed = { viewId, members };
    g.proposal = null;
    const left = old.filter((m) => !has(members, m.member));
    const event: ViewEvent = {
      type: "view",
      group: name,
      viewId,
      members,
      joined: members.filter((m) => !has(old, m.member)).map((m) => m.member),
      left: left.map((m) => m.member),
      ...(messages.length > 0 ? { messages } : {}),
    };
    this.#append(viewChannel(name), event as unknown as Json);
    for (const m of left) this.#forgetIfGone(name, g, m.member, m.session);
    this.#proposePending(name, g, members);
  }

  /**
   * Proposes what waited for the installed view, in request order: the
   * leading gbcasts (of members still in `members`) as one proposal, or
   * else the membership changes up to the next gbcast.
   */
  #proposePending(name: string, g: Group, members: ViewMember[]): void {
    const messages: GbcastMessage[] = [];
    while (
      g.pending[0]?.kind === "gbcast" &&
      messages.length < MAX_GBCASTS_PER_VIEW
    ) {
      const { message } = g.pending.shift() as Change & { kind: "gbcast" };
      if (has(members, message.member)) messages.push(message);
    }
    if (messages.length > 0) {
      this.#propose(name, g, members, messages);
      return;
    }
    if (g.pending.length === 0) return;
    const end = g.pending.findIndex((c) => c.kind === "gbcast");
    const changes = g.pending.splice(0, end < 0 ? g.pending.length : end);
    const leaving = new Set<string>();
    const joining: ViewMember[] = [];
    for (const change of changes) {
      if (change.kind === "leave") leaving.add(change.member);
      else if (change.kind === "join") {
        joining.push({ member: change.member, session: change.session });
      }
    }
    this.#propose(
      name,
      g,
      members.filter((m) => !leaving.has(m.member)).concat(joining),
    );
  }

  /** `member`, owned by `session`, asks to join. */
  join(name: string, member: string, session: string): GroupResult {
    const g = this.#group(name);
    if (g.removed.has(member)) {
      return fail(
        "membership",
        `Member ${quote(member)} was removed from group ${
          quote(name)
        } and may not rejoin under that name`,
      );
    }
    if (this.#ownerOf(g, member) !== undefined) {
      return fail(
        "membership",
        `Member ${quote(member)} is already in, joining or leaving group ${
          quote(name)
        }`,
      );
    }
    this.#own(session, name, member);
    if (g.proposal !== null) {
      g.pending.push({ kind: "join", member, session });
      return { viewId: g.lastId + 1 };
    }
    return {
      viewId: this.#propose(
        name,
        g,
        this.#effective(g).concat({ member, session }),
      ),
    };
  }

  /** `member`, owned by `session`, asks to leave. */
  leave(name: string, member: string, session: string): GroupResult {
    const g = this.#groups.get(name);
    const owner = g === undefined ? undefined : this.#ownerOf(g, member);
    if (g === undefined || owner === undefined) {
      return fail(
        "membership",
        `Member ${quote(member)} is not in group ${quote(name)}`,
      );
    }
    if (owner !== session) {
      return fail(
        "membership",
        `Member ${quote(member)} of group ${quote(name)} belongs to session ${
          quote(owner)
        }; use "remove" to force it out`,
      );
    }
    const joinAt = this.#pendingIndex(g, "join", member);
    if (joinAt >= 0) {
      g.pending.splice(joinAt, 1);
      this.#disown(session, name, member);
      return { viewId: g.lastId };
    }
    if (
      !has(this.#effective(g), member) ||
      this.#pendingIndex(g, "leave", member) >= 0
    ) {
      return fail(
        "membership",
        `Member ${quote(member)} is already leaving group ${quote(name)}`,
      );
    }
    if (g.proposal !== null) {
      g.pending.push({ kind: "leave", member });
      return { viewId: g.lastId + 1 };
    }
    return {
      viewId: this.#propose(name, g, without(this.#effective(g), member)),
    };
  }

  /**
   * Forces `member` out (a failure): restarts the proposal in flight if it
   * includes the member. With `inView`, only while that view is the
   * installed one (a stale suspicion is refused).
   */
  remove(name: string, member: string, inView?: number): GroupResult {
    const g = this.#groups.get(name);
    const owner = g === undefined ? undefined : this.#ownerOf(g, member);
    if (g === undefined || owner === undefined || g.removed.has(member)) {
      return fail(
        "membership",
        g?.removed.has(member)
          ? `Member ${quote(member)} was already removed from group ${
            quote(name)
          }`
          : `Member ${quote(member)} is not in group ${quote(name)}`,
      );
    }
    const installed = g.installed?.viewId ?? 0;
    if (inView !== undefined && inView !== installed) {
      return fail(
        "membership",
        `Cannot remove ${quote(member)} from group ${
          quote(name)
        }: the suspicion was raised in view ${inView}, and view ${installed} is installed`,
      );
    }
    g.removed.add(member);
    const joinAt = this.#pendingIndex(g, "join", member);
    if (joinAt >= 0) {
      g.pending.splice(joinAt, 1);
      this.#disown(owner, name, member);
      return { viewId: g.lastId };
    }
    const leaveAt = this.#pendingIndex(g, "leave", member);
    if (leaveAt >= 0) g.pending.splice(leaveAt, 1);
    g.pending = g.pending.filter((c) =>
      c.kind !== "gbcast" || c.message.member !== member
    );
    const effective = this.#effective(g);
    if (!has(effective, member)) {
      // Already leaving in the proposal in flight.
      return { viewId: g.lastId };
    }
    const viewId = this.#propose(
      name,
      g,
      without(effective, member),
      g.proposal?.messages,
    );
    this.#forgetIfGone(name, g, member, owner);
    return { viewId };
  }

  /** `member`, owned by `session`, finished flushing for proposal `viewId`. */
  flushed(
    name: string,
    viewId: number,
    member: string,
    session: string,
  ): { error: OracleErrorResult } | undefined {
    const g = this.#groups.get(name);
    const p = g?.proposal ?? null;
    if (g === undefined || p === null || p.viewId !== viewId) {
      return fail(
        "membership",
        `Group ${quote(name)} has no proposal ${viewId} in flight${
          p === null ? "" : ` (proposal ${p.viewId} is)`
        }`,
      );
    }
    if (!p.survivors.includes(member)) {
      return fail(
        "membership",
        `Member ${
          quote(member)
        } is not a survivor of proposal ${viewId} of group ${quote(name)}`,
      );
    }
    const notOwned = this.#notOwned(name, g, member, session);
    if (notOwned !== undefined) return notOwned;
    if (!p.flushed.includes(member)) p.flushed.push(member);
    if (p.flushed.length === p.survivors.length) {
      this.#install(name, g, p.viewId, p.members, p.messages);
    }
    return undefined;
  }

  /**
   * `member`, owned by `session`, multicasts `data` (base64) in gbcast
   * order: proposed at once with the same members, or queued behind the
   * proposal in flight. A `seq` at or below the member's last is a retry:
   * taken once.
   */
  gbcast(
    name: string,
    member: string,
    session: string,
    seq: number,
    data: string,
  ): GroupResult {
    const g = this.#groups.get(name);
    const installed = g?.installed?.members ?? [];
    if (g === undefined || !has(installed, member)) {
      return fail(
        "membership",
        `Member ${quote(member)} is not in the installed view of group ${
          quote(name)
        }: only its members may gbcast`,
      );
    }
    const notOwned = this.#notOwned(name, g, member, session);
    if (notOwned !== undefined) return notOwned;
    if (seq <= (g.gbcastSeq.get(member) ?? 0)) return { viewId: g.lastId };
    g.gbcastSeq.set(member, seq);
    const message: GbcastMessage = { member, seq, data };
    if (g.proposal !== null) {
      g.pending.push({ kind: "gbcast", message });
      return { viewId: g.lastId + 1 };
    }
    return {
      viewId: this.#propose(name, g, this.#effective(g), [message]),
    };
  }

  /** Forces every member a session owns out of every group, in (group, member) order. */
  endSession(session: string): void {
    const groups = this.#owned.get(session);
    if (groups === undefined) return;
    for (const name of [...groups.keys()].sort()) {
      for (const member of [...groups.get(name)!].sort()) {
        const g = this.#groups.get(name)!;
        if (!g.removed.has(member)) this.remove(name, member);
      }
    }
    this.#owned.delete(session);
  }

  /** A group's installed view and proposal in flight. */
  get(name: string): {
    view: GroupView | null;
    proposal:
      | {
        viewId: number;
        members: ViewMember[];
        survivors: string[];
        flushed: string[];
      }
      | null;
  } {
    const g = this.#groups.get(name);
    const view = g?.installed == null ? null : {
      group: name,
      viewId: g.installed.viewId,
      members: g.installed.members,
    };
    const p = g?.proposal ?? null;
    return {
      view,
      proposal: p === null ? null : {
        viewId: p.viewId,
        members: p.members,
        survivors: p.survivors,
        flushed: [...p.flushed],
      },
    };
  }

  /** The names of every group ever joined, in insertion order (for `list`). */
  names(): IterableIterator<string> {
    return this.#groups.keys();
  }

  /**
   * The first group record (kept forever once a group was joined) whose
   * name passes `test`. A scan of every group: only a delegation
   * asks.
   */
  findPath(test: (name: string) => boolean): string | undefined {
    for (const name of this.#groups.keys()) if (test(name)) return name;
    return undefined;
  }

  toSnapshot(): GroupSnapshot[] {
    const out: GroupSnapshot[] = [];
    for (const [name, g] of this.#groups) {
      const p = g.proposal;
      out.push([
        name,
        g.lastId,
        g.installed === null
          ? null
          : [g.installed.viewId, toPairs(g.installed.members)],
        p === null ? null : [
          p.viewId,
          p.fromViewId,
          toPairs(p.members),
          p.survivors,
          p.flushed,
          p.messages.map((m) => [m.member, m.seq, m.data]),
        ],
        g.pending.map((c): PendingSnapshot =>
          c.kind === "join"
            ? [c.member, "join", c.session]
            : c.kind === "leave"
            ? [c.member, "leave"]
            : [c.message.member, "gbcast", c.message.seq, c.message.data]
        ),
        [...g.removed],
        [...g.gbcastSeq],
      ]);
    }
    return out;
  }

  static fromSnapshot(
    append: (path: string, data: Json) => void,
    snapshot: GroupSnapshot[],
  ): GroupTable {
    const table = new GroupTable(append);
    for (
      const [name, lastId, installed, proposal, pending, removed, gbcastSeq]
        of snapshot
    ) {
      const g: Group = {
        lastId,
        installed: installed === null
          ? null
          : { viewId: installed[0], members: fromPairs(installed[1]) },
        proposal: proposal === null ? null : {
          viewId: proposal[0],
          fromViewId: proposal[1],
          members: fromPairs(proposal[2]),
          survivors: [...proposal[3]],
          flushed: [...proposal[4]],
          messages: (proposal[5] ?? []).map(([member, seq, data]) => ({
            member,
            seq,
            data,
          })),
        },
        pending: pending.map((c): Change =>
          c[1] === "join"
            ? { kind: "join", member: c[0], session: c[2] }
            : c[1] === "leave"
            ? { kind: "leave", member: c[0] }
            : {
              kind: "gbcast",
              message: { member: c[0], seq: c[2], data: c[3] },
            }
        ),
        removed: new Set(removed),
        gbcastSeq: new Map(gbcastSeq ?? []),
      };
      table.#groups.set(name, g);
      for (const m of g.installed?.members ?? []) {
        table.#own(m.session, name, m.member);
      }
      for (const m of g.proposal?.members ?? []) {
        table.#own(m.session, name, m.member);
      }
      for (const c of g.pending) {
        if (c.kind === "join") table.#own(c.session, name, c.member);
      }
    }
    return table;
  }
}
