import assert from "node:assert/strict";
import { Prng } from "../../sim/prng.ts";
import {
  checkLinearizable,
  type HistoryOperation,
} from "../../sim/linearizability.ts";
import {
  type ChannelInput,
  channelModel,
  type ChannelOutput,
  FencingError,
  FencingMonitor,
  type LockInput,
  lockModel,
  type LockOutput,
} from "./scenarios/_oracle_models.ts";
import type { Json } from "../../oracle/commands.ts";

type LockOp = HistoryOperation<LockInput, LockOutput>;
type ChannelOp = HistoryOperation<ChannelInput, ChannelOutput>;

const NEVER = Infinity;

/** An operation of `client`; one without an output never returned. */
function operation<I, O>(
  client: string,
  input: I,
  output: O | undefined,
  call: number,
  ret: number,
): HistoryOperation<I, O> {
  return {
    client,
    input,
    output,
    call,
    ret: output === undefined ? NEVER : ret,
  };
}

function acquire(
  client: string,
  token: number | undefined,
  call: number,
  ret: number,
  path = "/l",
): LockOp {
  const input: LockInput = { kind: "acquire", path, client };
  const output = token === undefined ? undefined : { token };
  return operation(client, input, output, call, ret);
}

function tryAcquire(
  client: string,
  output: LockOutput,
  call: number,
  ret: number,
  path = "/l",
): LockOp {
  const input: LockInput = { kind: "tryAcquire", path, client };
  return operation(client, input, output, call, ret);
}

function release(
  client: string,
  token: number,
  output: LockOutput | undefined,
  call: number,
  ret: number,
  path = "/l",
): LockOp {
  const input: LockInput = { kind: "release", path, client, token };
  return operation(client, input, output, call, ret);
}

function expire(
  client: string,
  call: number,
  ret: number,
  path?: string,
): LockOp {
  const input: LockInput = path === undefined
    ? { kind: "expire", client }
    : { kind: "expire", client, path };
  return operation(client, input, "ok", call, ret);
}

function check(history: LockOp[]): boolean | "unknown" {
  return checkLinearizable(history, lockModel).ok;
}

/** Checks `later` after a held the lock under `token` over [0, 5] and released it over [10, 15]. */
function checkAfterRelease(later: LockOp, token = 1): boolean | "unknown" {
  return check([
    acquire("a", token, 0, 5),
    release("a", token, "ok", 10, 15),
    later,
  ]);
}

Deno.test("lock model: two holders at once fail", () => {
  const history = [acquire("a", 1, 0, 5), acquire("b", 2, 10, 20)];
  const result = checkLinearizable(history, lockModel);
  assert(result.ok === false);
  assert.equal(result.stuck, history[1]);
  assert.match(result.explanation, /\[b\] acquire\(\/l\) -> \{"token":2\}/);
  // Also via try, and with overlapping windows that cannot be ordered apart.
  assert.equal(
    check([acquire("a", 1, 0, 5), tryAcquire("b", { token: 2 }, 6, 8)]),
    false,
  );
  assert.equal(
    check([
      acquire("a", 1, 0, 5),
      acquire("b", 2, 0, 5),
      release("a", 1, "ok", 10, 20),
    ]),
    false,
  );
});

Deno.test("lock model: a token going backwards fails", () => {
  // b's token after a released token 5: lower or equal tokens are not
  // fencing; gaps are fine: the token counter is shared by every lock.
  const cases: [number, boolean][] = [[3, false], [5, false], [9, true]];
  for (const [token, ok] of cases) {
    assert.equal(
      checkAfterRelease(acquire("b", token, 20, 30), 5),
      ok,
      `token ${token} after 5`,
    );
  }
});

Deno.test("lock model: a FIFO handoff on release and on expiry passes", () => {
  const history = [
    acquire("a", 1, 0, 2),
    acquire("b", 2, 3, 15), // waits, granted when a releases
    acquire("c", 3, 4, 25), // waits behind b
    release("a", 1, "ok", 10, 12),
    tryAcquire("d", { token: 0, holder: "b" }, 16, 17),
    release("b", 2, "ok", 20, 22),
    acquire("e", 4, 21, 45), // granted when c's session expires
    expire("c", 30, 40),
    release("c", 3, "not_holder", 41, 42),
  ];
  assert.equal(check(history), true);
  // The grant to e cannot come before c's expiry was possible.
  assert.equal(check(history.with(6, acquire("e", 4, 21, 29))), false);
});

