/**
 * One member process of `deno task bench groups`. It joins the group over
 * TCP; once its view has `--members` members, it multicasts `--size`-byte
 * messages as fast as the send window allows for `--seconds` (if it is a
 * sender), and counts what it delivers until then. It checks the order
 * as it goes: every sender's messages arrive in sequence (FIFO, all
 * strategies), and it folds the sequence of deliveries into a hash,
 * recorded every 1,024 deliveries (every 16 for gbcast; the recorded
 * hashes agree between members for abcast and gbcast). With
 * `--state-mib`, its state is that many MiB (for state transfer). It
 * prints a `view` line (with the wall clock) per view, a `restored` line
 * when a checkpoint arrived, and a `result` line at the end, then exits.
 * With `--pingpong=I`, the member at index I of the view (index 0 is the
 * abcast sequencer) multicasts a 16-byte ping at a time and every other
 * member answers it point to point; it times each round until every
 * answer is in (its `result` line then carries the latency percentiles);
 * the next round starts `--gap-ms` later (default 1), or at once with 0.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { GroupDriver } from "../groups/driver.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    label: { type: "string" },
    listen: { type: "string" },
    oracle: { type: "string" },
    group: { type: "string", default: "/bench/g" },
    strategy: { type: "string", default: "fbcast" },
    members: { type: "string", default: "3" },
    sender: { type: "boolean", default: false },
    size: { type: "string", default: "1000" },
    seconds: { type: "string", default: "3" },
    "state-mib": { type: "string", default: "0" },
    pingpong: { type: "string" },
    "gap-ms": { type: "string", default: "1" },
  },
});

const members = Number(values.members);
const gapMs = Number(values["gap-ms"]);
const size = Number(values.size);
const seconds = Number(values.seconds);
const label = values.label!;

/** Per sender label: the last number delivered (FIFO check). */
const last = new Map<string, number>();
let delivered = 0;
let total = 0;
let fifoBroken = 0;
/** The first FIFO break, described. */
let firstBreak: string | undefined;
let orderHash = 0x811c9dc5;
const hashes: number[] = [];
/** Deliveries between two recorded hashes: gbcasts are few, so more often. */
const HASH_EVERY = values.strategy === "gbcast" ? 16 : 1024;
const state = new Uint8Array(Number(values["state-mib"]) * 1024 * 1024);
const joinedAt = Date.now();
/** How many members the last view this process was told of has. */
let viewMembers = 0;
/** With `--pingpong`, whether this member is the one at that view index. */
let pinger = false;
let startedAt = 0;
let stopAt = Infinity;

const driver = await GroupDriver.join({
  group: values.group!,
  label,
  listen: values.listen!,
  oracle: JSON.parse(values.oracle!),
  sessionTtlMs: 10_000,
  deliver: (message) => {
    const view = new DataView(
      message.payload.buffer,
      message.payload.byteOffset,
      message.payload.length,
    );
    const senderId = view.getUint32(0);
    const n = view.getUint32(4);
    const key = `${message.sender}`;
    // A member that joined late saw a sender's earlier messages only
    // through its state: its first message from each sender sets the base.
    const before = last.get(key) ?? n - 1;
    if (n !== before + 1) {
      fifoBroken++;
      firstBreak ??= `${key}: #${n} after #${before} (delivery ${
        total + 1
      }, seq ${message.seq}, view ${message.viewId})`;
    }
    last.set(key, n);
    orderHash = Math.imul(orderHash ^ senderId, 16777619) ^ n;
    if (values.pingpong !== undefined && !pinger) {
      driver.sendDirect(message.sender, message.payload.subarray(4, 8));
    }
    if (++total % HASH_EVERY === 0) hashes.push(orderHash >>> 0);
    if (startedAt > 0 && performance.now() < stopAt) delivered++;
  },
  viewInstalled: (view, awaiting) => {
    viewMembers = view.members.length;
    pinger = values.pingpong !== undefined &&
      view.members[Number(values.pingpong)] === `${label}@${values.listen}`;
    console.log(JSON.stringify({
      event: "view",
      viewId: view.viewId,
      members: view.members.length,
      at: Date.now(),
    }));
    if (startedAt === 0 && !awaiting && view.members.length === members) {
      start();
    }
  },
  direct: () => {
    if (++answers === members - 1) {
      samples.push(performance.now() - pingAt);
      // The next round: right away (one round in flight, back to back),
      // or after `--gap-ms` idle.
      if (gapMs === 0) queueMicrotask(ping);
      else setTimeout(ping, gapMs);
    }
  },
  state: {
    checkpoint: () => state,
    restore: (bytes) => {
      console.log(JSON.stringify({
        event: "restored",
        bytes: bytes.length,
        ms: Date.now() - joinedAt,
      }));
      if (startedAt === 0 && viewMembers === members) {
        start();
      }
    },
  },
});

const payload = new Uint8Array(Math.max(8, size));
const payloadView = new DataView(payload.buffer);
payloadView.setUint32(0, Number(label.replace(/\D/g, "")) || 0);
let sent = 0;

/** Ping-pong: answers of the current round, when it started, every round's time. */
let answers = 0;
let pingAt = 0;
const samples: number[] = [];

/** Sends the next ping (`--pingpong`), while the time lasts. */
function ping(): void {
  if (performance.now() >= stopAt) return;
  answers = 0;
  pingAt = performance.now();
  payloadView.setUint32(4, ++sent);
  driver.multicast(payload.subarray(0, 16), values.strategy);
}

function start(): void {
  startedAt = performance.now();
  stopAt = startedAt + seconds * 1000;
  if (pinger) ping();
  else if (values.sender && values.pingpong === undefined) pump();
  setTimeout(finish, seconds * 1000 + 2000);
}

/** Sends until the window is full or the time is up, then again soon. */
function pump(): void {
  const end = performance.now() >= stopAt;
  for (let i = 0; i < 10_000 && !end; i++) {
    payloadView.setUint32(4, sent + 1);
    if (!driver.multicast(payload, values.strategy)) break;
    sent++;
  }
  if (!end) setTimeout(pump, 0);
}

function finish(): void {
  const elapsed = (Math.min(performance.now(), stopAt) - startedAt) / 1000;
  samples.sort((a, b) => a - b);
  const at = (q: number) =>
    samples.length === 0
      ? null
      : samples[Math.min(samples.length - 1, Math.floor(q * samples.length))];
  console.log(JSON.stringify({
    event: "result",
    label,
    sent,
    delivered,
    seconds: elapsed,
    fifoBroken,
    firstBreak,
    hashes,
    hashEvery: HASH_EVERY,
    ...(pinger
      ? { rounds: samples.length, p50Ms: at(0.5), p99Ms: at(0.99) }
      : {}),
  }));
  Deno.exit(0);
}
