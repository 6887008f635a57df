import assert from "node:assert/strict";
import {
  dataHeaderSize,
  decodeFrame,
  type FrameErrorReason,
  FrameWriter,
  type GroupFrame,
  MAX_SEQ,
  MESSAGE_OVERHEAD,
} from "../../groups/_frame.ts";
import { Prng } from "../../sim/mod.ts";

const MAX = 4096;

function bytes(...values: number[]): Uint8Array {
  return new Uint8Array(values);
}

function dataFrame(writer = new FrameWriter(MAX)): Uint8Array {
  writer.beginData(0xfedc_ba98, 2, [MAX_SEQ, 0, 7]);
  assert.ok(writer.addMessage(1, bytes(1, 2, 3)));
  assert.ok(writer.addMessage(2, bytes()));
  assert.ok(writer.addMessage(MAX_SEQ, bytes(9)));
  return writer.finishData().slice();
}

function ackFrame(): Uint8Array {
  return new FrameWriter(MAX).ack(3, 0, [5, 2 ** 40 + 3]).slice();
}

function nakFrame(): Uint8Array {
  return new FrameWriter(MAX).nak(9, 1, [1, 2], 0, [3, 4, 10, MAX_SEQ]).slice();
}

function decoded(frame: Uint8Array, max = MAX): GroupFrame {
  const result = decodeFrame(frame, max);
  assert.ok(result.ok, result.ok ? "" : result.message);
  return result.frame;
}

function rejected(frame: Uint8Array, reason: FrameErrorReason, max = MAX) {
  const result = decodeFrame(frame, max);
  assert.equal(result.ok, false, `accepted a frame expected ${reason}`);
  if (!result.ok) {
    assert.equal(result.reason, reason, result.message);
    assert.ok(result.message.length > 10);
  }
}

Deno.test("each frame kind decodes to what was encoded", async (t) => {
  await t.step("DATA", () => {
    assert.deepEqual(decoded(dataFrame()), {
      kind: "data",
      viewId: 0xfedc_ba98,
      sender: 2,
      acks: [MAX_SEQ, 0, 7],
      seqs: [1, 2, MAX_SEQ],
      payloads: [bytes(1, 2, 3), bytes(), bytes(9)],
    });
  });
  await t.step("ACK", () => {
    assert.deepEqual(decoded(ackFrame()), {
      kind: "ack",
      viewId: 3,
      sender: 0,
      acks: [5, 2 ** 40 + 3],
    });
  });
  await t.step("NAK", () => {
    assert.deepEqual(decoded(nakFrame()), {
      kind: "nak",
      viewId: 9,
      sender: 1,
      acks: [1, 2],
      target: 0,
      ranges: [3, 4, 10, MAX_SEQ],
    });
  });
});

Deno.test("a DATA frame's payloads are views of the frame, not copies", () => {
  const frame = dataFrame();
  const data = decoded(frame);
  assert.equal(data.kind, "data");
  if (data.kind === "data") assert.equal(data.payloads[0].buffer, frame.buffer);
});

Deno.test("the writer fills a frame up to its maximum and reuses its buffer", () => {
  const max = dataHeaderSize(1) + 3 * (MESSAGE_OVERHEAD + 10);
  const writer = new FrameWriter(max);
  writer.beginData(1, 0, [0]);
  for (let seq = 1; seq <= 3; seq++) {
    assert.ok(writer.addMessage(seq, new Uint8Array(10)));
  }
  assert.equal(writer.addMessage(4, new Uint8Array(0)), false);
  assert.equal(writer.messageCount, 3);
  const first = writer.finishData();
  assert.equal(first.length, max);
  const second = writer.ack(1, 0, [3]);
  assert.equal(second.buffer, first.buffer);
  assert.equal(first[2], 2, "the first frame's bytes now start the ACK");
});

Deno.test("the writer refuses a header that cannot fit", () => {
  assert.throws(
    () => new FrameWriter(20).ack(1, 0, [1, 2, 3]),
    (e: unknown) => e instanceof RangeError && /needs 29 bytes/.test(e.message),
  );
});