Deno.test("lock model: release succeeds only for the holder under its token", () => {
  // By another client, under the wrong token, or answered not_holder to a.
  const wrong = [
    release("b", 1, "ok", 10, 15),
    release("a", 2, "ok", 10, 15),
    release("a", 1, "not_holder", 10, 15),
  ];
  for (const op of wrong) {
    assert.equal(
      check([acquire("a", 1, 0, 5), op]),
      false,
      JSON.stringify(op),
    );
  }
  assert.equal(
    checkAfterRelease(release("a", 1, "not_holder", 20, 25)),
    true,
  );
  // Withdrawing a queued request (token 0) never changes the holder.
  assert.equal(
    check([
      acquire("a", 1, 0, 5),
      release("b", 0, "ok", 10, 15),
      tryAcquire("c", { token: 0, holder: "a" }, 20, 25),
    ]),
    true,
  );
});

Deno.test("lock model: try answers busy only while someone else holds the lock", () => {
  assert.equal(check([tryAcquire("a", { token: 0 }, 0, 5)]), false);
  assert.equal(
    check([acquire("a", 1, 0, 5), tryAcquire("b", { token: 0 }, 10, 15)]),
    true,
  );
  assert.equal(
    check([
      acquire("a", 1, 0, 5),
      tryAcquire("b", { token: 0, holder: "c" }, 10, 15),
    ]),
    false,
    "the named holder must be the holder",
  );
  assert.equal(
    checkAfterRelease(tryAcquire("b", { token: 0 }, 20, 25)),
    false,
  );
  // Concurrent with the release: either answer is fine.
  for (const output of [{ token: 0 }, { token: 2 }]) {
    assert.equal(checkAfterRelease(tryAcquire("b", output, 12, 20)), true);
  }
});

Deno.test("lock model: expiry releases the lock and ends the session", () => {
  // Who asks for the lock after a's session expired.
  const next: [string, boolean, string][] = [
    ["b", true, "another session is granted the released lock"],
    ["a", false, "an expired session is never granted again"],
  ];
  for (const [client, ok, message] of next) {
    assert.equal(
      check([
        acquire("a", 1, 0, 5),
        expire("a", 10, 20),
        acquire(client, 2, 25, 30),
      ]),
      ok,
      message,
    );
  }
  // Which path a's expiry names.
  const paths: [string | undefined, boolean, string][] = [
    [undefined, true, "an expiry without a path applies to every path"],
    ["/x", false, "an expiry on /x leaves /y held"],
  ];
  for (const [path, ok, message] of paths) {
    assert.equal(
      check([
        acquire("a", 1, 0, 5, "/x"),
        acquire("a", 2, 0, 5, "/y"),
        expire("a", 10, 20, path),
        acquire("b", 3, 25, 30, "/x"),
        acquire("c", 4, 25, 30, "/y"),
      ]),
      ok,
      message,
    );
  }
});

Deno.test("lock model: a grant whose reply never arrived may hold the lock", () => {
  const lost = acquire("a", undefined, 0, NEVER);
  const heldByA = tryAcquire("b", { token: 0, holder: "a" }, 10, 15);
  assert.equal(check([lost, heldByA]), true);
  assert.equal(
    check([lost, acquire("b", 1, 10, 15)]),
    true,
    "or never have happened",
  );
  assert.equal(
    check([lost, heldByA, acquire("c", 3, 20, 25)]),
    false,
    "but then nobody else gets it until a lets go",
  );
});

Deno.test("lock model: inspect sees the holder and token", () => {
  const inspect = (output: LockOutput, call: number, ret: number): LockOp => {
    const input: LockInput = { kind: "inspect", path: "/l", client: "z" };
    return operation("z", input, output, call, ret);
  };
  const cases: [LockOutput, boolean][] = [
    [{ holder: "a", token: 4 }, true],
    [{ holder: null, token: 0 }, false],
    [{ holder: "a", token: 3 }, false],
  ];
  for (const [output, ok] of cases) {
    assert.equal(
      check([acquire("a", 4, 0, 5), inspect(output, 6, 7)]),
      ok,
      JSON.stringify(output),
    );
  }
});

