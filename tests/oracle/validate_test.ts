import assert from "node:assert/strict";
import { parseClientFrame } from "../../oracle/validate.ts";
import type { OracleErrorCode } from "../../oracle/commands.ts";

function req(op: unknown, extra: Record<string, unknown> = {}) {
  return { t: "req", s: "c1", r: 1, a: 0, op, ...extra };
}

function rejects(json: unknown, code: OracleErrorCode, message: RegExp): void {
  const result = parseClientFrame(json);
  assert.ok("error" in result, `accepted a frame: ${message}`);
  assert.equal(result.error.code, code, result.error.message);
  assert.match(result.error.message, message);
}

Deno.test("parseClientFrame accepts every well-formed frame", () => {
  const frames = [
    req({ op: "open_session", ttlMs: 1_000 }),
    req({ op: "close_session" }),
    req({ op: "append", path: "/a", data: { x: [1, "y", null, true] } }),
    req({ op: "truncate", path: "/a", before: 10 }),
    req({ op: "lock", path: "/l", wait: false }),
    req({ op: "unlock", path: "/l", token: 0 }),
    req({ op: "join", group: "/g", member: "m" }),
    req({ op: "leave", group: "/g", member: "m" }),
    req({ op: "remove", group: "/g", member: "m", reason: "" }),
    req({ op: "flushed", group: "/g", viewId: 3, member: "m" }),
    req({ op: "gbcast", group: "/g", member: "m", seq: 1, data: "AQI=" }),
    req({ op: "read", path: "/_sys/views/g", from: 0, limit: 1_000 }),
    req({ op: "get_lock", path: "/l" }),
    req({ op: "get_view", group: "/g" }),
    req({ op: "keepalive" }),
    { t: "sub", id: 0, path: "/", prefix: true, from: 1 },
    { t: "sub", id: 1, path: "/a", prefix: false, from: 5 },
    { t: "unsub", id: 1 },
    { t: "suback", id: 1, upTo: 99 },
  ];
  for (const frame of frames) {
    const result = parseClientFrame(frame);
    assert.ok("frame" in result, JSON.stringify(result));
    assert.deepEqual(result.frame, frame);
  }
});

