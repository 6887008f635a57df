import assert from "node:assert/strict";
import type { Clock, TimerId } from "../../runtime/clock.ts";
import type { LogLevel } from "../../runtime/log.ts";
import type { Delegation, OracleTree } from "../../oracle/commands.ts";
import type { OracleTreeUpstream } from "../../oracle/replica.ts";
import { TreeSync, type TreeSyncHost } from "../../oracle/_tree_sync.ts";

/** Virtual time: timers fire only when the test advances it. */
class ManualClock implements Clock {
  #now = 0;
  #timers: { at: number; id: object; callback: () => void }[] = [];

  now(): number {
    return this.#now;
  }

  setTimer(delayMs: number, callback: () => void): TimerId {
    const id = {};
    this.#timers.push({ at: this.#now + delayMs, id, callback });
    return id;
  }

  clearTimer(id: TimerId): void {
    this.#timers = this.#timers.filter((t) => t.id !== id);
  }

  defer(callback: () => void): void {
    this.setTimer(0, callback);
  }

  get pending(): number {
    return this.#timers.length;
  }

  /** Moves time forward, firing due timers in order and letting promises settle after each. */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms;
    await settled();
    for (;;) {
      this.#timers.sort((a, b) => a.at - b.at);
      const next = this.#timers[0];
      if (next === undefined || next.at > end) break;
      this.#timers.shift();
      this.#now = next.at;
      next.callback();
      await settled();
    }
    this.#now = end;
  }
}

/** Lets every pending promise continuation run. */
function settled(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** The parent's last fencing token, in every tree answer. */
const PARENT_TOKENS = 41;

const MINE: Delegation = {
  prefix: "/a",
  group: "child",
  replicas: { c: "h:1" },
};

/** A host that records proposals and never refuses one (no leadership guard of its own). */
function host(clock: ManualClock) {
  const h = {
    applied: 0,
    owned: [] as string[],
    live: [] as string[],
    adopts: [] as string[][],
    adoptTokens: [] as number[],
    expires: [] as string[][],
    logs: [] as [LogLevel, string][],
  };
  const sync: TreeSyncHost = {
    id: "r1",
    clock,
    logger: { log: (level, event) => h.logs.push([level, event]) },
    counters: { treeSyncFailures: 0 },
    appliedIndex: () => h.applied,
    ownedPrefixes: () => h.owned,
    liveSessions: () => h.live,
    adopt: (prefixes, tokens) => {
      h.adopts.push(prefixes);
      h.adoptTokens.push(tokens);
      return h.applied + 1;
    },
    expire: (sessions) => {
      h.expires.push(sessions);
    },
  };
  return { h, sync };
}

/** An upstream whose answers the test gives by hand, one call at a time. */
class ScriptedUpstream implements OracleTreeUpstream {
  readonly calls: { kind: string; arg?: readonly string[] }[] = [];
  closed = 0;
  #waiting: {
    resolve: (value: never) => void;
    reject: (error: Error) => void;
  }[] = [];

  /** The parent's tree; `answer` gives its delegations (its last token is always {@linkcode PARENT_TOKENS}). */
  tree(): Promise<OracleTree> {
    this.calls.push({ kind: "delegations" });
    return new Promise((resolve, reject) =>
      this.#waiting.push({
        resolve: ((delegations: Delegation[]) =>
          resolve({
            owns: ["/"],
            delegations,
            tokens: PARENT_TOKENS,
          })) as (v: never) => void,
        reject,
      })
    );
  }

  endedSessions(sessions: readonly string[]): Promise<readonly string[]> {
    this.calls.push({ kind: "ended", arg: sessions });
    return new Promise((resolve, reject) =>
      this.#waiting.push({ resolve: resolve as (v: never) => void, reject })
    );
  }

  close(): Promise<void> {
    this.closed++;
    return Promise.resolve();
  }

  answer(value: unknown): void {
    const next = this.#waiting.shift();
    assert.ok(next !== undefined, "no call is waiting");
    next.resolve(value as never);
  }

  fail(): void {
    this.#waiting.shift()!.reject(new Error("root unreachable"));
  }
}

function setup(options: { syncMs?: number } = {}) {
  const clock = new ManualClock();
  const { h, sync: hostSide } = host(clock);
  const upstreams: ScriptedUpstream[] = [];
  let connectFails = 0;
  const connects: number[] = [];
  const sync = new TreeSync({
    name: "child",
    syncMs: options.syncMs ?? 100,
    connect: () => {
      connects.push(clock.now());
      if (connectFails > 0) {
        connectFails--;
        return Promise.reject(new Error("refused"));
      }
      const up = new ScriptedUpstream();
      upstreams.push(up);
      return Promise.resolve(up);
    },
  }, hostSide);
  return {
    clock,
    h,
    hostSide,
    sync,
    upstreams,
    connects,
    failConnects: (n: number) => connectFails = n,
  };
}

