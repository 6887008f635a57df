import assert from "node:assert/strict";
import { JsonCodec } from "../../transport/codec.ts";

Deno.test("json codec round-trips values including non-ASCII text", () => {
  const codec = new JsonCodec<unknown>({ initialBufferSize: 4 });
  for (
    const value of [
      { a: 1, b: [true, null, "x"] },
      "héllo wörld ✓ 🎉",
      [],
      0,
      { long: "z".repeat(100_000) },
    ]
  ) {
    assert.deepEqual(codec.decode(codec.encode(value).slice()), value);
  }
});

Deno.test("json codec reuses its buffer between encodes", () => {
  const codec = new JsonCodec<{ n: number }>();
  const first = codec.encode({ n: 1 });
  const second = codec.encode({ n: 2 });
  assert.equal(first.buffer, second.buffer);
  assert.deepEqual(codec.decode(second), { n: 2 });
});

Deno.test("json codec refuses bad input with SyntaxError or TypeError", () => {
  const codec = new JsonCodec<unknown>();
  assert.throws(() => codec.decode(new Uint8Array([0xff, 0xfe])), SyntaxError);
  assert.throws(
    () => codec.decode(new TextEncoder().encode("{not json")),
    SyntaxError,
  );
  assert.throws(() => codec.encode(undefined), TypeError);
  assert.throws(() => codec.encode(10n), TypeError);
});
