import assert from "node:assert/strict";
import { Prng } from "../../sim/mod.ts";
import {
  checkCausal,
  checkFifo,
  checkGbcast,
  checkGroupHistory,
  checkIntegrity,
  checkLiveness,
  checkStateTransfer,
  checkTotalOrder,
  checkViewAgreement,
  checkViewSynchrony,
} from "./scenarios/_group_checks.ts";
import {
  GroupRecorder,
  type MessageRef,
  type Strategy,
} from "./scenarios/_group_history.ts";

/** Builds a history step by step through the recorder. */
class Script {
  #t = 0;
  readonly failures: string[] = [];
  readonly recorder: GroupRecorder = new GroupRecorder({
    now: () => this.#t++,
    onFailure: (message) => this.failures.push(message),
  });

  get history() {
    return this.recorder.history;
  }

  /** `installers` (default: every member) install view `viewId`. */
  view(viewId: number, members: string[], installers = members): this {
    for (const m of installers) this.recorder.view(m, { viewId, members });
    return this;
  }

  /** `sender` sends its message number `n`. */
  send(
    sender: string,
    n: number,
    strategy: Strategy,
    viewId: number,
  ): MessageRef {
    const m = { id: `${sender}:${n}`, sender, strategy, viewId };
    this.recorder.sent(m);
    return m;
  }

  /** Each of `members` delivers `messages`, in order. */
  deliver(members: string[], ...messages: MessageRef[]): this {
    for (const member of members) {
      for (const m of messages) this.recorder.delivered(member, m);
    }
    return this;
  }

  state(members: string[], viewId: number, hash: string): this {
    for (const m of members) this.recorder.state(m, { viewId, hash });
    return this;
  }
}

const CHECKS = {
  checkViewAgreement,
  checkViewSynchrony,
  checkIntegrity,
  checkFifo,
  checkCausal,
  checkTotalOrder,
  checkGbcast,
  checkStateTransfer,
  checkLiveness,
};

function assertAllPass(s: Script): void {
  assert.deepEqual(s.failures, []);
  assert.equal(checkGroupHistory(s.history, { settled: true }), undefined);
  for (const [name, check] of Object.entries(CHECKS)) {
    assert.equal(check(s.history), undefined, name);
  }
}

/**
 * a, b, c in view 1 with every strategy; c sends c:2 and crashes (c:2 is
 * delivered by nobody, or by both survivors); view 2 is a, b; d joins in
 * view 3 with a's and b's state; the group settles in view 3.
 */
function crashAndJoin(survivorsGetLast: boolean): Script {
  const s = new Script();
  const abc = ["a", "b", "c"];
  s.view(1, abc);
  s.deliver(abc, s.send("a", 1, "fbcast", 1));
  s.deliver(abc, s.send("b", 1, "cbcast", 1));
  s.deliver(["c", "a", "b"], s.send("c", 1, "cbcast", 1));
  const [a2, b2] = [s.send("a", 2, "abcast", 1), s.send("b", 2, "abcast", 1)];
  s.deliver(abc, a2, b2);
  s.deliver(abc, s.send("a", 3, "gbcast", 1));
  const c2 = s.send("c", 2, "fbcast", 1);
  s.recorder.crashed("c");
  if (survivorsGetLast) s.deliver(["a", "b"], c2);
  s.view(2, ["a", "b"]);
  s.deliver(["b", "a"], s.send("a", 4, "cbcast", 2));
  s.view(3, ["a", "b", "d"]).state(["a", "b", "d"], 3, "h3");
  s.deliver(["a", "b", "d"], s.send("d", 1, "abcast", 3));
  s.deliver(["a", "b", "d"], s.send("b", 3, "gbcast", 3));
  return s;
}

