/**
 * A scripted fake Oracle replica set for client tests: one shared state
 * ({@linkcode FakeOracle}, as if perfectly replicated) and one
 * {@linkcode FakeReplica} per replica id, speaking the client wire protocol
 * over any transport. Each replica can be made a follower (answering
 * `not_leader` with or without a hint), silent, hold its replies, drop
 * frames, or re-send overlapping events when a subscription resumes.
 *
 * A fake Oracle is also one group of a tree: it serves the paths it
 * owns (`owns`, `/` by default) minus those it delegated, answers the
 * others `moved` (with the delegation) or `not_owner`, refuses nothing it
 * did not apply, ends subscriptions whose path it stops owning, and, given
 * a `home` (the root), ends the sessions the root no longer has.
 *
 * @module
 */

import {
  type ChannelEvent,
  type Delegation,
  type Json,
  type OracleErrorResult,
  ownerPath,
  TREE_CHANNEL,
} from "../../oracle/commands.ts";
import { isReserved, isUnder } from "../../oracle/path.ts";
import { opPath } from "../../oracle/_op_path.ts";
import type {
  ClientFrame,
  ReplicaToClientFrame,
  RequestFrame,
} from "../../oracle/wire.ts";
import type { PeerId, Transport } from "../../transport/transport.ts";

interface Lock {
  holder: string;
  token: number;
  waiters: { s: string; r: number }[];
}

type Reply = { ok: Json } | { err: OracleErrorResult };

/** The replicated state every fake replica shares. */
export class FakeOracle {
  /** Open sessions. */
  readonly sessions = new Set<string>();
  /** Sessions that expired or closed: never accepted again. */
  readonly ended = new Set<string>();
  /** Replies by `session/request`, for dedupe. */
  readonly replies = new Map<string, Reply>();
  /** How many times each `session/request` write was applied (should be 1). */
  readonly applied = new Map<string, number>();
  /** Every event, in revision order. */
  readonly events: ChannelEvent[] = [];
  readonly #channels = new Map<string, ChannelEvent[]>();
  readonly #first = new Map<string, number>();
  readonly #locks = new Map<string, Lock>();
  #token = 0;
  /** Waiting lock requests: `session/request` -> client peer to answer. */
  readonly #waiting = new Map<string, PeerId>();
  /** The current instance of each replica id. */
  readonly replicas = new Map<string, FakeReplica>();
  /** The prefixes this group owns (`/` for a root; add with {@linkcode FakeOracle.adopt}). */
  readonly owns: string[] = ["/"];
  /** The delegations this group made, by prefix (sent as they are in `moved` answers). */
  readonly delegations = new Map<string, Delegation>();
  /** The root of the tree, for a child group: sessions it does not have end here too. */
  home: FakeOracle | undefined = undefined;

  /** A child group of a tree: owns nothing until it adopts; `home` is the root. */
  static child(home: FakeOracle): FakeOracle {
    const oracle = new FakeOracle();
    oracle.owns.length = 0;
    oracle.home = home;
    return oracle;
  }

  /**
   * Why this group refuses an operation on `path`: `moved` if it
   * delegated it, `not_owner` if it does not own it; `undefined` if it
   * serves it (also every `/_sys` path but view channels).
   */
  refusal(path: string): OracleErrorResult | undefined {
    const owner = ownerPath(path);
    if (owner === path && isReserved(path)) return undefined;
    for (const [prefix, delegation] of this.delegations) {
      if (isUnder(prefix, owner)) {
        return {
          code: "moved",
          message: `${path} was delegated to group ${delegation.group}`,
          delegation,
        };
      }
    }
    if (!this.owns.some((prefix) => isUnder(prefix, owner))) {
      return { code: "not_owner", message: `This group does not own ${path}` };
    }
    return undefined;
  }

  /** Records a delegation (as `delegate` does) and ends the subscriptions it moves. */
  delegate(delegation: Delegation): void {
    this.delegations.set(delegation.prefix, delegation);
    for (const replica of this.replicas.values()) replica.dropRefused();
  }

  /** Takes over a prefix its parent delegated. */
  adopt(prefix: string): void {
    this.owns.push(prefix);
  }

  /** The events of one channel still retained. */
  channel(path: string): ChannelEvent[] {
    const all = this.#channels.get(path) ?? [];
    const first = this.#first.get(path) ?? 1;
    return all.filter((e) => e.seq >= first);
  }

