import assert from "node:assert/strict";
import { Prng } from "../../sim/mod.ts";

function draws(prng: Prng, n: number): number[] {
  return Array.from({ length: n }, () => prng.uint32());
}

Deno.test("prng: the same seed gives the same sequence, different seeds differ", () => {
  assert.deepEqual(draws(new Prng(1), 100), draws(new Prng(1), 100));
  assert.notDeepEqual(draws(new Prng(1), 100), draws(new Prng(2), 100));
  // Seeds beyond 32 bits are not truncated.
  assert.notDeepEqual(
    draws(new Prng(5), 10),
    draws(new Prng(5 + 2 ** 32), 10),
  );
  assert.notDeepEqual(draws(new Prng(0), 10), draws(new Prng(2 ** 53 - 1), 10));
});

Deno.test("prng: output is pinned (changing the algorithm changes every replay)", () => {
  // If these change, every recorded seed replays differently: change them
  // only on purpose.
  assert.deepEqual(draws(new Prng(42), 4), [
    286275670,
    2864949806,
    2419293145,
    1116027561,
  ]);
  assert.equal(new Prng(42).fork("net").uint32(), 3498966695);
});

Deno.test("prng: fork is independent of the parent's consumption and of other forks", () => {
  const a = new Prng(9);
  const forkBefore = draws(a.fork("x"), 20);
  draws(a, 1000);
  const forkAfter = draws(a.fork("x"), 20);
  assert.deepEqual(
    forkBefore,
    forkAfter,
    "fork depends only on seed and label",
  );

  const b = new Prng(9);
  b.fork("y");
  b.fork("z");
  assert.deepEqual(
    draws(b, 20),
    draws(new Prng(9), 20),
    "forking does not advance the parent",
  );

  assert.notDeepEqual(
    draws(new Prng(9).fork("x"), 20),
    draws(new Prng(9).fork("y"), 20),
  );
  assert.notDeepEqual(
    draws(new Prng(9).fork("x"), 20),
    draws(new Prng(10).fork("x"), 20),
  );
  assert.notDeepEqual(draws(new Prng(9).fork("x"), 20), draws(new Prng(9), 20));
  // Nested forks are deterministic too.
  assert.deepEqual(
    draws(new Prng(3).fork("a").fork("b"), 10),
    draws(new Prng(3).fork("a").fork("b"), 10),
  );
  assert.notDeepEqual(
    draws(new Prng(3).fork("a").fork("b"), 10),
    draws(new Prng(3).fork("b").fork("a"), 10),
  );
});

Deno.test("prng: int is uniform over small bounds (chi-square)", () => {
  const prng = new Prng(123);
  const bins = 10;
  const n = 100_000;
  const counts = new Array(bins).fill(0);
  for (let i = 0; i < n; i++) counts[prng.int(bins)]++;
  const expected = n / bins;
  const chi2 = counts.reduce((s, c) => s + (c - expected) ** 2 / expected, 0);
  // 9 degrees of freedom: p = 0.001 at 27.9.
  assert.ok(chi2 < 27.9, `chi-square ${chi2} with counts ${counts}`);
});

Deno.test("prng: float, normal and chance have the right moments", () => {
  const prng = new Prng(77);
  const n = 50_000;
  let sum = 0;
  let min = 1;
  let max = 0;
  for (let i = 0; i < n; i++) {
    const x = prng.float();
    assert.ok(x >= 0 && x < 1);
    sum += x;
    min = Math.min(min, x);
    max = Math.max(max, x);
  }
  assert.ok(Math.abs(sum / n - 0.5) < 0.01, `mean ${sum / n}`);
  assert.ok(min < 0.001 && max > 0.999);

  let s = 0;
  let s2 = 0;
  for (let i = 0; i < n; i++) {
    const z = prng.normal(10, 2);
    s += z;
    s2 += z * z;
  }
  const mean = s / n;
  const sd = Math.sqrt(s2 / n - mean * mean);
  assert.ok(Math.abs(mean - 10) < 0.05, `normal mean ${mean}`);
  assert.ok(Math.abs(sd - 2) < 0.05, `normal sd ${sd}`);

  let hits = 0;
  for (let i = 0; i < n; i++) if (prng.chance(0.3)) hits++;
  assert.ok(Math.abs(hits / n - 0.3) < 0.01, `chance ${hits / n}`);
  assert.equal(prng.chance(0), false);
  assert.equal(prng.chance(1), true);
});

Deno.test("prng: bounds, ranges and helpers", () => {
  const prng = new Prng(5);
  for (let i = 0; i < 1000; i++) {
    const x = prng.int(2 ** 32);
    assert.ok(Number.isInteger(x) && x >= 0 && x < 2 ** 32);
    const y = prng.int(3_000_000_000);
    assert.ok(y >= 0 && y < 3_000_000_000);
    const z = prng.intBetween(-3, 3);
    assert.ok(z >= -3 && z <= 3);
    const u = prng.uniform(2, 4);
    assert.ok(u >= 2 && u < 4);
  }
  assert.equal(prng.int(1), 0);
  assert.throws(() => prng.int(0), RangeError);
  assert.throws(() => prng.int(1.5), RangeError);
  assert.throws(() => prng.int(2 ** 32 + 1), RangeError);
  assert.throws(() => prng.intBetween(3, 2), RangeError);
  assert.throws(() => prng.chance(1.1), RangeError);
  assert.throws(() => prng.chance(NaN), RangeError);
  assert.throws(() => prng.pick([]), RangeError);
  assert.throws(() => new Prng(-1), RangeError);
  assert.throws(() => new Prng(1.5), RangeError);
  assert.throws(() => new Prng(2 ** 53), RangeError);

  const items = Array.from({ length: 20 }, (_, i) => i);
  const shuffled = new Prng(8).shuffle([...items]);
  assert.deepEqual(shuffled, new Prng(8).shuffle([...items]));
  assert.notDeepEqual(shuffled, items);
  assert.deepEqual([...shuffled].sort((a, b) => a - b), items);
  const picks = new Set(
    Array.from({ length: 200 }, () => prng.pick(["a", "b", "c"])),
  );
  assert.deepEqual([...picks].sort(), ["a", "b", "c"]);

  const bytes = new Prng(4).fill(new Uint8Array(37));
  assert.deepEqual(bytes, new Prng(4).fill(new Uint8Array(37)));
  assert.ok(bytes.some((b) => b !== 0));
});