Deno.test("group checks pass a history with crashes mid-multicast and a join", async (t) => {
  await t.step("a crashed sender's last message delivered by nobody", () => {
    assertAllPass(crashAndJoin(false));
  });
  await t.step(
    "a crashed sender's last message delivered by every survivor",
    () => {
      assertAllPass(crashAndJoin(true));
    },
  );
  await t.step(
    "a crashed sender's last messages delivered by some, in prefixes",
    () => {
      const s = new Script().view(1, ["a", "b", "c"]);
      const [a1, a2, a3] = [1, 2, 3].map((n) => s.send("a", n, "fbcast", 1));
      s.deliver(["a", "b"], a1, a2, a3).deliver(["c"], a1);
      s.recorder.crashed("a");
      s.recorder.crashed("b");
      s.view(2, ["c"]);
      assertAllPass(s);
    },
  );
});

Deno.test("view agreement catches disagreeing lists, order, outsiders, returns and life after a crash", async (t) => {
  await t.step("two members see different member lists for one view", () => {
    const s = new Script().view(1, ["a", "b"], ["a"]);
    s.recorder.view("b", { viewId: 1, members: ["b", "a"] });
    const failure = checkViewAgreement(s.history);
    assert.match(
      failure!,
      /^view agreement: b installed view 1 as \[b, a\] but a installed it as \[a, b\]/,
    );
    assert.deepEqual(s.failures, [failure]);
  });
  await t.step("views installed out of order", () => {
    const s = new Script().view(2, ["a"]).view(1, ["a"]);
    assert.match(
      checkViewAgreement(s.history)!,
      /a installed view 1 after view 2: views are installed in increasing order/,
    );
  });
  await t.step("a member installs a view it is not in", () => {
    const s = new Script().view(1, ["a"], ["a", "b"]);
    assert.match(
      checkViewAgreement(s.history)!,
      /b installed view 1 \[a\] without being a member of it/,
    );
  });
  await t.step("an excluded member comes back under the same name", () => {
    const s = new Script().view(1, ["a", "b", "c"]).view(2, ["a", "b"]);
    s.view(3, ["a", "b", "c"], ["a", "b"]);
    assert.match(
      checkViewAgreement(s.history)!,
      /c was in view 1, not in view 2, and is back in view 3/,
    );
  });
  await t.step("a crashed member records a delivery", () => {
    const s = new Script().view(1, ["a"]);
    const m = s.send("a", 1, "fbcast", 1);
    s.recorder.crashed("a");
    s.deliver(["a"], m);
    assert.match(
      checkViewAgreement(s.history)!,
      /a recorded a "deliver" after it crashed/,
    );
  });
});

Deno.test("view synchrony catches different sets between the same views, skipped views and deliveries outside their view", async (t) => {
  await t.step("two members move from view 1 to 2 with different sets", () => {
    const s = new Script().view(1, ["a", "b"]);
    s.deliver(["a"], s.send("a", 1, "fbcast", 1));
    s.view(2, ["a", "b"]);
    assert.match(
      checkViewSynchrony(s.history)!,
      /^view synchrony: b and a both went from view 1 to view 2, but a delivered a:1 in view 1 and b did not/,
    );
  });
  await t.step("a member skips a view it belongs to", () => {
    const s = new Script().view(1, ["a", "b"]).view(2, ["a", "b"], ["a"]);
    s.view(3, ["a", "b"]);
    assert.match(
      checkViewSynchrony(s.history)!,
      /b belongs to view 2 but went from view 1 to view 3 without installing it/,
    );
  });
  await t.step(
    "a message of view 1 delivered after view 2 is installed",
    () => {
      const s = new Script().view(1, ["a", "b"]);
      const m = s.send("a", 1, "fbcast", 1);
      s.deliver(["a"], m).view(2, ["a", "b"]).deliver(["b"], m);
      assert.match(
        checkViewSynchrony(s.history)!,
        /b delivered a:1 of view 1 while in view 2/,
      );
    },
  );
});

