/**
 * The Oracle state machine's event channels: per-path sequence numbers, the
 * global revision, retention and truncation, reads by channel and by prefix.
 *
 * Every channel that ever had an event keeps a small record (its next
 * sequence number and the revision of the last event it dropped) even when
 * it retains no event, so sequence numbers never restart.
 *
 * @module
 */

import type { ChannelEvent, Json } from "./commands.ts";
import { isUnder } from "./path.ts";

/** One channel: its retained events (a queue with a moving head) and counters. */
class Channel {
  /** Retained events from index `head`; older slots are garbage. */
  events: ChannelEvent[] = [];
  head = 0;
  /** The sequence number the next event gets. */
  next = 1;
  /** The revision of the last dropped event, 0 when none was dropped. */
  droppedRev = 0;

  get size(): number {
    return this.events.length - this.head;
  }

  /** The first retained sequence number (`next` when none is retained). */
  get first(): number {
    return this.next - this.size;
  }

  /** Drops the `count` oldest retained events. */
  drop(count: number): void {
    if (count <= 0) return;
    this.droppedRev = this.events[this.head + count - 1].rev;
    this.head += count;
    if (this.head === this.events.length) {
      this.events = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.events.length) {
      this.events = this.events.slice(this.head);
      this.head = 0;
    }
  }

  /** Index in `events` of the first retained event with revision >= `rev`. */
  indexOfRev(rev: number): number {
    let lo = this.head;
    let hi = this.events.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.events[mid].rev < rev) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** A channel as a snapshot stores it: path, next seq, dropped rev, [rev, data] of retained events. */
export type ChannelSnapshot = [string, number, number, [number, Json][]];

/** A channel read: retained events from a sequence number, or the first available. */
export type ChannelRead =
  | { events: ChannelEvent[]; first: number; next: number }
  | { compacted: number };

/** A prefix read: events merged by revision, or the first available revision. */
export type PrefixRead =
  | { events: ChannelEvent[]; next: number }
  | { compacted: number };

/** Deep-freezes a JSON value (plain arrays and objects only); returns it. */
export function freezeJson(value: Json): Json {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    for (const item of Object.values(value)) freezeJson(item);
    Object.freeze(value);
  }
  return value;
}

/** UTF-8 length of a string, without allocating. */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        bytes += 4;
        i++;
      } else bytes += 3;
    } else bytes += 3;
  }
  return bytes;
}

/**
 * Serializes event data, checks its size and returns a frozen private copy,
 * or the reason it is refused.
 */
export function copyEventData(
  data: unknown,
  maxBytes: number,
): { data: Json } | { tooLarge: string } | { invalid: string } {
  let text: string | undefined;
  try {
    text = JSON.stringify(data);
  } catch (error) {
    return {
      invalid: `Event data is not JSON: ${
        error instanceof Error ? error.message : String(error)
      }`,
    };
  }
  if (text === undefined) {
    return { invalid: "Event data is missing or not JSON" };
  }
  const bytes = utf8Length(text);
  if (bytes > maxBytes) {
    return {
      tooLarge:
        `Event data is ${bytes} bytes of JSON, at most ${maxBytes} allowed`,
    };
  }
  return { data: freezeJson(JSON.parse(text)) };
}

/** Every channel of the Oracle and the global revision counter. */
export class ChannelStore {
  #channels = new Map<string, Channel>();
  #rev = 0;
  #retain: number;

  constructor(retain: number) {
    this.#retain = retain;
  }

  /** The revision of the last appended event (0 before the first). */
  get rev(): number {
    return this.#rev;
  }