  /** First retained sequence number of a channel. */
  first(path: string): number {
    return this.#first.get(path) ?? 1;
  }

  /** Expires a session (as if its keep-alive stopped). */
  expire(session: string): void {
    this.sessions.delete(session);
    this.ended.add(session);
    for (const [path, lock] of this.#locks) {
      lock.waiters = lock.waiters.filter((w) => w.s !== session);
      if (lock.holder === session) this.#handOver(path, lock);
    }
  }

  /** Appends an event directly (as another client would). */
  append(path: string, data: Json): ChannelEvent {
    const list = this.#channels.get(path) ?? [];
    this.#channels.set(path, list);
    const event: ChannelEvent = {
      path,
      seq: list.length + 1,
      rev: this.events.length + 1,
      data,
    };
    list.push(event);
    this.events.push(event);
    for (const replica of this.replicas.values()) replica.pushEvents();
    return event;
  }

  /** Runs one write and returns its reply, or `undefined` for a waiting lock. */
  apply(client: PeerId, frame: RequestFrame): Reply | undefined {
    const key = `${frame.s}/${frame.r}`;
    const cached = this.replies.get(key);
    if (cached !== undefined) return cached;
    if (this.#waiting.has(key)) {
      this.#waiting.set(key, client);
      return undefined;
    }
    if (this.home !== undefined && !this.home.sessions.has(frame.s)) {
      this.expire(frame.s);
    }
    const op = frame.op;
    if (op.op === "open_session") {
      if (this.ended.has(frame.s)) return expired(frame.s);
      this.sessions.add(frame.s);
      return this.#record(key, { ok: { session: frame.s, ttlMs: op.ttlMs } });
    }
    if (!this.sessions.has(frame.s)) return expired(frame.s);
    if (op.op === "keepalive") return { ok: null };
    const path = pathOf(op);
    const refusal = path === undefined ? undefined : this.refusal(path);
    if (refusal !== undefined) return { err: refusal };
    if (
      op.op === "read" || op.op === "get_lock" || op.op === "get_view" ||
      op.op === "get_tree" || op.op === "ended_sessions"
    ) {
      return this.#read(op);
    }
    this.applied.set(key, (this.applied.get(key) ?? 0) + 1);
    switch (op.op) {
      case "append": {
        const event = this.append(op.path, op.data);
        return this.#record(key, { ok: { seq: event.seq, rev: event.rev } });
      }
      case "truncate": {
        const first = Math.max(this.first(op.path), op.before);
        this.#first.set(op.path, first);
        return this.#record(key, { ok: { first } });
      }
      case "lock": {
        const lock = this.#locks.get(op.path);
        if (lock === undefined) {
          this.#locks.set(op.path, {
            holder: frame.s,
            token: ++this.#token,
            waiters: [],
          });
          return this.#record(key, { ok: { token: this.#token } });
        }
        if (!op.wait) {
          return this.#record(key, { ok: { token: 0, holder: lock.holder } });
        }
        lock.waiters.push({ s: frame.s, r: frame.r });
        this.#waiting.set(key, client);
        return undefined;
      }
      case "unlock": {
        const lock = this.#locks.get(op.path);
        if (lock === undefined || lock.holder !== frame.s) {
          return this.#record(key, {
            err: {
              code: "not_holder",
              message: `not the holder of ${op.path}`,
            },
          });
        }
        this.#handOver(op.path, lock);
        return this.#record(key, { ok: null });
      }
      case "close_session":
        this.expire(frame.s);
        return { ok: null };
      case "join":
      case "leave":
      case "remove":
        return this.#record(key, { ok: { viewId: 1 } });
      case "flushed":
        return this.#record(key, { ok: null });
      case "delegate": {
        const overlap = [...this.delegations.keys()].find((prefix) =>
          isUnder(prefix, op.prefix) || isUnder(op.prefix, prefix)
        );
        const used = this.events.some((e) => isUnder(op.prefix, e.path));
        if (overlap !== undefined || used || op.prefix === "/") {
          return this.#record(key, {
            err: {
              code: "delegation",
              message: `Cannot delegate ${op.prefix}: ${
                overlap !== undefined ? `overlaps ${overlap}` : "state under it"
              }`,
            },
          });
        }
        const delegation = {
          prefix: op.prefix,
          group: op.group,
          replicas: op.replicas,
        };
        this.append(TREE_CHANNEL, { type: "delegate", ...delegation });
        this.delegate(delegation);
        return this.#record(key, { ok: null });
      }
    }
  }

  #read(op: RequestFrame["op"]): Reply {
    if (op.op === "read") {
      const first = this.first(op.path);
      if (op.from < first) {
        return {
          err: { code: "compacted", message: "compacted", first },
        };
      }
      const events = this.channel(op.path).filter((e) => e.seq >= op.from)
        .slice(0, op.limit);
      const next = events.length > 0
        ? events[events.length - 1].seq + 1
        : op.from;
      return { ok: { events: events as unknown as Json, first, next } };
    }
    if (op.op === "get_tree") {
      const delegations = [...this.delegations.values()].sort((a, b) =>
        a.prefix < b.prefix ? -1 : 1
      );
      return {
        ok: {
          owns: [...this.owns].sort(),
          delegations,
          tokens: 0,
        } as unknown as Json,
      };
    }
    if (op.op === "ended_sessions") {
      return {
        ok: { ended: op.sessions.filter((s) => !this.sessions.has(s)) },
      };
    }
    if (op.op === "get_lock") {
      const lock = this.#locks.get(op.path);
      return {
        ok: lock === undefined ? { holder: null, token: 0, waiters: 0 } : {
          holder: lock.holder,
          token: lock.token,
          waiters: lock.waiters.length,
        },
      };
    }
    return { ok: { view: null, proposal: null } };
  }

  #record(key: string, reply: Reply): Reply {
    this.replies.set(key, reply);
    return reply;
  }

  #handOver(path: string, lock: Lock): void {
    const next = lock.waiters.shift();
    if (next === undefined) {
      this.#locks.delete(path);
      return;
    }
    lock.holder = next.s;
    lock.token = ++this.#token;
    const key = `${next.s}/${next.r}`;
    const client = this.#waiting.get(key)!;
    this.#waiting.delete(key);
    const reply = this.#record(key, { ok: { token: lock.token } });
    // The grant is pushed by a live leader.
    for (const replica of this.replicas.values()) {
      if (replica.leader && !replica.silent) {
        replica.sendTo(client, { t: "res", r: next.r, ...reply });
        return;
      }
    }
  }
}