function append(
  client: string,
  data: Json,
  seq: number | undefined,
  rev: number,
  call: number,
  ret: number,
  path = "/c",
): ChannelOp {
  const input: ChannelInput = { op: "append", path, data };
  const output = seq === undefined ? undefined : { seq, rev };
  return operation(client, input, output, call, ret);
}

function read(
  client: string,
  from: number,
  data: Json[],
  call: number,
  ret: number,
  options: { limit?: number; revs?: number[]; path?: string } = {},
): ChannelOp {
  const path = options.path ?? "/c";
  const events = data.map((d, i) => ({
    path,
    seq: from + i,
    rev: options.revs?.[i] ?? from + i,
    data: d,
  }));
  const input: ChannelInput = {
    op: "read",
    path,
    from,
    limit: options.limit ?? 100,
  };
  const output = { events, first: 1, next: from + events.length };
  return operation(client, input, output, call, ret);
}

function checkChannel(history: ChannelOp[]): boolean | "unknown" {
  return checkLinearizable(history, channelModel).ok;
}

Deno.test("channel model: sequence numbers without gaps or duplicates pass", () => {
  assert.equal(
    checkChannel([
      append("a", "x", 1, 1, 0, 10),
      append("b", "y", 2, 2, 20, 30),
      read("c", 1, ["x", "y"], 40, 50),
      read("c", 2, ["y"], 60, 70),
      read("c", 3, [], 80, 90),
      read("c", 1, ["x"], 80, 90, { limit: 1 }),
    ]),
    true,
  );
});

Deno.test("channel model: a gap or a duplicate sequence number fails", () => {
  // a appends "x" over [0, 10] and b appends "y" from `bCall` to 30, each
  // with its [seq, rev].
  const cases: [number[], number[], number, boolean, string][] = [
    [[1, 1], [3, 2], 20, false, "gap"],
    [[1, 1], [1, 2], 5, false, "duplicate, even when concurrent"],
    [[2, 2], [1, 1], 5, true, "concurrent appends may be ordered either way"],
    [[1, 2], [2, 1], 20, false, "revisions go backwards"],
  ];
  for (const [a, b, bCall, ok, message] of cases) {
    assert.equal(
      checkChannel([
        append("a", "x", a[0], a[1], 0, 10),
        append("b", "y", b[0], b[1], bCall, 30),
      ]),
      ok,
      message,
    );
  }
});

Deno.test("channel model: a read missing an acknowledged append fails", () => {
  const appended = append("a", "x", 1, 1, 0, 10);
  assert.equal(checkChannel([appended, read("b", 1, [], 20, 30)]), false);
  assert.equal(
    checkChannel([appended, read("b", 1, [], 5, 30)]),
    true,
    "a read concurrent with the append may miss it",
  );
  assert.equal(
    checkChannel([appended, read("b", 1, ["z"], 20, 30)]),
    false,
    "wrong data",
  );
  assert.equal(
    checkChannel([appended, read("b", 1, ["x"], 20, 30, { revs: [7] })]),
    false,
    "wrong revision",
  );
  // Seeing an append, then not seeing it, is not linearizable.
  assert.equal(
    checkChannel([
      append("a", "x", 1, 1, 0, 100),
      read("b", 1, ["x"], 10, 20),
      read("c", 1, [], 30, 40),
    ]),
    false,
  );
});

Deno.test("channel model: an append whose reply never arrived may or may not be in the channel", () => {
  const lost = append("a", { v: 1, w: [2] }, undefined, 0, 0, NEVER);
  assert.equal(checkChannel([lost, read("b", 1, [], 10, 20)]), true);
  assert.equal(
    checkChannel([lost, read("b", 1, [{ w: [2], v: 1 }], 10, 20)]),
    true,
    "object key order does not matter",
  );
  // Once a read saw its revision, it is fixed.
  assert.equal(
    checkChannel([
      lost,
      read("b", 1, [{ v: 1, w: [2] }], 10, 20, { revs: [5] }),
      read("c", 1, [{ v: 1, w: [2] }], 30, 40, { revs: [6] }),
    ]),
    false,
  );
  assert.equal(
    checkChannel([
      lost,
      read("b", 1, [{ v: 1, w: [2] }], 10, 20, { revs: [5] }),
      append("c", "y", 2, 4, 30, 40),
    ]),
    false,
    "a later append's revision must exceed the one learned",
  );
});

