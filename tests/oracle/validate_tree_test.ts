import assert from "node:assert/strict";
import { parseClientFrame } from "../../oracle/validate.ts";
import type { OracleErrorCode } from "../../oracle/commands.ts";

function req(op: unknown) {
  return { t: "req", s: "c1", r: 1, a: 0, op };
}

const REPLICAS = { r1: "10.0.0.1:7000", r2: "10.0.0.2:7000" };

Deno.test("parseClientFrame accepts the tree operations; a delegation's group is a name, not a path", () => {
  const frames = [
    req({
      op: "delegate",
      prefix: "/a/b",
      group: "child-a",
      replicas: REPLICAS,
    }),
    req({ op: "get_tree" }),
    req({ op: "ended_sessions", sessions: ["s1", "s2"] }),
  ];
  for (const frame of frames) {
    const result = parseClientFrame(frame);
    assert.ok("frame" in result, JSON.stringify(result));
    assert.deepEqual(result.frame, frame);
  }
});

Deno.test("parseClientFrame refuses malformed tree operations, naming the field", () => {
  const many = Object.fromEntries(
    Array.from({ length: 10 }, (_, i) => [`r${i}`, "h:1"]),
  );
  const cases: [unknown, OracleErrorCode, RegExp][] = [
    [
      { op: "delegate", prefix: "/", group: "g", replicas: REPLICAS },
      "invalid_path",
      /op\.prefix/,
    ],
    [
      { op: "delegate", prefix: "a", group: "g", replicas: REPLICAS },
      "invalid_path",
      /op\.prefix/,
    ],
    [
      { op: "delegate", prefix: "/a", group: "", replicas: REPLICAS },
      "invalid",
      /op\.group/,
    ],
    [
      {
        op: "delegate",
        prefix: "/a",
        group: "g".repeat(129),
        replicas: REPLICAS,
      },
      "invalid",
      /op\.group/,
    ],
    [
      { op: "delegate", prefix: "/a", group: "g", replicas: {} },
      "invalid",
      /op\.replicas.*1 to 9/,
    ],
    [
      { op: "delegate", prefix: "/a", group: "g", replicas: many },
      "invalid",
      /op\.replicas.*1 to 9/,
    ],
    [
      { op: "delegate", prefix: "/a", group: "g", replicas: { r: 1 } },
      "invalid",
      /op\.replicas\.r/,
    ],
    [
      { op: "delegate", prefix: "/a", group: "g", replicas: { r: "" } },
      "invalid",
      /op\.replicas\.r/,
    ],
    [
      { op: "delegate", prefix: "/a", group: "g", replicas: ["h:1"] },
      "invalid",
      /op\.replicas/,
    ],
    [{ op: "delegate", prefix: "/a", group: "g" }, "invalid", /op\.replicas/],
    [{ op: "get_tree", path: "/a" }, "invalid", /unknown field "path"/],
    [{ op: "ended_sessions", sessions: [] }, "invalid", /op\.sessions/],
    [{ op: "ended_sessions", sessions: [1] }, "invalid", /op\.sessions\.0/],
    [
      { op: "ended_sessions", sessions: Array(1001).fill("s") },
      "invalid",
      /op\.sessions/,
    ],
  ];
  for (const [op, code, message] of cases) {
    const result = parseClientFrame(req(op));
    assert.ok("error" in result, `accepted ${JSON.stringify(op)}`);
    assert.equal(result.error.code, code, result.error.message);
    assert.match(result.error.message, message);
  }
});
