import assert from "node:assert/strict";
import {
  DATAGRAM_FIXED_HEADER_SIZE,
  DatagramEncoder,
  type DatagramEncoderOptions,
  type Fragment,
  MAX_SENDER_ID_BYTES,
  parseDatagram,
  type ParsedDatagram,
  verifyDatagramMac,
  writeUint32,
} from "../../transport/_datagram.ts";
import {
  Reassembler,
  type ReassemblyStats,
} from "../../transport/_reassembly.ts";
import { FrameError, type FrameErrorReason } from "../../transport/frame.ts";
import { payloadOf, prng } from "./_helpers.ts";

const MAX_FRAME = 256 * 1024;
const TIMEOUT = 1000;

function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

/** Cuts a frame into parsed fragments, through the real datagram format. */
function fragmentsOf(
  payload: Uint8Array,
  messageNumber: number,
  options: { sender?: string; maxDatagramSize?: number } = {},
): ParsedDatagram[] {
  const encoder = new DatagramEncoder({
    sender: options.sender ?? "n1",
    maxDatagramSize: options.maxDatagramSize ?? 200,
  });
  return encoder.encode(messageNumber, payload).map((d) =>
    parseDatagram(d, MAX_FRAME)
  );
}

function reassembler(
  overrides: Partial<{
    maxBytes: number;
    maxFrames: number;
    maxRemembered: number;
  }> = {},
): Reassembler {
  return new Reassembler({
    maxFrameSize: MAX_FRAME,
    maxBytes: overrides.maxBytes ?? 4 * MAX_FRAME,
    maxFrames: overrides.maxFrames ?? 64,
    timeoutMs: TIMEOUT,
    maxRemembered: overrides.maxRemembered,
  });
}

/** Feeds fragments; returns the frames completed, copied. */
function feed(
  r: Reassembler,
  fragments: Fragment[],
  now: number,
): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const f of fragments) {
    const frame = r.accept(f, now);
    if (frame !== undefined) out.push(frame.slice());
  }
  return out;
}

function assertFrameError(
  fn: () => unknown,
  reason: FrameErrorReason,
  includes?: string,
  label?: string,
): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof FrameError, `expected FrameError, got ${error}`);
    assert.ok(error instanceof SyntaxError);
    assert.equal(error.reason, reason, error.message);
    if (includes !== undefined) {
      assert.ok(error.message.includes(includes), error.message);
    }
    return true;
  }, label);
}

/** Asserts the reassembler holds no bytes and no incomplete frame. */
function assertEmpty(r: Reassembler): void {
  assert.equal(r.heldBytes, 0);
  assert.equal(r.incompleteFrames, 0);
}

/** Asserts the named counters of `r.stats()`, and only those. */
function assertStats(
  r: Reassembler,
  expected: Partial<ReassemblyStats>,
): void {
  const s = r.stats();
  const got: Partial<ReassemblyStats> = {};
  for (const key of Object.keys(expected) as (keyof ReassemblyStats)[]) {
    got[key] = s[key];
  }
  assert.deepEqual(got, expected);
}

