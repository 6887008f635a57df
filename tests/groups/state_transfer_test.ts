import assert from "node:assert/strict";
import {
  ackFrame,
  decodeState,
  STATE_MAGIC,
  StateReceiver,
  StateSender,
} from "../../groups/_state_transfer.ts";
import { Simulation } from "../../sim/mod.ts";

/**
 * Streams `state` from "p" to "j" over the simulated network (with the
 * given loss) and returns what "j" restored and when.
 */
function transfer(
  state: Uint8Array,
  options: { loss?: number; seed?: number; chunkBytes?: number } = {},
): { restored: Uint8Array | undefined; at: number; sender: StateSender } {
  const sim = new Simulation({
    seed: options.seed ?? 1,
    loss: options.loss ?? 0,
    duplicate: options.loss === undefined ? 0 : 0.05,
    reorder: options.loss === undefined ? 0 : 0.1,
  });
  const out: { restored: Uint8Array | undefined; at: number } = {
    restored: undefined,
    at: NaN,
  };
  let sender: StateSender | undefined;
  sim.addNode("j", (env) => {
    const receiver = new StateReceiver(9);
    env.transport.setHandler({
      onFrame: (from, bytes) => {
        const frame = decodeState(bytes);
        if (!("kind" in frame) || frame.kind !== "chunk") return;
        const whole = receiver.onChunk(frame.count, frame.index, frame.bytes);
        env.transport.send(from, ackFrame(frame.transfer, receiver.next));
        if (whole !== undefined && out.restored === undefined) {
          out.restored = whole;
          out.at = env.clock.now();
        }
      },
    });
    return {};
  });
  sim.addNode("p", (env) => {
    env.transport.setHandler({
      onFrame: (from, bytes) => {
        const frame = decodeState(bytes);
        if ("kind" in frame && frame.kind === "ack") {
          sender!.onAck(from, frame.next);
        }
      },
    });
    sender = new StateSender({
      transfer: 9,
      state,
      joiners: ["j"],
      clock: env.clock,
      send: (to, frame) => env.transport.send(to, frame),
      chunkBytes: options.chunkBytes ?? 60_000,
      window: 16,
      resendMs: 100,
    });
    return {};
  });
  sim.runFor(120_000);
  return { ...out, sender: sender! };
}

function pattern(size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 7 + (i >>> 11)) & 0xff;
  return bytes;
}

Deno.test("state transfer: a checkpoint arrives whole and exact despite loss, duplicates and reordering; the sender then stops", () => {
  const state = pattern(1_000_003);
  for (const seed of [1, 2, 3]) {
    const { restored, sender } = transfer(state, { loss: 0.3, seed });
    assert.ok(restored !== undefined, `seed ${seed}: nothing restored`);
    assert.equal(restored.length, state.length);
    assert.ok(restored.every((b, i) => b === state[i]), `seed ${seed}`);
    assert.deepEqual(sender.pending, []);
  }
});

Deno.test("state transfer: 64 MiB in chunks, exact, in bounded virtual time", () => {
  const state = pattern(64 * 1024 * 1024);
  const { restored, at } = transfer(state);
  assert.ok(restored !== undefined);
  assert.equal(restored.length, state.length);
  for (let i = 0; i < state.length; i += 4093) {
    assert.equal(restored[i], state[i], `byte ${i}`);
  }
  assert.equal(restored[state.length - 1], state[state.length - 1]);
  assert.ok(at < 60_000, `took ${at} virtual ms`);
});

Deno.test("state transfer: an empty state is one empty chunk; frames that are not chunks or acks are errors", () => {
  const { restored } = transfer(new Uint8Array(0));
  assert.deepEqual(restored, new Uint8Array(0));
  assert.ok("error" in decodeState(new Uint8Array([STATE_MAGIC, 1, 0])));
  assert.ok(
    "error" in decodeState(new Uint8Array([0x47, 2, 0, 0, 0, 1, 0, 0, 0, 0])),
  );
  const ack = ackFrame(3, 4);
  assert.deepEqual(decodeState(ack), { kind: "ack", transfer: 3, next: 4 });
  const longAck = new Uint8Array(11);
  longAck.set(ack);
  assert.ok("error" in decodeState(longAck));
  const chunk = new Uint8Array(14);
  chunk[0] = STATE_MAGIC;
  chunk[1] = 1;
  new DataView(chunk.buffer).setUint32(6, 2); // 2 chunks
  new DataView(chunk.buffer).setUint32(10, 2); // index 2: out of range
  assert.match((decodeState(chunk) as { error: string }).error, /chunk 2 of 2/);
  // A receiver keeps chunks a little ahead of the next one (out of order);
  // further ahead, or of another count, they are sent again later.
  const receiver = new StateReceiver(1);
  assert.equal(receiver.onChunk(3, 1, new Uint8Array([1])), undefined);
  assert.equal(receiver.next, 0);
  assert.equal(receiver.onChunk(4, 2, new Uint8Array([2])), undefined);
  receiver.onChunk(3, 0, new Uint8Array([0]));
  assert.equal(receiver.next, 2);
  assert.deepEqual(
    receiver.onChunk(3, 2, new Uint8Array([2])),
    new Uint8Array([0, 1, 2]),
  );
  const far = new StateReceiver(1);
  far.onChunk(200, 100, new Uint8Array([1]));
  far.onChunk(200, 0, new Uint8Array([0]));
  assert.equal(far.next, 1, "a chunk 100 ahead was not kept");
});
