import assert from "node:assert/strict";
import {
  checkAddress,
  parseLogLevel,
  parseNumber,
  parsePeers,
  parseReplicaList,
  readSecret,
} from "../../_cli_args.ts";

Deno.test("replica lists are parsed with ids or without, never mixed", () => {
  assert.deepEqual(parsePeers("a=h1:1, b=[::1]:2"), {
    a: "h1:1",
    b: "[::1]:2",
  });
  assert.deepEqual(parseReplicaList("a=h1:1,b=h2:2", "--oracle"), {
    a: "h1:1",
    b: "h2:2",
  });
  assert.deepEqual(parseReplicaList("h1:1, h2:2", "--oracle"), [
    "h1:1",
    "h2:2",
  ]);
  assert.throws(
    () => parsePeers("a=h1:1,a=h2:2"),
    /^TypeError: Invalid --peers: id "a" twice/,
  );
  assert.throws(
    () => parsePeers("=h:1", "--parent"),
    /Invalid --parent entry "=h:1"/,
  );
  assert.throws(
    () => parseReplicaList("a=h:1,h:2", "--oracle"),
    /Invalid --oracle/,
  );
  assert.throws(
    () => parseReplicaList("h:1,", "--oracle"),
    /Invalid --oracle entry ""/,
  );
  checkAddress("--listen", "[::]:0", 0);
  assert.throws(
    () => checkAddress("--oracle entry", "h:0", 1),
    /port from 1 to 65535/,
  );
});

Deno.test("numbers and log levels name the flag when refused", () => {
  const seconds = { min: 0, max: 600, exclusiveMin: true };
  assert.equal(parseNumber("--seconds", "0.5", seconds), 0.5);
  assert.equal(parseNumber("--seconds", "600", seconds), 600);
  assert.throws(() => parseNumber("--seconds", "0", seconds), RangeError);
  assert.throws(
    () => parseNumber("--seconds", "601", seconds),
    /Invalid --seconds "601"/,
  );
  for (const text of ["", "x", "1e3", "-1", "1.", " 1", "Infinity", "NaN"]) {
    assert.throws(
      () => parseNumber("--seconds", text, seconds),
      (error: Error) =>
        error instanceof TypeError &&
        error.message.startsWith(`Invalid --seconds ${JSON.stringify(text)}`),
      JSON.stringify(text),
    );
  }
  const port = { min: 1, max: 65535, integer: true };
  assert.throws(() => parseNumber("--port", "1.5", port), /use an integer/);
  assert.equal(parseLogLevel("error"), "error");
  assert.throws(() => parseLogLevel("INFO"), /Invalid --log-level "INFO"/);
});

Deno.test("a secret file loses one trailing newline; an empty one is refused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cohort-cli-secret-" });
  try {
    await Deno.writeTextFile(`${dir}/s`, "s3cret\r\n");
    assert.equal(
      new TextDecoder().decode(await readSecret(`${dir}/s`)),
      "s3cret",
    );
    await Deno.writeTextFile(`${dir}/empty`, "\n");
    await assert.rejects(
      readSecret(`${dir}/empty`),
      /Invalid --secret-file .*empty/,
    );
    await assert.rejects(readSecret(`${dir}/missing`), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