/** The path an operation acts on; for `delegate`, its prefix. */
function pathOf(op: RequestFrame["op"]): string | undefined {
  if (op.op === "delegate") return op.prefix;
  return op.op === "keepalive" ? undefined : opPath(op);
}

function expired(session: string): Reply {
  return {
    err: {
      code: "session_expired",
      message: `Session ${session} does not exist or has expired`,
    },
  };
}

/** Options of a {@linkcode FakeReplica}. */
export interface FakeReplicaOptions {
  /** Whether it leads (serves requests and subscriptions). Default `false`. */
  leader?: boolean;
  /** The leader named in `not_leader` answers. Default none. */
  hint?: string | undefined;
  /** Re-send this many already-acknowledged positions when a subscription resumes. Default 0. */
  overlap?: number;
}

interface FakeSub {
  client: PeerId;
  id: number;
  path: string;
  prefix: boolean;
  next: number;
  acked: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One fake replica: answers the client protocol from the shared {@linkcode FakeOracle}. */
export class FakeReplica {
  readonly id: string;
  readonly #transport: Transport;
  readonly #oracle: FakeOracle;
  leader: boolean;
  hint: string | undefined;
  overlap: number;
  /** Receives and records frames but never answers or pushes. */
  silent = false;
  /** Frames for which this returns true are dropped on arrival. */
  dropIf: ((frame: ClientFrame) => boolean) | undefined = undefined;
  /** Every client frame received (after `dropIf`), in order. */
  readonly received: ClientFrame[] = [];
  /** Subscriptions by `client/id`. */
  readonly subs = new Map<string, FakeSub>();
  /** Replies held back while `holding`. */
  holding = false;
  readonly #held: { to: PeerId; frame: ReplicaToClientFrame }[] = [];

  constructor(
    id: string,
    transport: Transport,
    oracle: FakeOracle,
    options: FakeReplicaOptions = {},
  ) {
    this.id = id;
    this.#transport = transport;
    this.#oracle = oracle;
    this.leader = options.leader ?? false;
    this.hint = options.hint;
    this.overlap = options.overlap ?? 0;
    oracle.replicas.set(id, this);
    transport.setHandler({
      onFrame: (from, payload) => this.#onFrame(from, payload),
      onPeerDown: (peer) => {
        for (const [key, sub] of this.subs) {
          if (sub.client === peer) this.subs.delete(key);
        }
      },
    });
  }