Deno.test("datagram format", async (t) => {
  await t.step("encode and parse round-trip header fields and chunks", () => {
    const payload = payloadOf(1000, 3);
    const encoder = new DatagramEncoder({
      sender: "nœud-1",
      maxDatagramSize: 300,
    });
    const datagrams = encoder.encode(0xfffffffe, payload);
    assert.equal(datagrams.length, encoder.fragmentCount(1000));
    assert.equal(datagrams.length, Math.ceil(1000 / encoder.chunkSize));
    let at = 0;
    datagrams.forEach((d, i) => {
      assert.ok(d.length <= 300);
      const p = parseDatagram(d, MAX_FRAME);
      assert.equal(p.sender, "nœud-1");
      assert.equal(p.messageNumber, 0xfffffffe);
      assert.equal(p.frameLength, 1000);
      assert.equal(p.fragmentIndex, i);
      assert.equal(p.fragmentCount, datagrams.length);
      assert.equal(p.macOffset, -1);
      assert.deepEqual(p.chunk, payload.subarray(at, at + p.chunk.length));
      at += p.chunk.length;
    });
    assert.equal(at, 1000);
  });

  await t.step("an empty frame is one datagram with an empty chunk", () => {
    const encoder = new DatagramEncoder({ sender: "a", maxDatagramSize: 100 });
    const [d, ...rest] = encoder.encode(1, new Uint8Array(0));
    assert.equal(rest.length, 0);
    const p = parseDatagram(d, MAX_FRAME);
    assert.equal(p.frameLength, 0);
    assert.equal(p.fragmentCount, 1);
    assert.equal(p.chunk.length, 0);
  });

  await t.step("a MAC covers every byte before it", () => {
    const key = new TextEncoder().encode("secret");
    const other = new TextEncoder().encode("secreT");
    const encoder = new DatagramEncoder({
      sender: "a",
      maxDatagramSize: 100,
      key,
    });
    const [d] = encoder.encode(7, payloadOf(20, 1));
    const p = parseDatagram(d, MAX_FRAME);
    assert.equal(p.macOffset, d.length - 32);
    assert.equal(p.chunk.length, 20);
    assert.equal(verifyDatagramMac(d, p, key), true);
    assert.equal(verifyDatagramMac(d, p, other), false);
    for (const offset of [0, 5, 6, DATAGRAM_FIXED_HEADER_SIZE, d.length - 1]) {
      const altered = d.slice();
      altered[offset] ^= 1;
      let ok: boolean;
      try {
        ok = verifyDatagramMac(altered, parseDatagram(altered, MAX_FRAME), key);
      } catch (error) {
        assert.ok(error instanceof FrameError); // the change broke the header
        continue;
      }
      assert.equal(ok, false, `flip at ${offset}`);
    }
    const unsigned = new DatagramEncoder({ sender: "a", maxDatagramSize: 100 })
      .encode(7, payloadOf(20, 1))[0];
    assert.equal(
      verifyDatagramMac(unsigned, parseDatagram(unsigned, MAX_FRAME), key),
      false,
    );
  });

  await t.step("malformed datagrams throw a FrameError with the reason", () => {
    const good = new DatagramEncoder({ sender: "a", maxDatagramSize: 100 })
      .encode(1, payloadOf(30, 2))[0];
    const idEnd = 6 + 1;
    const mutate = (f: (d: Uint8Array) => void, from = good) => {
      const d = from.slice();
      f(d);
      return d;
    };
    const cases: Array<[string, Uint8Array, FrameErrorReason, string?]> = [
      ["empty", new Uint8Array(0), "truncated"],
      ["12 bytes", good.subarray(0, 12), "truncated"],
      ["magic byte 0", mutate((d) => d[0] = 0x00), "bad-magic"],
      ["magic byte 1", mutate((d) => d[1] = 0x00), "bad-magic"],
      ["version", mutate((d) => d[2] = 9), "bad-version"],
      ["kind", mutate((d) => d[3] = 4), "malformed", "kind"],
      ["flags", mutate((d) => d[4] = 0x80), "malformed", "flags"],
      ["id length 0", mutate((d) => d[5] = 0), "malformed", "id length"],
      [
        "id length too long",
        mutate((d) => d[5] = MAX_SENDER_ID_BYTES + 1),
        "malformed",
        "id length",
      ],
      ["id not UTF-8", mutate((d) => d[6] = 0xff), "malformed", "UTF-8"],
      // MAC flag set on a datagram too short to hold one
      [
        "MAC flag, no room",
        mutate((d) => d[4] = 1, good.subarray(0, idEnd + 16 + 8)),
        "truncated",
      ],
      // absurd fragment count, index out of range, zero count, frame too large
      [
        "absurd count",
        mutate((d) => writeUint32(d, idEnd + 12, 0xffffffff)),
        "malformed",
        "count",
      ],
      [
        "zero count",
        mutate((d) => writeUint32(d, idEnd + 12, 0)),
        "malformed",
        "count",
      ],
      [
        "index out of range",
        mutate((d) => writeUint32(d, idEnd + 8, 5)),
        "malformed",
        "index",
      ],
      [
        "frame too large",
        mutate((d) => writeUint32(d, idEnd + 4, MAX_FRAME + 1)),
        "too-large",
      ],
      // one fragment whose chunk is not the whole frame
      [
        "chunk not the whole frame",
        mutate((d) => writeUint32(d, idEnd + 4, 31)),
        "malformed",
      ],
    ];
    for (const [label, datagram, reason, includes] of cases) {
      assertFrameError(
        () => parseDatagram(datagram, MAX_FRAME),
        reason,
        includes,
        label,
      );
    }
  });

  await t.step("encoder options are validated", () => {
    const key = new Uint8Array([1]);
    const refused: Array<[DatagramEncoderOptions, ErrorConstructor]> = [
      [{ sender: "", maxDatagramSize: 100 }, TypeError],
      [
        { sender: "x".repeat(MAX_SENDER_ID_BYTES + 1), maxDatagramSize: 1000 },
        TypeError,
      ],
      [{ sender: "a", maxDatagramSize: 30 }, RangeError],
      [{ sender: "a", maxDatagramSize: 65_508 }, RangeError],
      [{ sender: "a", maxDatagramSize: 100.5 }, RangeError],
      // 22 + 1 header + 32 MAC leave 15 bytes: below the 16-byte minimum chunk
      [{ sender: "a", maxDatagramSize: 70, key }, RangeError],
    ];
    for (const [options, error] of refused) {
      assert.throws(
        () => new DatagramEncoder(options),
        error,
        JSON.stringify(options),
      );
    }
    assert.equal(
      new DatagramEncoder({ sender: "a", maxDatagramSize: 71, key }).chunkSize,
      16,
    );
  });
});