  /** Appends an event (data already checked and copied) and applies retention. */
  append(path: string, data: Json): ChannelEvent {
    let channel = this.#channels.get(path);
    if (channel === undefined) {
      channel = new Channel();
      this.#channels.set(path, channel);
    }
    const event: ChannelEvent = Object.freeze({
      path,
      seq: channel.next++,
      rev: ++this.#rev,
      data,
    });
    channel.events.push(event);
    if (channel.size > this.#retain) channel.drop(channel.size - this.#retain);
    return event;
  }

  /**
   * Drops events with a sequence number below `before` (never beyond the
   * last event); returns the first retained sequence number afterwards.
   */
  truncate(path: string, before: number): number {
    const channel = this.#channels.get(path);
    if (channel === undefined) return 1;
    const upTo = Math.min(before, channel.next);
    channel.drop(upTo - channel.first);
    return channel.first;
  }

  /** Reads at most `limit` events of one channel from sequence number `seq`. */
  from(path: string, seq: number, limit: number): ChannelRead {
    const channel = this.#channels.get(path);
    if (channel === undefined) {
      return seq < 1 ? { compacted: 1 } : { events: [], first: 1, next: seq };
    }
    const first = channel.first;
    if (seq < first) return { compacted: first };
    const start = channel.head + (seq - first);
    const events = channel.events.slice(
      start,
      Math.min(start + Math.max(0, limit), channel.events.length),
    );
    const next = events.length > 0 ? events[events.length - 1].seq + 1 : seq;
    return { events, first, next };
  }

  /**
   * Reads at most `limit` events of every channel under `prefix` from
   * revision `rev`, merged by revision. When some channel under the prefix
   * dropped an event at or after `rev`, reports the first revision from
   * which the merged stream is complete.
   */
  under(prefix: string, rev: number, limit: number): PrefixRead {
    const lists: ChannelEvent[][] = [];
    let dropped = 0;
    let more = false;
    for (const [path, channel] of this.#channels) {
      if (!isUnder(prefix, path)) continue;
      if (channel.droppedRev > dropped) dropped = channel.droppedRev;
      if (dropped >= rev) continue;
      const start = channel.indexOfRev(rev);
      const end = Math.min(start + limit, channel.events.length);
      if (end < channel.events.length) more = true;
      if (end > start) lists.push(channel.events.slice(start, end));
    }
    if (dropped >= rev || rev < 1) {
      return { compacted: Math.max(dropped + 1, 1) };
    }
    const merged = lists.length === 1 ? lists[0] : lists.flat();
    if (lists.length > 1) merged.sort((a, b) => a.rev - b.rev);
    if (!more && merged.length <= limit) {
      return { events: merged, next: Math.max(rev, this.#rev + 1) };
    }
    const events = merged.slice(0, Math.max(0, limit));
    const next = events.length > 0 ? events[events.length - 1].rev + 1 : rev;
    return { events, next };
  }

  /** The paths of every channel that ever had an event, in insertion order (for `list`). */
  paths(): IterableIterator<string> {
    return this.#channels.keys();
  }

  /**
   * A channel's first retained sequence number and the last one appended
   * (`first` is `last + 1` when it retains nothing); `undefined` for a
   * channel that never had an event.
   */
  bounds(path: string): { first: number; last: number } | undefined {
    const channel = this.#channels.get(path);
    return channel === undefined
      ? undefined
      : { first: channel.first, last: channel.next - 1 };
  }

  /**
   * The first channel that ever had an event whose path passes `test`. A scan of every channel: only a delegation asks.
   */
  findPath(test: (path: string) => boolean): string | undefined {
    for (const path of this.#channels.keys()) if (test(path)) return path;
    return undefined;
  }

  /** The channels in insertion order, as a snapshot stores them. */
  toSnapshot(): { rev: number; channels: ChannelSnapshot[] } {
    const channels: ChannelSnapshot[] = [];
    for (const [path, channel] of this.#channels) {
      const events: [number, Json][] = [];
      for (let i = channel.head; i < channel.events.length; i++) {
        const event = channel.events[i];
        events.push([event.rev, event.data]);
      }
      channels.push([path, channel.next, channel.droppedRev, events]);
    }
    return { rev: this.#rev, channels };
  }

  /** Rebuilds a store from {@linkcode ChannelStore.toSnapshot}'s output. */
  static fromSnapshot(
    retain: number,
    snapshot: { rev: number; channels: ChannelSnapshot[] },
  ): ChannelStore {
    const store = new ChannelStore(retain);
    store.#rev = snapshot.rev;
    for (const [path, next, droppedRev, events] of snapshot.channels) {
      const channel = new Channel();
      channel.next = next;
      channel.droppedRev = droppedRev;
      const first = next - events.length;
      for (let i = 0; i < events.length; i++) {
        const [rev, data] = events[i];
        channel.events.push(
          Object.freeze({ path, seq: first + i, rev, data: freezeJson(data) }),
        );
      }
      store.#channels.set(path, channel);
    }
    return store;
  }
}
