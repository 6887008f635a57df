import assert from "node:assert/strict";
import { parseClientFrame } from "../../oracle/validate.ts";
import type { OracleErrorCode } from "../../oracle/commands.ts";

function req(op: unknown) {
  return { t: "req", s: "c1", r: 1, a: 0, op };
}

Deno.test("parseClientFrame accepts list with or without a cursor and a limit, and / as its prefix", () => {
  const frames = [
    req({ op: "list", kind: "locks", prefix: "/apps" }),
    req({ op: "list", kind: "channels", prefix: "/", limit: 1_000 }),
    req({
      op: "list",
      kind: "groups",
      prefix: "/_sys/views",
      after: "/_sys/views/a",
      limit: 1,
    }),
  ];
  for (const frame of frames) {
    const result = parseClientFrame(frame);
    assert.ok("frame" in result, JSON.stringify(result));
    assert.deepEqual(result.frame, frame);
  }
});

Deno.test("parseClientFrame refuses a malformed list, naming the field", () => {
  const cases: [unknown, OracleErrorCode, RegExp][] = [
    [{ op: "list", kind: "files", prefix: "/a" }, "invalid", /op\.kind/],
    [
      { op: "list", prefix: "/a" },
      "invalid",
      /op\.kind.*"locks"\|"channels"\|"groups"/,
    ],
    [{ op: "list", kind: "locks" }, "invalid", /op\.prefix.*missing/],
    [{ op: "list", kind: "locks", prefix: "a" }, "invalid_path", /op\.prefix/],
    [
      { op: "list", kind: "locks", prefix: "/a/" },
      "invalid_path",
      /op\.prefix.*trailing/,
    ],
    [
      { op: "list", kind: "locks", prefix: "/a", after: "/" },
      "invalid_path",
      /op\.after/,
    ],
    [
      { op: "list", kind: "locks", prefix: "/a", after: 5 },
      "invalid",
      /op\.after/,
    ],
    [
      { op: "list", kind: "locks", prefix: "/a", limit: 0 },
      "invalid",
      /op\.limit/,
    ],
    [
      { op: "list", kind: "locks", prefix: "/a", limit: 1_001 },
      "invalid",
      /op\.limit/,
    ],
    [
      { op: "list", kind: "locks", prefix: "/a", limit: 1.5 },
      "invalid",
      /op\.limit/,
    ],
    [
      { op: "list", kind: "locks", prefix: "/a", from: 1 },
      "invalid",
      /unknown field "from"/,
    ],
  ];
  for (const [op, code, message] of cases) {
    const result = parseClientFrame(req(op));
    assert.ok("error" in result, `accepted ${JSON.stringify(op)}`);
    assert.equal(result.error.code, code, JSON.stringify(op));
    assert.match(result.error.message, message, JSON.stringify(op));
  }
});