Deno.test("every truncation of every kind is rejected as truncated", () => {
  for (const frame of [dataFrame(), ackFrame(), nakFrame()]) {
    for (let length = 0; length < frame.length; length++) {
      rejected(frame.subarray(0, length), "truncated");
    }
  }
});

Deno.test("bytes after the end of a frame are rejected", () => {
  for (const frame of [dataFrame(), ackFrame(), nakFrame()]) {
    const longer = new Uint8Array(frame.length + 1);
    longer.set(frame);
    rejected(longer, "trailing-bytes");
  }
});

Deno.test("an oversize frame is rejected before anything else", () => {
  const frame = dataFrame();
  rejected(frame, "too-large", frame.length - 1);
  assert.equal(decodeFrame(frame, frame.length).ok, true);
});

Deno.test("corrupt headers and fields are rejected with their reason", async (t) => {
  const corrupt = (frame: Uint8Array, at: number, value: number) => {
    const copy = frame.slice();
    copy[at] = value;
    return copy;
  };
  // DATA layout: header 11, acks 3 x 6 (to 29), count 4 (to 33), then
  // message 1 at 33: seq 6, length 4, 3 bytes (to 46); message 2 at 46.
  await t.step("magic, version, kind", () => {
    rejected(corrupt(ackFrame(), 0, 0x48), "bad-magic");
    rejected(corrupt(ackFrame(), 1, 2), "bad-version");
    rejected(corrupt(ackFrame(), 2, 0), "bad-kind");
    rejected(corrupt(ackFrame(), 2, 4), "bad-kind");
  });
  await t.step("sender outside the ack vector, empty vector", () => {
    rejected(corrupt(ackFrame(), 8, 2), "bad-field");
    rejected(bytes(0x47, 1, 2, 0, 0, 0, 1, 0, 0, 0, 0), "bad-field");
  });
  await t.step("DATA with no message, a zero seq, seqs out of order", () => {
    const frame = dataFrame();
    rejected(corrupt(frame, 32, 0), "bad-field");
    rejected(corrupt(frame, 38, 0), "bad-field");
    rejected(corrupt(frame, 51, 1), "bad-field");
  });
  await t.step("DATA whose count or length overruns the frame", () => {
    const frame = dataFrame();
    rejected(corrupt(frame, 29, 0xff), "truncated");
    rejected(corrupt(frame, 42, 0xff), "truncated");
  });
  await t.step(
    "NAK with a bad target, no range, a reversed or zero range",
    () => {
      // NAK layout: header 11, acks 2 x 6 (to 23), target 2, count 2 (to 27),
      // ranges of 12 bytes.
      rejected(corrupt(nakFrame(), 24, 2), "bad-field");
      rejected(corrupt(nakFrame(), 26, 0), "bad-field");
      rejected(corrupt(nakFrame(), 32, 0), "bad-field");
      rejected(corrupt(nakFrame(), 32, 9), "bad-field");
    },
  );
});

Deno.test("random corruption never throws and never yields an inconsistent frame", () => {
  const random = new Prng(7);
  const frames = [dataFrame(), ackFrame(), nakFrame()];
  let accepted = 0;
  for (let i = 0; i < 3000; i++) {
    const frame = frames[i % 3].slice();
    const flips = 1 + random.int(3);
    for (let f = 0; f < flips; f++) {
      frame[random.int(frame.length)] = random.int(256);
    }
    const result = decodeFrame(frame, MAX);
    if (!result.ok) continue;
    accepted++;
    const g = result.frame;
    assert.ok(g.sender < g.acks.length);
    if (g.kind === "data") {
      assert.equal(g.seqs.length, g.payloads.length);
      assert.ok(
        g.seqs.every((s, k) => s >= 1 && (k === 0 || s > g.seqs[k - 1])),
      );
    }
  }
  assert.ok(accepted > 0 && accepted < 3000, `accepted ${accepted}`);
});