Deno.test("integrity catches duplicates, unsent ids, wrong sender or strategy, the wrong view and outsiders sending", async (t) => {
  await t.step("a duplicate delivery", () => {
    const s = new Script().view(1, ["a", "b"]);
    s.deliver(["a", "b", "b"], s.send("a", 1, "fbcast", 1));
    assert.match(
      checkIntegrity(s.history)!,
      /^integrity: b delivered a:1 twice/,
    );
  });
  await t.step("a delivery of an id nobody sent", () => {
    const s = new Script().view(1, ["a", "b"]);
    s.deliver(["b"], { id: "a:9", sender: "a", strategy: "fbcast", viewId: 1 });
    assert.match(
      checkIntegrity(s.history)!,
      /b delivered a:9, which was never sent/,
    );
  });
  await t.step("a delivery under another sender or strategy", () => {
    const s = new Script().view(1, ["a", "b"]);
    const m = s.send("a", 1, "fbcast", 1);
    s.deliver(["b"], { ...m, strategy: "abcast" });
    assert.match(
      checkIntegrity(s.history)!,
      /b delivered a:1 as a's abcast, but a sent it as fbcast/,
    );
  });
  await t.step("a message sent in view 1 delivered in view 2", () => {
    const s = new Script().view(1, ["a", "b"]);
    const m = s.send("a", 1, "fbcast", 1);
    s.view(2, ["a", "b"]).deliver(["a", "b"], { ...m, viewId: 2 });
    assert.match(
      checkIntegrity(s.history)!,
      /a delivered a:1 in view 2, but a sent it in view 1/,
    );
  });
  await t.step("one id sent twice", () => {
    const s = new Script().view(1, ["a", "b"]);
    s.send("a", 1, "fbcast", 1);
    s.recorder.sent({ id: "a:1", sender: "b", strategy: "fbcast", viewId: 1 });
    assert.match(
      checkIntegrity(s.history)!,
      /message id a:1 was sent twice \(by a in view 1, by b in view 1\)/,
    );
  });
  await t.step("a sender outside the view it sends in", () => {
    const s = new Script().view(1, ["a", "b"]);
    s.send("z", 1, "fbcast", 1);
    assert.match(
      checkIntegrity(s.history)!,
      /z sent z:1 in view 1 \[a, b\], which it is not a member of/,
    );
  });
});