Deno.test("tree sync: one sync at a time; adopts once until the adoption applies", async () => {
  const { clock, h, sync, upstreams } = setup();
  sync.start();
  await clock.advance(0);
  const up = upstreams[0];
  await clock.advance(1_000);
  assert.deepEqual(up.calls, [{ kind: "delegations" }], "a single call waits");
  up.answer([MINE, { ...MINE, prefix: "/b", group: "other" }]);
  await clock.advance(0);
  assert.deepEqual(h.adopts, [["/a"]]);
  assert.deepEqual(
    h.adoptTokens,
    [PARENT_TOKENS],
    "tokens go on above the parent's",
  );
  assert.deepEqual(up.calls.length, 1, "no live session: nothing to ask");
  await clock.advance(100);
  up.answer([MINE]);
  await clock.advance(100);
  assert.deepEqual(h.adopts, [["/a"]], "not proposed again while in flight");
  h.applied = 1; // applied, but the state machine skipped it: retry
  up.answer([MINE]);
  await clock.advance(0);
  assert.deepEqual(h.adopts, [["/a"], ["/a"]]);
  h.applied = 2;
  h.owned = ["/a"];
  await clock.advance(100);
  up.answer([MINE, { ...MINE, prefix: "/a/b" }]);
  await clock.advance(0);
  assert.equal(h.adopts.length, 2, "owned, or under an owned prefix");
  assert.equal(clock.pending, 1, "the next sync is due");
  sync.stop();
  assert.equal(clock.pending, 0);
});

Deno.test("tree sync: live sessions are checked in rotating chunks of 1,000", async () => {
  const { clock, h, sync, upstreams } = setup();
  h.live = Array.from({ length: 2_500 }, (_, i) => `s${i}`);
  sync.start();
  await clock.advance(0);
  const up = upstreams[0];
  const sizes: [string, number][] = [];
  for (let round = 0; round < 4; round++) {
    up.answer([]);
    await clock.advance(0);
    const asked = up.calls.at(-1)!.arg!;
    sizes.push([asked[0], asked.length]);
    up.answer(round === 0 ? ["s5", "s1500", "x"] : []);
    await clock.advance(100);
  }
  assert.deepEqual(sizes, [["s0", 1_000], ["s1000", 1_000], ["s2000", 500], [
    "s0",
    1_000,
  ]]);
  assert.deepEqual(h.expires, [["s5"]], "only ids it asked about");
  sync.stop();
});

Deno.test("tree sync: a failure closes the upstream, logs once, and reconnects with a doubling backoff", async () => {
  const { clock, h, hostSide, sync, upstreams, connects, failConnects } =
    setup();
  sync.start();
  await clock.advance(0);
  upstreams[0].fail();
  await clock.advance(0);
  assert.equal(upstreams[0].closed, 1);
  failConnects(4);
  await clock.advance(10_000);
  assert.deepEqual(connects, [0, 200, 600, 1_400, 2_200, 3_000]);
  assert.equal(hostSide.counters.treeSyncFailures, 5);
  assert.deepEqual(
    h.logs.filter(([level]) => level === "warn").map(([, event]) => event),
    ["oracle.tree.sync_failed"],
  );
  const up = upstreams[1];
  up.answer([MINE]);
  await clock.advance(0);
  assert.deepEqual(h.adopts, [["/a"]]);
  assert.ok(h.logs.some(([, event]) => event === "oracle.tree.sync_recovered"));
  await clock.advance(100);
  assert.equal(up.calls.length, 2, "back to the normal period");
  sync.stop();
});

Deno.test("tree sync: after stop, late answers propose nothing and no timer is left", async (t) => {
  await t.step("a late delegations answer", async () => {
    const { clock, h, sync, upstreams } = setup();
    sync.start();
    await clock.advance(0);
    sync.stop();
    assert.equal(clock.pending, 0);
    upstreams[0].answer([MINE]);
    await clock.advance(1_000);
    assert.deepEqual(h.adopts, []);
    assert.equal(upstreams[0].closed, 1);
    assert.equal(upstreams[0].calls.length, 1);
  });

  await t.step("a late ended-sessions answer", async () => {
    const { clock, h, sync, upstreams } = setup();
    h.live = ["s1"];
    sync.start();
    await clock.advance(0);
    upstreams[0].answer([]);
    await clock.advance(0);
    sync.stop();
    upstreams[0].answer(["s1"]);
    await clock.advance(1_000);
    assert.deepEqual(h.expires, []);
  });

  await t.step(
    "a connection that completes after stop is closed at once",
    async () => {
      const { clock, sync, upstreams, connects } = setup();
      sync.start();
      sync.stop();
      await clock.advance(1_000);
      assert.equal(connects.length, 1);
      assert.equal(upstreams[0].closed, 1);
      assert.equal(upstreams[0].calls.length, 0);
    },
  );

  await t.step(
    "leading again starts a fresh sync; the old one's answer is ignored",
    async () => {
      const { clock, h, sync, upstreams } = setup();
      sync.start();
      await clock.advance(0);
      sync.stop();
      sync.start();
      await clock.advance(0);
      upstreams[0].answer([MINE]);
      await clock.advance(0);
      assert.deepEqual(h.adopts, []);
      upstreams[1].answer([MINE]);
      await clock.advance(0);
      assert.deepEqual(h.adopts, [["/a"]]);
      sync.stop();
    },
  );
});
