import assert from "node:assert/strict";
import {
  checkPath,
  isReserved,
  isUnder,
  pathError,
} from "../../oracle/path.ts";

Deno.test("path rules accept and refuse the documented cases", async (t) => {
  const seg128 = "a".repeat(128);
  const valid = [
    "/a",
    "/apps/kv",
    "/A-Z_a~z.0:9@x",
    "/.hidden/..dots",
    `/${seg128}`,
    "/" + Array.from({ length: 32 }, () => "s").join("/"),
    "/" + Array.from({ length: 4 }, () => "x".repeat(127)).join("/"),
    "/_sys/views/g",
  ];
  const invalid: [unknown, RegExp][] = [
    ["", /must start with "\/"/],
    ["a/b", /must start with "\/"/],
    ["/", /only as a subscription prefix/],
    ["//", /empty segment at position 1/],
    ["/a//b", /empty segment at position 2/],
    ["/a/", /trailing "\/"/],
    ["/a/./b", /segment "\." is not allowed/],
    ["/a/..", /segment "\.\." is not allowed/],
    ["/a b", /may hold only letters/],
    ["/a/é", /may hold only letters/],
    ["/a?b", /may hold only letters/],
    ["/a\u0000", /may hold only letters/],
    [`/${seg128}a`, /129 bytes, at most 128/],
    ["/" + Array.from({ length: 33 }, () => "s").join("/"), /33 segments/],
    ["/" + "x".repeat(600), /at most 512 bytes/],
    [42, /expected a string, got number/],
    [null, /got null/],
  ];

  await t.step("valid paths", () => {
    for (const path of valid) {
      assert.equal(pathError(path), undefined, path);
      assert.equal(checkPath(path), path);
    }
  });

  await t.step(
    "invalid paths give a reason and checkPath throws TypeError",
    () => {
      for (const [path, reason] of invalid) {
        const error = pathError(path);
        assert.ok(error !== undefined, String(path));
        assert.match(error, reason);
        assert.throws(() => checkPath(path), TypeError);
      }
    },
  );

  await t.step("long paths are cut in messages", () => {
    const error = pathError("/" + "x".repeat(600))!;
    assert.ok(error.length < 200, error);
  });

  await t.step("the root is valid only when asked for", () => {
    assert.equal(pathError("/", { root: true }), undefined);
    assert.equal(checkPath("/", { root: true }), "/");
    assert.match(pathError("//", { root: true })!, /empty segment/);
  });
});

Deno.test("isUnder matches whole segments and the root matches everything", () => {
  assert.ok(isUnder("/a", "/a"));
  assert.ok(isUnder("/a", "/a/b/c"));
  assert.ok(!isUnder("/a", "/ab"));
  assert.ok(!isUnder("/a/b", "/a"));
  assert.ok(isUnder("/", "/a"));
  assert.ok(isUnder("/", "/_sys/views/g"));
});

Deno.test("the /_sys subtree is reserved", () => {
  assert.ok(isReserved("/_sys"));
  assert.ok(isReserved("/_sys/views/apps/kv"));
  assert.ok(!isReserved("/_system"));
  assert.ok(!isReserved("/apps/_sys"));
});
