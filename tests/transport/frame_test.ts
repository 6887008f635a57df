import assert from "node:assert/strict";
import {
  DEFAULT_MAX_FRAME_SIZE,
  encodeFrame,
  FRAME_HEADER_SIZE,
  FrameDecoder,
  FrameError,
  MAX_FRAME_SIZE_LIMIT,
} from "../../transport/frame.ts";
import { payloadOf } from "./_helpers.ts";

function decodeAll(
  decoder: FrameDecoder,
  chunks: Uint8Array[],
): Array<[number, Uint8Array]> {
  const frames: Array<[number, Uint8Array]> = [];
  for (const chunk of chunks) {
    decoder.push(
      chunk,
      (kind, payload) => frames.push([kind, payload.slice()]),
    );
  }
  return frames;
}

Deno.test("frame decoder returns every frame whatever the chunk boundaries", () => {
  const sizes = [0, 1, 7, 8, 9, 100, 4096, 70_000, 3];
  const frames = sizes.map((size, i) => encodeFrame(i % 3, payloadOf(size, i)));
  const stream = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
  let at = 0;
  for (const frame of frames) {
    stream.set(frame, at);
    at += frame.length;
  }
  for (const chunkSize of [1, 2, 3, 7, 8, 9, 13, 1000, 65536, stream.length]) {
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < stream.length; i += chunkSize) {
      chunks.push(stream.subarray(i, i + chunkSize));
    }
    const decoder = new FrameDecoder(DEFAULT_MAX_FRAME_SIZE);
    const got = decodeAll(decoder, chunks);
    assert.equal(got.length, sizes.length, `chunk size ${chunkSize}`);
    got.forEach(([kind, payload], i) => {
      assert.equal(kind, i % 3);
      assert.deepEqual(payload, payloadOf(sizes[i], i));
    });
    assert.equal(decoder.buffered, 0);
  }
});

Deno.test("frame decoder keeps a partial frame until the rest arrives", () => {
  const frame = encodeFrame(0, payloadOf(50, 1));
  const decoder = new FrameDecoder(1024);
  assert.equal(decodeAll(decoder, [frame.subarray(0, 5)]).length, 0);
  assert.equal(decoder.buffered, 5);
  assert.equal(decodeAll(decoder, [frame.subarray(5, 30)]).length, 0);
  assert.equal(decoder.buffered, 30);
  const got = decodeAll(decoder, [frame.subarray(30)]);
  assert.equal(got.length, 1);
  assert.deepEqual(got[0][1], payloadOf(50, 1));
});

Deno.test("frame decoder rejects wrong magic, wrong version and absurd lengths", async (t) => {
  const good = encodeFrame(0, payloadOf(10, 0));
  await t.step("wrong magic", () => {
    const bad = good.slice();
    bad[0] = 0x47;
    assert.throws(
      () => decodeAll(new FrameDecoder(1024), [bad]),
      (e: unknown) =>
        e instanceof FrameError && e instanceof SyntaxError &&
        e.reason === "bad-magic" && e.data[0] === 0x47,
    );
  });
  await t.step("wrong version", () => {
    const bad = good.slice();
    bad[2] = 9;
    assert.throws(
      () => decodeAll(new FrameDecoder(1024), [bad]),
      (e: unknown) => e instanceof FrameError && e.reason === "bad-version",
    );
  });
  await t.step(
    "length over the maximum is refused from the header alone",
    () => {
      const header = encodeFrame(0, new Uint8Array(0));
      header[4] = 0xff;
      header[5] = 0xff;
      header[6] = 0xff;
      header[7] = 0xff;
      const decoder = new FrameDecoder(1024);
      assert.throws(
        () => decodeAll(decoder, [header]),
        (e: unknown) =>
          e instanceof FrameError && e.reason === "too-large" &&
          /4294967295 bytes exceeds the maximum of 1024/.test(e.message),
      );
    },
  );
  await t.step("a frame exactly at the maximum is accepted", () => {
    const got = decodeAll(new FrameDecoder(1024), [
      encodeFrame(0, payloadOf(1024, 5)),
    ]);
    assert.deepEqual(got[0][1], payloadOf(1024, 5));
  });
  await t.step("bad header split across chunks is still refused", () => {
    const bad = good.slice();
    bad[1] = 0;
    const decoder = new FrameDecoder(1024);
    assert.equal(decodeAll(decoder, [bad.subarray(0, 1)]).length, 0);
    assert.throws(() => decodeAll(decoder, [bad.subarray(1)]), FrameError);
  });
});

Deno.test("frame decoder never throws anything but FrameError on random garbage", () => {
  let state = 12345;
  const next = () => (state = (state * 1103515245 + 12345) >>> 0) & 0xff;
  let refused = 0;
  for (let run = 0; run < 500; run++) {
    const bytes = new Uint8Array(1 + (run % 200));
    for (let i = 0; i < bytes.length; i++) bytes[i] = next();
    if (run % 2 === 0) {
      bytes[0] = 0x43;
      bytes[1] = 0x4f;
      if (bytes.length > 2) bytes[2] = 1;
    }
    try {
      decodeAll(new FrameDecoder(64), [bytes]);
    } catch (error) {
      assert.ok(error instanceof FrameError, String(error));
      refused++;
    }
  }
  assert.ok(refused > 250, `only ${refused} of 500 garbage inputs refused`);
});

Deno.test("maximum frame size must be a sane integer", () => {
  assert.throws(() => new FrameDecoder(0), RangeError);
  assert.throws(() => new FrameDecoder(1.5), RangeError);
  assert.throws(() => new FrameDecoder(MAX_FRAME_SIZE_LIMIT + 1), RangeError);
  assert.equal(FRAME_HEADER_SIZE, 8);
});
