/**
 * A group member process for the multi-process tests: joins a group over
 * TCP, multicasts `--count` numbered messages with `--strategy` (every
 * `--gbcast-every`th with `gbcast`, when given), one every `--every` ms once
 * it is in a view, and prints one JSON line per event on
 * stdout: `view` (id, members, state digest unless waiting for it),
 * `state` (restored), `deliver` (id, sender, view, strategy) and `out`.
 * Its state is an order-independent digest of what it delivered (count
 * and the XOR of the ids' hashes), so members can compare it at a view.
 * Runs until killed.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { GroupDriver } from "../../groups/driver.ts";
import { DeliveryDigest } from "./_delivery_digest.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    label: { type: "string" },
    listen: { type: "string" },
    oracle: { type: "string" },
    group: { type: "string", default: "/test/g" },
    strategy: { type: "string", default: "fbcast" },
    count: { type: "string", default: "0" },
    every: { type: "string", default: "5" },
    "gbcast-every": { type: "string", default: "0" },
    transport: { type: "string", default: "tcp" },
  },
});

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const state = new DeliveryDigest();
const print = (event: Record<string, unknown>) =>
  console.log(JSON.stringify(event));

/** The last view this process was told of (a new member's lags behind). */
let appView = 0;
const driver = await GroupDriver.join({
  group: values.group!,
  label: values.label!,
  listen: values.listen!,
  oracle: JSON.parse(values.oracle!),
  sessionTtlMs: 3000,
  transport: values.transport === "udp" ? "udp" : "tcp",
  deliver: (message) => {
    const id = decoder.decode(message.payload);
    state.apply(id);
    print({
      event: "deliver",
      id,
      sender: message.sender,
      viewId: message.viewId,
      strategy: message.strategy,
    });
  },
  viewInstalled: (view, waiting) => {
    appView = view.viewId;
    print({
      event: "view",
      viewId: view.viewId,
      members: view.members,
      state: waiting ? null : String(state),
    });
  },
  state: {
    checkpoint: () => state.checkpoint(),
    restore: (bytes) => {
      state.restore(bytes);
      print({ event: "state", viewId: appView, state: String(state) });
    },
  },
  out: (why) => print({ event: "out", why }),
});
print({ event: "joined", name: driver.name });

const count = Number(values.count);
const every = Number(values.every);
const gbcastEvery = Number(values["gbcast-every"]);
let sent = 0;
const timer = setInterval(() => {
  if (sent >= count) {
    clearInterval(timer);
    return;
  }
  if (driver.view === undefined) return;
  const id = `${values.label}:${sent + 1}`;
  const strategy = gbcastEvery > 0 && (sent + 1) % gbcastEvery === 0
    ? "gbcast"
    : values.strategy;
  if (driver.multicast(encoder.encode(id), strategy)) sent++;
}, every);