  /** Request frames received (in order). */
  requests(): RequestFrame[] {
    return this.received.filter((f): f is RequestFrame => f.t === "req");
  }

  /** Sends a frame to a client (or to anyone: raw bytes with {@linkcode FakeReplica.sendRaw}). */
  sendTo(to: PeerId, frame: ReplicaToClientFrame): void {
    if (this.holding) {
      this.#held.push({ to, frame });
      return;
    }
    this.sendRaw(to, encoder.encode(JSON.stringify(frame)));
  }

  /** Sends raw bytes (garbage tests). */
  sendRaw(to: PeerId, payload: Uint8Array): void {
    try {
      this.#transport.send(to, payload);
    } catch {
      // The client may be gone.
    }
  }

  /** Sends the replies held back and stops holding. */
  release(): void {
    this.holding = false;
    for (const { to, frame } of this.#held.splice(0)) this.sendTo(to, frame);
  }

  /** Ends, with the refusal, every subscription whose path the group no longer serves. */
  dropRefused(): void {
    if (!this.leader) return;
    for (const [key, sub] of this.subs) {
      const refusal = this.#oracle.refusal(sub.path);
      if (refusal === undefined) continue;
      this.subs.delete(key);
      this.sendTo(sub.client, { t: "subend", id: sub.id, err: refusal });
    }
  }

  /** Pushes new events to every subscription (the oracle calls it after an append). */
  pushEvents(): void {
    if (this.silent || !this.leader) return;
    for (const sub of this.subs.values()) this.#push(sub);
  }

  #push(sub: FakeSub): void {
    const oracle = this.#oracle;
    const events = sub.prefix
      ? oracle.events.filter((e) =>
        e.rev >= sub.next && e.path.startsWith(sub.path)
      )
      : oracle.channel(sub.path).filter((e) => e.seq >= sub.next);
    for (let i = 0; i < events.length; i += 64) {
      const batch = events.slice(i, i + 64);
      this.sendTo(sub.client, { t: "ev", id: sub.id, events: batch });
    }
    if (events.length > 0) {
      const last = events[events.length - 1];
      sub.next = (sub.prefix ? last.rev : last.seq) + 1;
    }
  }

  #onFrame(from: PeerId, payload: Uint8Array): void {
    let frame: ClientFrame;
    try {
      frame = JSON.parse(decoder.decode(payload));
    } catch {
      return;
    }
    if (this.dropIf?.(frame)) return;
    this.received.push(frame);
    if (this.silent) return;
    switch (frame.t) {
      case "req": {
        if (!this.leader) {
          this.sendTo(from, { t: "res", r: frame.r, err: this.#notLeader() });
          return;
        }
        const reply = this.#oracle.apply(from, frame);
        if (reply !== undefined) {
          this.sendTo(from, { t: "res", r: frame.r, ...reply });
        }
        return;
      }
      case "sub": {
        if (!this.leader) {
          this.sendTo(from, {
            t: "subend",
            id: frame.id,
            err: this.#notLeader(),
          });
          return;
        }
        const refusal = this.#oracle.refusal(frame.path);
        if (refusal !== undefined) {
          this.sendTo(from, { t: "subend", id: frame.id, err: refusal });
          return;
        }
        const first = this.#oracle.first(frame.path);
        if (!frame.prefix && frame.from < first) {
          this.sendTo(from, {
            t: "subend",
            id: frame.id,
            err: { code: "compacted", message: "compacted", first },
          });
          return;
        }
        const sub: FakeSub = {
          client: from,
          id: frame.id,
          path: frame.path,
          prefix: frame.prefix,
          next: Math.max(1, frame.from - this.overlap),
          acked: frame.from - 1,
        };
        this.subs.set(`${from}/${frame.id}`, sub);
        this.#push(sub);
        return;
      }
      case "suback": {
        const sub = this.subs.get(`${from}/${frame.id}`);
        if (sub !== undefined) sub.acked = Math.max(sub.acked, frame.upTo);
        return;
      }
      case "unsub":
        this.subs.delete(`${from}/${frame.id}`);
        return;
    }
  }

  #notLeader(): OracleErrorResult {
    return this.hint === undefined
      ? { code: "not_leader", message: `${this.id} is not the leader` }
      : {
        code: "not_leader",
        message: `${this.id} is not the leader; ${this.hint} is`,
        leader: this.hint,
      };
  }
}