Deno.test("FIFO catches an inversion and a gap, for every strategy", async (t) => {
  for (const strategy of ["fbcast", "cbcast", "abcast", "gbcast"] as const) {
    await t.step(`${strategy}: an inversion`, () => {
      const s = new Script().view(1, ["a", "b"]);
      const [a1, a2] = [
        s.send("a", 1, strategy, 1),
        s.send("a", 2, strategy, 1),
      ];
      s.deliver(["a"], a1, a2).deliver(["b"], a2, a1);
      assert.match(
        checkFifo(s.history)!,
        new RegExp(
          `^FIFO: b delivered a:2 \\(a's ${strategy} #2 of view 1\\) without having delivered a:1 \\(#1\\) before it`,
        ),
      );
    });
  }
  await t.step("a gap: the third message without the second", () => {
    const s = new Script().view(1, ["a", "b"]);
    const [a1, a2, a3] = [1, 2, 3].map((n) => s.send("a", n, "fbcast", 1));
    s.deliver(["a"], a1, a2, a3).deliver(["b"], a1, a3);
    assert.match(
      checkFifo(s.history)!,
      /b delivered a:3 \(a's fbcast #3 of view 1\) without having delivered a:2 \(#2\)/,
    );
  });
  await t.step("strategies are FIFO each on their own, and per view", () => {
    const s = new Script().view(1, ["a", "b"]);
    const f1 = s.send("a", 1, "fbcast", 1);
    const x1 = s.send("a", 2, "abcast", 1);
    s.deliver(["a"], f1, x1).deliver(["b"], x1, f1);
    s.view(2, ["a", "b"]);
    s.deliver(["a", "b"], s.send("a", 3, "fbcast", 2));
    assert.equal(checkFifo(s.history), undefined);
  });
});

Deno.test("causal order catches a cbcast delivered before one that happened before it", async (t) => {
  await t.step(
    "m2 sent after its sender delivered m1, delivered before m1",
    () => {
      const s = new Script().view(1, ["a", "b", "c"]);
      const m1 = s.send("a", 1, "cbcast", 1);
      s.deliver(["a", "b"], m1);
      const m2 = s.send("b", 1, "cbcast", 1);
      s.deliver(["a", "b"], m2).deliver(["c"], m2, m1);
      assert.match(
        checkCausal(s.history)!,
        /^causal order: c delivered b:1 \(cbcast, view 1\) without having delivered a:1 before it, which happened before it: b had delivered a's cbcasts of view 1 through #1 \(a:1\) before sending b:1/,
      );
    },
  );
  await t.step(
    "through a chain: m3's sender delivered m2, which needs m1",
    () => {
      const s = new Script().view(1, ["a", "b", "c", "d"]);
      const m1 = s.send("a", 1, "cbcast", 1);
      s.deliver(["b"], m1);
      const m2 = s.send("b", 1, "cbcast", 1);
      s.deliver(["c"], m1, m2);
      const m3 = s.send("c", 1, "cbcast", 1);
      s.deliver(["d"], m2, m3);
      assert.match(
        checkCausal(s.history)!,
        /d delivered b:1 .* without having delivered a:1/,
      );
    },
  );
  await t.step("one sender's cbcasts out of order", () => {
    const s = new Script().view(1, ["a", "b"]);
    const [m1, m2] = [s.send("a", 1, "cbcast", 1), s.send("a", 2, "cbcast", 1)];
    s.deliver(["b"], m2, m1);
    assert.match(
      checkCausal(s.history)!,
      /b delivered a:2 .* without having delivered a:1 .*: a sent a:1 first/,
    );
  });
  await t.step(
    "deliveries of other strategies and of earlier views create no edge",
    () => {
      const s = new Script().view(1, ["a", "b", "c"]);
      const f = s.send("a", 1, "fbcast", 1);
      s.deliver(["b"], f);
      const m = s.send("b", 1, "cbcast", 1);
      s.deliver(["c"], m, f).deliver(["a"], f, m).deliver(["b"], m);
      const old = s.send("a", 2, "cbcast", 1);
      s.deliver(["a", "b", "c"], old).view(2, ["a", "b", "c", "d"]);
      s.deliver(["a", "b", "c", "d"], s.send("a", 3, "cbcast", 2));
      assert.equal(checkCausal(s.history), undefined);
    },
  );
  await t.step(
    "a crashed sender's cbcast that others delivered orders theirs",
    () => {
      const s = new Script().view(1, ["a", "b", "c"]);
      const m1 = s.send("a", 1, "cbcast", 1);
      s.deliver(["b"], m1);
      s.recorder.crashed("a");
      const m2 = s.send("b", 1, "cbcast", 1);
      s.deliver(["b", "c"], m2);
      assert.match(checkCausal(s.history)!, /c delivered b:1/);
      const t2 = new Script().view(1, ["a", "b", "c"]);
      const n1 = t2.send("a", 1, "cbcast", 1);
      t2.deliver(["b"], n1);
      t2.recorder.crashed("a");
      const n2 = t2.send("b", 1, "cbcast", 1);
      t2.deliver(["b"], n2).deliver(["c"], n1, n2);
      assert.equal(checkCausal(t2.history), undefined);
    },
  );
});

Deno.test("total order catches two members delivering abcasts in opposite orders, and a cycle over three", async (t) => {
  await t.step("an inversion between two members", () => {
    const s = new Script().view(1, ["a", "b"]);
    const [x, y] = [s.send("a", 1, "abcast", 1), s.send("b", 1, "abcast", 1)];
    s.deliver(["a"], x, y).deliver(["b"], y, x);
    assert.match(
      checkTotalOrder(s.history)!,
      /^total order: in view 1 no one order fits the abcast deliveries: (a delivered a:1 before b:1; b delivered b:1 before a:1|b delivered b:1 before a:1; a delivered a:1 before b:1)$/,
    );
  });
  await t.step("a cycle no pair shows: a: x y, b: y z, c: z x", () => {
    const s = new Script().view(1, ["a", "b", "c"]);
    const [x, y, z] = ["a", "b", "c"].map((m) => s.send(m, 1, "abcast", 1));
    s.deliver(["a"], x, y).deliver(["b"], y, z).deliver(["c"], z, x);
    const failure = checkTotalOrder(s.history)!;
    for (
      const edge of [
        "a delivered a:1 before b:1",
        "b delivered b:1 before c:1",
        "c delivered c:1 before a:1",
      ]
    ) {
      assert.ok(failure.includes(edge), failure);
    }
  });
  await t.step(
    "agreed order: a member that crashed in the view may have delivered in another order; a survivor may not",
    () => {
      const s = new Script().view(1, ["a", "b", "c"]);
      const [x, y] = [s.send("b", 1, "abcast", 1), s.send("c", 1, "abcast", 1)];
      // a (the sequencer) delivered x, y and crashed; its order of x
      // reached nobody, and the survivors settled on y, x.
      s.deliver(["a"], x, y).deliver(["b", "c"], y, x);
      s.recorder.crashed("a");
      s.view(2, ["b", "c"]);
      assert.equal(checkTotalOrder(s.history), undefined);
      const t2 = new Script().view(1, ["a", "b", "c"]);
      const [x2, y2] = [
        t2.send("b", 1, "abcast", 1),
        t2.send("c", 1, "abcast", 1),
      ];
      t2.deliver(["a"], x2, y2).deliver(["b", "c"], y2, x2);
      t2.view(2, ["a", "b", "c"]);
      assert.match(checkTotalOrder(t2.history)!, /^total order: in view 1/);
    },
  );
  await t.step(
    "prefixes of one order pass, other strategies interleave freely",
    () => {
      const s = new Script().view(1, ["a", "b", "c"]);
      const [x, y, z] = ["a", "b", "c"].map((m) => s.send(m, 1, "abcast", 1));
      const f = s.send("a", 2, "fbcast", 1);
      s.deliver(["a"], f, x, y, z).deliver(["b"], x, y, f).deliver(["c"], x);
      assert.equal(checkTotalOrder(s.history), undefined);
    },
  );
});

Deno.test("gbcast order catches members delivering different messages before a gbcast", async (t) => {
  await t.step(
    "a message before the gbcast at one member and after it at another",
    () => {
      const s = new Script().view(1, ["a", "b"]);
      const [m, g] = [s.send("b", 1, "fbcast", 1), s.send("a", 1, "gbcast", 1)];
      s.deliver(["a"], m, g).deliver(["b"], g, m);
      assert.match(
        checkGbcast(s.history)!,
        /^gbcast order: a delivered b:1 before gbcast a:1 in view 1, and b did not/,
      );
    },
  );
  await t.step("two gbcasts in different orders", () => {
    const s = new Script().view(1, ["a", "b"]);
    const [g, h] = [s.send("a", 1, "gbcast", 1), s.send("b", 1, "gbcast", 1)];
    s.deliver(["a"], g, h).deliver(["b"], h, g);
    assert.match(checkGbcast(s.history)!, /delivered a:1 before gbcast b:1/);
  });
  await t.step(
    "a member that crashed before the gbcast is not held to it",
    () => {
      const s = new Script().view(1, ["a", "b", "c"]);
      const [m, g] = [s.send("b", 1, "fbcast", 1), s.send("a", 1, "gbcast", 1)];
      const n = s.send("c", 1, "fbcast", 1);
      s.deliver(["c"], m, n);
      s.recorder.crashed("c");
      s.deliver(["a", "b"], m, n, g);
      assert.equal(checkGbcast(s.history), undefined);
    },
  );
});

Deno.test("liveness catches a message never delivered and survivors apart, only once settled", async (t) => {
  await t.step(
    "a message of a live sender a live member never delivers",
    () => {
      const s = new Script().view(1, ["a", "b"]);
      s.deliver(["a"], s.send("a", 1, "fbcast", 1));
      assert.equal(checkGroupHistory(s.history), undefined);
      assert.match(
        checkGroupHistory(s.history, { settled: true })!,
        /^liveness: b never delivered a:1, which a sent in view 1, though both stayed up/,
      );
    },
  );
  await t.step("survivors end in different views", () => {
    const s = new Script().view(1, ["a", "b"]).view(2, ["a", "b"], ["a"]);
    assert.match(
      checkLiveness(s.history)!,
      /a ended in view 2 but b in view 1/,
    );
  });
  await t.step("the final view still lists a crashed member", () => {
    const s = new Script().view(1, ["a", "b"]);
    s.recorder.crashed("b");
    assert.match(
      checkLiveness(s.history)!,
      /the final view 1 \[a, b\] still lists b, which crashed/,
    );
  });
});

Deno.test("state transfer catches a hash mismatch, a state out of place and a missing state", async (t) => {
  await t.step("the joiner's restored state differs from the others'", () => {
    const s = new Script().view(1, ["a"]).view(2, ["a", "d"]);
    s.state(["a"], 2, "h2").state(["d"], 2, "h2-bad");
    assert.match(
      checkStateTransfer(s.history)!,
      /^state transfer: d's state at view 2 is h2-bad, but a's is h2/,
    );
  });
  await t.step("a joiner delivers before restoring", () => {
    const s = new Script().view(1, ["a"]).view(2, ["a", "d"]).state(
      ["a"],
      2,
      "h",
    );
    s.deliver(["a", "d"], s.send("a", 1, "fbcast", 2)).state(["d"], 2, "h");
    assert.match(
      checkStateTransfer(s.history)!,
      /d recorded its state at view 2 after delivering a:1 in it/,
    );
  });
  await t.step("a joiner that goes on without recording its state", () => {
    const s = new Script().view(1, ["a"]).view(2, ["a", "d"]).state(
      ["a"],
      2,
      "h",
    );
    s.deliver(["a", "d"], s.send("a", 1, "fbcast", 2));
    assert.match(
      checkStateTransfer(s.history)!,
      /joiner d recorded no restored state at view 2 but delivered a:1 in it/,
    );
  });
  await t.step("a joiner that crashed before restoring is excused", () => {
    const s = new Script().view(1, ["a"]).view(2, ["a", "d"]).state(
      ["a"],
      2,
      "h",
    );
    s.recorder.crashed("d");
    assert.equal(checkStateTransfer(s.history), undefined);
  });
});

Deno.test("the recorder reports the first online failure once", () => {
  const s = new Script().view(1, ["a"]);
  s.deliver(["a"], { id: "x", sender: "a", strategy: "fbcast", viewId: 1 });
  s.deliver(["a"], { id: "y", sender: "a", strategy: "fbcast", viewId: 1 });
  assert.equal(s.failures.length, 1);
  assert.match(s.failures[0], /a delivered x, which was never sent \(t=1\)/);
  assert.equal(s.recorder.failure, s.failures[0]);
});

Deno.test("group checks run over 100k deliveries with crashes and joins in linear time", () => {
  const random = new Prng(7);
  const strategies: Strategy[] = ["fbcast", "cbcast", "abcast", "gbcast"];
  const s = new Script();
  let members = ["p0", "p1", "p2", "p3", "p4"];
  let viewId = 1;
  let next = members.length;
  s.view(viewId, members);
  for (let i = 0; i < 20_000; i++) {
    if (i > 0 && i % 2_000 === 0) {
      const victim = members[random.int(members.length)];
      s.recorder.crashed(victim);
      members = members.filter((m) => m !== victim);
      s.view(++viewId, members);
      members = [...members, `p${next++}`];
      s.view(++viewId, members).state(members, viewId, `h${viewId}`);
    }
    const sender = members[random.int(members.length)];
    s.deliver(members, s.send(sender, i, strategies[random.int(4)], viewId));
  }
  const started = performance.now();
  assert.equal(checkGroupHistory(s.history, { settled: true }), undefined);
  const elapsed = performance.now() - started;
  assert.deepEqual(s.failures, []);
  assert.ok(elapsed < 5_000, `took ${elapsed.toFixed(0)} ms`);
});