Deno.test("reassembly", async (t) => {
  await t.step(
    "frames of many sizes reassemble from in-order, reversed, shuffled and duplicated fragments",
    () => {
      const random = prng(42);
      const r = reassembler();
      const c = new DatagramEncoder({ sender: "n1", maxDatagramSize: 200 })
        .chunkSize;
      const sizes = [0, 1, 2, c - 1, c, c + 1, 2 * c - 1, 2 * c, 2 * c + 1];
      sizes.push(1000, 4096, 65_537, MAX_FRAME - 1, MAX_FRAME);
      let completions = 0;
      let number = 0;
      for (const size of sizes) {
        const payload = payloadOf(size, size);
        const orders: Array<(f: ParsedDatagram[]) => ParsedDatagram[]> = [
          (f) => f,
          (f) => [...f].reverse(),
          (f) => shuffle([...f], random),
          (f) => shuffle([...f, ...f, ...f.slice(0, 3)], random),
        ];
        for (const order of orders) {
          const fragments = order(fragmentsOf(payload, number++));
          const got = feed(r, fragments, 0);
          // a single-fragment frame has no reassembly state: each copy of
          // it is a frame (UDP may duplicate); larger ones arrive once
          const expected = size <= c ? fragments.length : 1;
          assert.equal(got.length, expected, `size ${size}`);
          completions += expected;
          for (const frame of got) {
            assert.deepEqual(frame, payload, `size ${size}`);
          }
          assertEmpty(r);
        }
      }
      const s = r.stats();
      assert.equal(s.framesCompleted, completions);
      assert.equal(s.framesExpired + s.framesEvicted, 0);
      assert.ok(s.duplicateFragments > 0);
    },
  );

  await t.step(
    "interleaved frames of several senders reassemble independently",
    () => {
      const random = prng(7);
      const r = reassembler();
      const frames = new Map<string, Uint8Array>();
      const all: ParsedDatagram[] = [];
      for (const sender of ["a", "b", "c"]) {
        for (let n = 0; n < 5; n++) {
          const payload = payloadOf(500 + n * 333, n + sender.charCodeAt(0));
          frames.set(`${sender}/${n}`, payload);
          // the same message number from different senders must not collide
          all.push(...fragmentsOf(payload, n, { sender }));
        }
      }
      const got = new Map<string, Uint8Array>();
      for (const f of shuffle(all, random)) {
        const frame = r.accept(f, 0);
        if (frame !== undefined) {
          got.set(
            `${f.sender}/${f.messageNumber}`,
            frame.slice(),
          );
        }
      }
      assert.deepEqual(got, frames);
      assert.equal(r.heldBytes, 0);
    },
  );

  await t.step(
    "frames missing one fragment are dropped at the timeout and their bytes released",
    () => {
      const random = prng(11);
      const r = reassembler({ maxFrames: 100, maxBytes: 100 * MAX_FRAME });
      let held = 0;
      for (let n = 0; n < 60; n++) {
        const size = 300 + Math.floor(random() * 20_000);
        const fragments = fragmentsOf(payloadOf(size, n), n);
        fragments.splice(Math.floor(random() * fragments.length), 1);
        assert.deepEqual(feed(r, shuffle(fragments, random), 100 + n), []);
        held += size;
      }
      assert.equal(r.heldBytes, held);
      assert.equal(r.incompleteFrames, 60);
      assert.equal(r.sweep(100 + TIMEOUT - 1), 0);
      assert.equal(
        r.sweep(100 + 29 + TIMEOUT),
        30,
        "frames whose deadline passed",
      );
      assert.equal(r.incompleteFrames, 30);
      assert.equal(r.sweep(100 + 59 + TIMEOUT), 30);
      assertEmpty(r);
      assertStats(r, {
        framesExpired: 60,
        framesCompleted: 0,
        framesEvicted: 0,
      });
    },
  );

  await t.step(
    "a flood of incomplete frames stays within the bounds, and a good frame still arrives",
    () => {
      const random = prng(5);
      const maxBytes = MAX_FRAME; // the smallest allowed
      const r = reassembler({ maxFrames: 8, maxBytes });
      let started = 0;
      for (let n = 0; n < 200; n++) {
        const size = 1 + Math.floor(random() * MAX_FRAME);
        const fragments = fragmentsOf(payloadOf(size, n), n, {
          sender: "flood",
          maxDatagramSize: 1400,
        });
        if (fragments.length < 2) continue;
        // only the first fragment of each: nothing ever completes
        assert.equal(r.accept(fragments[0], n), undefined);
        started++;
        assert.ok(r.heldBytes <= maxBytes, `held ${r.heldBytes}`);
        assert.ok(r.incompleteFrames <= 8);
      }
      assertStats(r, {
        framesEvicted: started - r.incompleteFrames,
        framesCompleted: 0,
      });
      const payload = payloadOf(MAX_FRAME, 99);
      assert.deepEqual(
        feed(
          r,
          fragmentsOf(payload, 1, { sender: "good", maxDatagramSize: 1400 }),
          600,
        ),
        [payload],
      );
      assert.ok(r.heldBytes <= maxBytes);
      r.sweep(600 + TIMEOUT);
      assertEmpty(r);
    },
  );

  await t.step(
    "the oldest expired frames are counted as expired, not evicted, when room is needed",
    () => {
      const r = reassembler({ maxFrames: 2 });
      r.accept(fragmentsOf(payloadOf(1000, 1), 1)[0], 0);
      r.accept(fragmentsOf(payloadOf(1000, 2), 2)[0], 10);
      r.accept(fragmentsOf(payloadOf(1000, 3), 3)[0], TIMEOUT + 5);
      assertStats(r, {
        framesExpired: 1,
        framesEvicted: 0,
        incompleteFrames: 2,
      });
    },
  );

  await t.step(
    "late duplicates of a completed frame are ignored, not held",
    () => {
      const r = reassembler();
      const fragments = fragmentsOf(payloadOf(1000, 1), 5);
      assert.equal(feed(r, fragments, 0).length, 1);
      assert.deepEqual(feed(r, fragments, 10), []);
      assert.equal(r.heldBytes, 0);
      assert.equal(r.stats().duplicateFragments, fragments.length);
      // once forgotten (after the timeout), the same number starts a new frame
      r.sweep(TIMEOUT);
      assert.equal(feed(r, fragments, TIMEOUT + 1).length, 1);
    },
  );

  await t.step("late-duplicate memory is bounded", () => {
    const r = reassembler({ maxRemembered: 2 });
    for (let n = 0; n < 3; n++) feed(r, fragmentsOf(payloadOf(500, n), n), 0);
    // message 0 was forgotten to remember 2: its duplicate starts a new frame
    assert.equal(r.accept(fragmentsOf(payloadOf(500, 0), 0)[0], 1), undefined);
    assert.equal(r.incompleteFrames, 1);
    assert.equal(r.accept(fragmentsOf(payloadOf(500, 2), 2)[0], 1), undefined);
    assert.equal(r.incompleteFrames, 1);
  });

  await t.step(
    "fragments inconsistent with their frame are malformed and change nothing",
    () => {
      const r = reassembler();
      const payload = payloadOf(1000, 4);
      const fragments = fragmentsOf(payload, 9);
      const chunk = fragments[0].chunk.length;
      assert.equal(r.accept(fragments[1], 0), undefined);
      const held = r.heldBytes;
      const variants: Array<[Partial<Fragment>, FrameErrorReason]> = [
        [{ frameLength: 1001 }, "malformed"],
        [{ fragmentCount: fragments.length + 1 }, "malformed"],
        [{ chunk: new Uint8Array(chunk - 1) }, "malformed"],
        [{ chunk: new Uint8Array(chunk + 1) }, "malformed"],
        [{ fragmentIndex: fragments.length }, "malformed"],
        [{ fragmentCount: 0 }, "malformed"],
        [{ frameLength: MAX_FRAME + 1 }, "too-large"],
      ];
      for (const [change, reason] of variants) {
        assertFrameError(
          () => r.accept({ ...fragments[0], ...change }, 0),
          reason,
        );
        assertFrameError(
          () => r.accept({ ...fragments[fragments.length - 1], ...change }, 0),
          reason,
        );
      }
      assert.equal(r.heldBytes, held);
      assert.equal(r.incompleteFrames, 1);
      assert.deepEqual(feed(r, fragments, 0), [payload]);
      assert.equal(r.heldBytes, 0);
    },
  );

  await t.step(
    "a first fragment no chunk size can explain is malformed and reserves nothing",
    () => {
      const r = reassembler();
      const base = fragmentsOf(payloadOf(1000, 4), 9)[0];
      const shapes: Array<[string, Partial<Fragment>, string?]> = [
        // 4 fragments of 100 bytes cannot make a 1000-byte frame
        [
          "4 x 100 bytes",
          { fragmentCount: 4, chunk: new Uint8Array(100) },
          "chunk size",
        ],
        // a last fragment of 7 bytes: 993 is not a multiple of 2
        [
          "last of 7 bytes",
          { fragmentIndex: 2, fragmentCount: 3, chunk: new Uint8Array(7) },
          "chunk size",
        ],
        // a last fragment larger than the others would be
        [
          "last too large",
          { fragmentIndex: 1, fragmentCount: 2, chunk: new Uint8Array(600) },
        ],
        // more fragments than bytes
        [
          "more fragments than bytes",
          { frameLength: 3, fragmentCount: 4, chunk: new Uint8Array(1) },
        ],
      ];
      for (const [label, change, includes] of shapes) {
        assertFrameError(
          () => r.accept({ ...base, ...change }, 0),
          "malformed",
          includes,
          label,
        );
      }
      assertEmpty(r);
    },
  );

  await t.step("options are validated", () => {
    const ok = {
      maxFrameSize: 1000,
      maxBytes: 1000,
      maxFrames: 1,
      timeoutMs: 1,
    };
    new Reassembler(ok);
    assert.throws(() => new Reassembler({ ...ok, maxBytes: 999 }), RangeError);
    assert.throws(() => new Reassembler({ ...ok, maxFrames: 0 }), RangeError);
    assert.throws(() => new Reassembler({ ...ok, timeoutMs: 0 }), RangeError);
    assert.throws(() => new Reassembler({ ...ok, timeoutMs: NaN }), RangeError);
    assert.throws(
      () => new Reassembler({ ...ok, maxFrameSize: 0 }),
      RangeError,
    );
    assert.throws(
      () => new Reassembler({ ...ok, maxRemembered: -1 }),
      RangeError,
    );
  });
});
