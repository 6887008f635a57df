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
 * @module
 */

import type {
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
}

type Change =
  | { kind: "join"; member: string; session: string }
  | { kind: "leave"; member: string };

interface Group {
  /** The highest view id used, by an installed view or a proposal. */
  lastId: number;
  installed: { viewId: number; members: ViewMember[] } | null;
  proposal: Proposal | null;
  pending: Change[];
  /** Names removed by force: they may never rejoin. */
  removed: Set<string>;
}

/** A group as a snapshot stores it. */
export type GroupSnapshot = [
  name: string,
  lastId: number,
  installed: [number, [string, string][]] | null,
  proposal: [number, number, [string, string][], string[], string[]] | null,
  pending: ([string, "join", string] | [string, "leave"])[],
  removed: string[],
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

  /** The members after the proposal in flight, or the installed ones. */
  #effective(g: Group): ViewMember[] {
    return g.proposal?.members ?? g.installed?.members ?? [];
  }

  #pendingIndex(g: Group, kind: Change["kind"], member: string): number {
    return g.pending.findIndex((c) => c.kind === kind && c.member === member);
  }

  /** Forgets a member's owner once the group no longer knows the member. */
  #forgetIfGone(name: string, g: Group, member: string, session: string) {
    if (this.#ownerOf(g, member) === undefined) {
      this.#disown(session, name, member);
    }
  }

  #propose(name: string, g: Group, members: ViewMember[]): number {
    const viewId = ++g.lastId;
    const current = g.installed?.members ?? [];
    const names = new Set(members.map((m) => m.member));
    const survivors = current.filter((m) => names.has(m.member)).map((m) =>
      m.member
    );
    g.proposal = null;
    if (survivors.length === 0) {
      this.#install(name, g, viewId, members);
      return viewId;
    }
    const fromViewId = g.installed?.viewId ?? 0;
    g.proposal = { viewId, fromViewId, members, survivors, flushed: [] };
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
    };
    this.#append(viewChannel(name), event as unknown as Json);
    return viewId;
  }

  #install(name: string, g: Group, viewId: number, members: ViewMember[]) {
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
    };
    this.#append(viewChannel(name), event as unknown as Json);
    for (const m of left) this.#forgetIfGone(name, g, m.member, m.session);
    if (g.pending.length > 0) {
      const leaving = new Set<string>();
      const joining: ViewMember[] = [];
      for (const change of g.pending) {
        if (change.kind === "leave") leaving.add(change.member);
        else joining.push({ member: change.member, session: change.session });
      }
      g.pending = [];
      this.#propose(
        name,
        g,
        members.filter((m) => !leaving.has(m.member)).concat(joining),
      );
    }
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
    const effective = this.#effective(g);
    if (!has(effective, member)) {
      // Already leaving in the proposal in flight.
      return { viewId: g.lastId };
    }
    const viewId = this.#propose(name, g, without(effective, member));
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
    const owner = this.#ownerOf(g, member);
    if (owner !== session) {
      return fail(
        "membership",
        `Member ${quote(member)} of group ${quote(name)} belongs to session ${
          quote(owner ?? "")
        }`,
      );
    }
    if (!p.flushed.includes(member)) p.flushed.push(member);
    if (p.flushed.length === p.survivors.length) {
      this.#install(name, g, p.viewId, p.members);
    }
    return undefined;
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
        ],
        g.pending.map((c) =>
          c.kind === "join"
            ? [c.member, "join", c.session]
            : [c.member, "leave"]
        ),
        [...g.removed],
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
      const [name, lastId, installed, proposal, pending, removed] of snapshot
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
        },
        pending: pending.map((c) =>
          c[1] === "join"
            ? { kind: "join", member: c[0], session: c[2] }
            : { kind: "leave", member: c[0] }
        ),
        removed: new Set(removed),
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
