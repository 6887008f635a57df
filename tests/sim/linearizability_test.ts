import assert from "node:assert/strict";
import { Prng } from "../../sim/prng.ts";
import {
  checkLinearizable,
  type HistoryOperation,
  type LinearizabilityModel,
} from "../../sim/linearizability.ts";

// A key-value store of registers, partitioned by key (Porcupine's kv model).
type KvInput =
  | { readonly op: "put"; readonly key: string; readonly value: number }
  | { readonly op: "get"; readonly key: string };
type KvOutput = number | null;
type KvOp = HistoryOperation<KvInput, KvOutput>;

const register: LinearizabilityModel<number, KvInput, KvOutput> = {
  init: () => 0,
  step(state, input, output) {
    if (input.op === "put") return input.value;
    return output === undefined || output === state ? state : undefined;
  },
  key: (state) => String(state),
  describe: (op) =>
    op.input.op === "put"
      ? `put(${op.input.key}, ${op.input.value})`
      : `get(${op.input.key}) -> ${op.output ?? "?"}`,
};

const kv: LinearizabilityModel<number, KvInput, KvOutput> = {
  ...register,
  partition(ops) {
    const byKey = new Map<string, KvOp[]>();
    for (const op of ops) {
      const list = byKey.get(op.input.key) ?? [];
      list.push(op);
      byKey.set(op.input.key, list);
    }
    return [...byKey.keys()].sort().map((k) => byKey.get(k)!);
  },
};

function put(
  client: string,
  value: number,
  call: number,
  ret: number,
  key = "x",
): KvOp {
  return {
    client,
    input: { op: "put", key, value },
    output: ret === Infinity ? undefined : null,
    call,
    ret,
  };
}

function get(
  client: string,
  value: number | undefined,
  call: number,
  ret: number,
  key = "x",
): KvOp {
  return { client, input: { op: "get", key }, output: value, call, ret };
}

Deno.test("linearizability: a sequential history that follows the model passes", () => {
  const result = checkLinearizable([
    put("a", 1, 0, 10),
    get("a", 1, 20, 30),
    put("b", 2, 40, 50),
    get("c", 2, 60, 70),
  ], register);
  assert.equal(result.ok, true);
  assert.deepEqual(checkLinearizable([], register), {
    ok: true,
    partitions: 1,
    steps: 0,
  });
});

Deno.test("linearizability: a stale read after a completed write fails", () => {
  const result = checkLinearizable([
    put("a", 1, 0, 10),
    get("b", 0, 20, 30),
  ], register);
  assert.equal(result.ok, false);
  assert(result.ok === false);
  assert.equal(result.stuck?.client, "b");
  assert.deepEqual(result.prefix.map((op) => op.client), ["a"]);
});

Deno.test("linearizability: overlapping operations may linearize in either order", () => {
  // Porcupine's first kv test: a put overlapping two gets seeing old and new.
  assert.equal(
    checkLinearizable([
      put("a", 100, 0, 100),
      get("b", 100, 25, 75),
      get("c", 0, 30, 60),
    ], register).ok,
    true,
  );
  for (const seen of [0, 1]) {
    assert.equal(
      checkLinearizable([put("a", 1, 0, 10), get("b", seen, 5, 15)], register)
        .ok,
      true,
      `the read saw ${seen}`,
    );
  }
  // Equal times are concurrent: a return at 10 does not precede a call at 10.
  assert.equal(
    checkLinearizable([put("a", 1, 0, 10), get("b", 0, 10, 20)], register).ok,
    true,
  );
});