Deno.test("channel model: errors have no effect and paths are independent", () => {
  assert.equal(
    checkChannel([
      {
        client: "a",
        input: { op: "append", path: "/c", data: 1 },
        output: { error: "session_expired" },
        call: 0,
        ret: 5,
      },
      append("b", "x", 1, 1, 10, 20),
      append("b", "y", 1, 2, 30, 40, "/d"),
      read("c", 1, ["y"], 50, 60, { path: "/d", revs: [2] }),
    ]),
    true,
  );
});

/** A real channel store driven by concurrent clients; each operation takes effect inside its window. */
function randomChannelHistory(seed: number, ops: number): ChannelOp[] {
  const prng = new Prng(seed);
  const clients = 8;
  const clock = new Array(clients).fill(0);
  const planned: { op: ChannelOp; at: number }[] = [];
  for (let i = 0; i < ops; i++) {
    const c = i % clients;
    const call = clock[c] + prng.int(5);
    const ret = call + 1 + prng.int(30);
    clock[c] = ret;
    const path = `/c${prng.int(3)}`;
    const input: ChannelInput = prng.int(3) === 0
      ? { op: "read", path, from: 1 + prng.int(50), limit: 1 + prng.int(5) }
      : { op: "append", path, data: { i } };
    planned.push({
      op: { client: `c${c}`, input, output: undefined, call, ret },
      at: call + prng.float() * (ret - call),
    });
  }
  const channels = new Map<
    string,
    { seq: number; rev: number; data: Json }[]
  >();
  let rev = 0;
  const order = planned.map((p, i) => ({ ...p, i })).sort((a, b) =>
    a.at - b.at || a.i - b.i
  );
  const outputs: ChannelOutput[] = [];
  for (const { op, i } of order) {
    const input = op.input;
    const events = channels.get(input.path) ?? [];
    channels.set(input.path, events);
    if (input.op === "append") {
      const event = { seq: events.length + 1, rev: ++rev, data: input.data };
      events.push(event);
      outputs[i] = { seq: event.seq, rev: event.rev };
    } else {
      const slice = events.slice(input.from - 1, input.from - 1 + input.limit);
      outputs[i] = {
        events: slice,
        first: 1,
        next: input.from + slice.length,
      };
    }
  }
  return planned.map((p, i) => ({ ...p.op, output: outputs[i] }));
}

Deno.test("channel model: 2,000 random operations of 8 clients on 3 channels pass quickly", () => {
  const history = randomChannelHistory(11, 2000);
  const start = performance.now();
  const result = checkLinearizable(history, channelModel);
  const ms = performance.now() - start;
  assert.equal(result.ok, true);
  assert(ms < 2000, `took ${ms.toFixed(0)} ms`);
  // Swap the data of two events seen by a read: caught.
  const i = history.findIndex((op) =>
    op.output !== undefined && "events" in op.output &&
    op.output.events.length >= 2
  );
  const output = history[i].output;
  assert(output !== undefined && "events" in output);
  const [e0, e1] = output.events;
  const swapped: ChannelOp = {
    ...history[i],
    output: {
      ...output,
      events: [{ ...e0, data: e1.data }, { ...e1, data: e0.data }],
    },
  };
  assert.equal(
    checkLinearizable(history.with(i, swapped), channelModel).ok,
    false,
  );
});

Deno.test("fencing monitor: tokens must grow per path; re-reports are fine", () => {
  const monitor = new FencingMonitor();
  monitor.grant("/a", 1, "s1");
  monitor.grant("/b", 2, "s2");
  monitor.grant("/a", 3, "s3");
  monitor.grant("/a", 1, "s1"); // a lagging replica applies the old grant
  assert.equal(monitor.latest("/a"), 3);
  assert.equal(monitor.latest("/c"), 0);
  assert.equal(monitor.holderOf("/a", 1), "s1");
  assert.equal(monitor.grants, 3);
  assert.throws(
    () => monitor.grant("/a", 2, "s4"),
    (e: unknown) =>
      e instanceof FencingError && e.path === "/a" && e.token === 2 &&
      e.previous === 3 && /not greater than the previous grant's token 3/
        .test(e.message),
  );
  assert.throws(() => monitor.grant("/a", 3, "s9"), /already granted to "s3"/);
  assert.throws(() => monitor.grant("/a", 0, "s1"), RangeError);
  assert.equal(monitor.grants, 3);
});