Deno.test("parseClientFrame rejects garbage with clear messages", async (t) => {
  await t.step("non-objects and unknown frame types", () => {
    rejects(null, "invalid", /expected a JSON object, got null/);
    rejects([1, 2], "invalid", /got array/);
    rejects("req", "invalid", /got string/);
    rejects(17, "invalid", /got number/);
    rejects({}, "invalid", /field "t" must name the frame type, got undefined/);
    rejects({ t: "boom" }, "invalid", /unknown frame type "boom"/);
    rejects({ t: "toString" }, "invalid", /unknown frame type/);
  });

  await t.step("wrong types and ranges name the field", () => {
    rejects(req({ op: "close_session" }, { s: 5 }), "invalid", /field "s"/);
    rejects(req({ op: "close_session" }, { r: 0 }), "invalid", /field "r"/);
    rejects(req({ op: "close_session" }, { r: 1.5 }), "invalid", /field "r"/);
    rejects(req({ op: "close_session" }, { a: -1 }), "invalid", /field "a"/);
    rejects(
      req({ op: "close_session" }, { a: 2 ** 60 }),
      "invalid",
      /field "a"/,
    );
    rejects(
      req({ op: "open_session", ttlMs: 999 }),
      "invalid",
      /field "op\.ttlMs"/,
    );
    rejects(
      req({ op: "open_session", ttlMs: "5000" }),
      "invalid",
      /field "op\.ttlMs"/,
    );
    rejects(
      req({ op: "lock", path: "/l", wait: "yes" }),
      "invalid",
      /field "op\.wait"/,
    );
    rejects(
      req({ op: "read", path: "/a", from: 1, limit: 1_001 }),
      "invalid",
      /field "op\.limit"/,
    );
    rejects(
      req({ op: "flushed", group: "/g", viewId: 0, member: "m" }),
      "invalid",
      /op\.viewId/,
    );
    rejects(
      req({ op: "gbcast", group: "/g", member: "m", seq: 1, data: "AQI" }),
      "invalid",
      /op\.data.*base64/,
    );
    rejects(
      req({ op: "gbcast", group: "/g", member: "m", seq: 0, data: "" }),
      "invalid",
      /op\.seq/,
    );
    rejects(
      { t: "sub", id: 1, path: "/a", prefix: "no", from: 1 },
      "invalid",
      /field "prefix"/,
    );
    rejects({ t: "suback", id: 1 }, "invalid", /field "upTo"/);
    rejects(req("open"), "invalid", /field "op" must be an object, got string/);
    rejects(
      req({ ttlMs: 5 }),
      "invalid",
      /field "op\.op" must name the operation/,
    );
  });

  await t.step("unknown fields are refused by name", () => {
    rejects(
      req({ op: "close_session", evil: 1 }),
      "invalid",
      /field "op" has unknown field "evil"/,
    );
    rejects(
      { t: "unsub", id: 1, x: 1, y: 2 },
      "invalid",
      /unknown fields "x", "y"/,
    );
  });

  await t.step("huge strings are refused", () => {
    const huge = "x".repeat(1_000_000);
    rejects(req({ op: "close_session" }, { s: huge }), "invalid", /field "s"/);
    rejects(
      req({ op: "join", group: "/g", member: huge }),
      "invalid",
      /field "op\.member"/,
    );
    rejects(
      req({ op: "remove", group: "/g", member: "m", reason: huge }),
      "invalid",
      /op\.reason/,
    );
    rejects(
      req({ op: "append", path: "/" + huge, data: 1 }),
      "invalid",
      /field "op\.path"/,
    );
    const result = parseClientFrame(req({ op: "close_session" }, { s: huge }));
    assert.ok("error" in result && result.error.message.length < 300);
  });

  await t.step("unknown operations get unknown_op", () => {
    rejects(
      req({ op: "explode" }),
      "unknown_op",
      /Unknown operation "explode"/,
    );
    rejects(req({ op: "__proto__" }), "unknown_op", /Unknown operation/);
  });

  await t.step("bad paths get invalid_path", () => {
    rejects(
      req({ op: "append", path: "/a//b", data: 1 }),
      "invalid_path",
      /field "op\.path".*empty segment/,
    );
    rejects(
      req({ op: "join", group: "/", member: "m" }),
      "invalid_path",
      /field "op\.group"/,
    );
    rejects(
      { t: "sub", id: 1, path: "/", prefix: false, from: 1 },
      "invalid_path",
      /subscription prefix/,
    );
    rejects(
      { t: "sub", id: 1, path: "/a/", prefix: true, from: 1 },
      "invalid_path",
      /trailing/,
    );
  });

  await t.step("event data must be plain JSON, not too deep", () => {
    rejects(
      req({ op: "append", path: "/a", data: undefined }),
      "invalid",
      /op\.data/,
    );
    rejects(
      req({ op: "append", path: "/a", data: NaN }),
      "invalid",
      /op\.data.*JSON/,
    );
    rejects(
      req({ op: "append", path: "/a", data: new Date() }),
      "invalid",
      /op\.data/,
    );
    rejects(
      req({ op: "append", path: "/a", data: [() => 1] }),
      "invalid",
      /op\.data/,
    );
    let deep: unknown = 1;
    for (let i = 0; i < 100; i++) deep = [deep];
    rejects(
      req({ op: "append", path: "/a", data: deep }),
      "invalid",
      /levels deep/,
    );
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    rejects(
      req({ op: "append", path: "/a", data: cyclic }),
      "invalid",
      /op\.data/,
    );
  });

  await t.step("hostile objects never throw", () => {
    const hostile = new Proxy({}, {
      get() {
        throw new Error("gotcha");
      },
    });
    rejects(hostile, "invalid", /gotcha|frame/);
  });
});