Deno.test("linearizability: an operation that never returned may be applied or ignored", async (t) => {
  await t.step("applied: a later read sees its value", () => {
    assert.equal(
      checkLinearizable([
        put("a", 1, 0, Infinity),
        get("b", 1, 50, 60),
      ], register).ok,
      true,
    );
  });
  await t.step("ignored: later reads never see it", () => {
    assert.equal(
      checkLinearizable([
        put("a", 1, 0, Infinity),
        get("b", 0, 50, 60),
        get("b", 0, 70, 80),
      ], register).ok,
      true,
    );
  });
  await t.step("but not before its call", () => {
    assert.equal(
      checkLinearizable([
        get("b", 1, 0, 10),
        put("a", 1, 20, Infinity),
      ], register).ok,
      false,
    );
  });
  await t.step("nor undone once seen", () => {
    assert.equal(
      checkLinearizable([
        put("a", 1, 0, Infinity),
        get("b", 1, 50, 60),
        get("b", 0, 70, 80),
      ], register).ok,
      false,
    );
  });
  await t.step("a read that never returned constrains nothing", () => {
    assert.equal(
      checkLinearizable([
        put("a", 1, 0, 10),
        get("b", undefined, 20, Infinity),
      ], register).ok,
      true,
    );
  });
});

Deno.test("linearizability: a non-linearizable 3-client history fails with an explanation", () => {
  // b sees the write by 20, so it took effect by then; c reads 0 after 30.
  const history = [
    put("a", 1, 0, 100),
    get("b", 1, 10, 20),
    get("c", 0, 30, 40),
  ];
  const result = checkLinearizable(history, register);
  assert(result.ok === false);
  assert.equal(result.partition, 0);
  assert.equal(result.stuck, history[2]);
  assert.deepEqual(result.prefix, [history[0], history[1]]);
  const text = result.explanation;
  assert.match(text, /not linearizable/);
  assert.match(text, /Longest linearizable prefix: 2 of 3 operations/);
  assert.match(text, /1\. \[a\] put\(x, 1\) \(called 0, returned 100\)/);
  assert.match(text, /2\. \[b\] get\(x\) -> 1/);
  assert.match(text, /State after it: 1/);
  assert.match(
    text,
    /could not be linearized next: \[c\] get\(x\) -> 0 \(called 30, returned 40\)/,
  );
  assert.match(text, /impossible in this state/);
});

Deno.test("linearizability: parts are checked separately and the failing one is named", () => {
  const history = [
    put("a", 1, 0, 10, "k1"),
    put("a", 2, 0, 10, "k2"),
    get("b", 1, 20, 30, "k1"),
    get("b", 0, 20, 30, "k2"),
  ];
  const result = checkLinearizable(history, kv);
  assert(result.ok === false);
  assert.equal(result.partition, 1);
  assert.deepEqual(result.operations, [history[1], history[3]]);
  assert.match(result.explanation, /part 1 of 2/);
  assert.equal(
    checkLinearizable(history.slice(0, 3), kv).ok,
    true,
  );
});

Deno.test("linearizability: running out of steps answers unknown, never a pass", () => {
  // Many concurrent writes then a read of a value nobody wrote: the search
  // must try every order before failing.
  const history: KvOp[] = [];
  for (let i = 0; i < 12; i++) history.push(put(`c${i}`, i + 1, 0, 100));
  history.push(get("r", 99, 200, 210));
  const bounded = checkLinearizable(history, register, { maxSteps: 50 });
  assert.equal(bounded.ok, "unknown");
  assert(bounded.ok === "unknown");
  assert.match(bounded.reason, /exceeded 50 steps/);
  assert.equal(bounded.steps, 51);
  // With enough steps, the memoized search settles it.
  assert.equal(checkLinearizable(history, register).ok, false);
  // A failing part beats an unknown one.
  const mixed = checkLinearizable(
    [
      ...history.map((op) => ({ ...op, input: { ...op.input, key: "a" } })),
      put("z", 1, 0, 10, "b"),
      get("z", 0, 20, 30, "b"),
    ],
    kv,
    { maxSteps: 50 },
  );
  assert.equal(mixed.ok, false);
});

Deno.test("linearizability: invalid histories and options are rejected", () => {
  assert.throws(
    () => checkLinearizable([put("a", 1, 10, 5)], register),
    RangeError,
  );
  assert.throws(
    () => checkLinearizable([put("a", 1, NaN, 5)], register),
    RangeError,
  );
  assert.throws(
    () => checkLinearizable([], register, { maxSteps: 0 }),
    /Invalid maxSteps 0/,
  );
});

/**
 * Runs `ops` operations of `clients` concurrent clients against a real
 * atomic key-value store: each takes effect at a random point inside its
 * call/return window; about 1% never return (and take effect or not).
 */
function randomHistory(
  seed: number,
  ops: number,
  keys: number,
  clients: number,
): KvOp[] {
  const prng = new Prng(seed);
  type Planned = {
    client: string;
    input: KvInput;
    call: number;
    ret: number;
    at: number;
    lost: boolean;
  };
  const planned: Planned[] = [];
  const clock = Array.from({ length: clients }, () => prng.int(10));
  let value = 0;
  for (let i = 0; i < ops; i++) {
    const c = i % clients;
    const call = clock[c] + prng.int(5);
    const ret = call + 1 + prng.int(30);
    clock[c] = ret;
    const key = `k${prng.int(keys)}`;
    const input: KvInput = prng.int(2) === 0
      ? { op: "put", key, value: ++value % 5 }
      : { op: "get", key };
    const lost = prng.int(100) === 0;
    planned.push({
      client: `c${c}`,
      input,
      call,
      ret,
      at: call + prng.float() * (ret - call),
      lost: lost && prng.int(2) === 0, // lost and never took effect
    });
    if (lost) planned[planned.length - 1].ret = Infinity;
  }
  const store = new Map<string, number>();
  const history: KvOp[] = [];
  const byPoint = planned.map((p, i) => ({ p, i })).sort((a, b) =>
    a.p.at - b.p.at || a.i - b.i
  );
  const outputs = new Map<number, KvOutput>();
  for (const { p, i } of byPoint) {
    if (p.lost) continue;
    if (p.input.op === "put") {
      store.set(p.input.key, p.input.value);
      outputs.set(i, null);
    } else {
      outputs.set(i, store.get(p.input.key) ?? 0);
    }
  }
  planned.forEach((p, i) => {
    history.push({
      client: p.client,
      input: p.input,
      output: p.ret === Infinity ? undefined : outputs.get(i),
      call: p.call,
      ret: p.ret,
    });
  });
  return history;
}

Deno.test("linearizability: 2,000 random operations on 10 keys with 8 clients check in under 2 s", () => {
  for (const seed of [1, 2, 3]) {
    const history = randomHistory(seed, 2000, 10, 8);
    const start = performance.now();
    const result = checkLinearizable(history, kv);
    const ms = performance.now() - start;
    assert.equal(result.ok, true, `seed ${seed}`);
    assert(ms < 2000, `seed ${seed} took ${ms.toFixed(0)} ms`);
  }
});

Deno.test("linearizability: random histories with one corrupted read fail", () => {
  for (const seed of [4, 5, 6]) {
    const history = randomHistory(seed, 400, 2, 8);
    // Corrupt one completed read to a value no put ever wrote.
    const i = history.findIndex((op, j) =>
      j > 200 && op.input.op === "get" && op.output !== undefined
    );
    const corrupted = history.with(i, { ...history[i], output: 77 });
    const result = checkLinearizable(corrupted, kv);
    assert.equal(result.ok, false, `seed ${seed}`);
  }
});

Deno.test("linearizability: the answer and explanation are deterministic", () => {
  const history = randomHistory(9, 300, 1, 6);
  const j = history.findIndex((op, k) =>
    k > 100 && op.input.op === "get" && op.output !== undefined
  );
  const corrupted = history.with(j, { ...history[j], output: 42 });
  const a = checkLinearizable(corrupted, register);
  const b = checkLinearizable(corrupted, register);
  assert.deepEqual(a, b);
});
