import assert from "node:assert/strict";
import { parseNodeArgs } from "../../actors/_cli_node.ts";

const PEERS = "1=127.0.0.1:7101,2=127.0.0.1:7102,3=127.0.0.1:7103";

Deno.test("node arguments: defaults, a running Oracle, a replica in this process", async (t) => {
  await t.step("only --actor: an in-process Oracle, the defaults", () => {
    assert.deepEqual(parseNodeArgs(["--actor", "kv"]), {
      actor: "kv",
      group: "/cohort/kv",
      oracle: undefined,
      replica: undefined,
      host: "127.0.0.1",
      port: undefined,
      transport: "tcp",
      secretFile: undefined,
      logLevel: "info",
      admin: undefined,
    });
  });
  await t.step("every option", () => {
    assert.deepEqual(
      parseNodeArgs([
        "--actor=counter",
        "--group",
        "/apps/count",
        "--oracle",
        PEERS,
        "--host",
        "0.0.0.0",
        "--port",
        "7200",
        "--transport",
        "udp",
        "--secret-file",
        "/etc/cohort/secret",
        "--log-level",
        "debug",
        "--admin",
        "127.0.0.1:9090",
        "--admin-token-file",
        "/etc/cohort/admin-token",
      ]),
      {
        actor: "counter",
        group: "/apps/count",
        oracle: {
          "1": "127.0.0.1:7101",
          "2": "127.0.0.1:7102",
          "3": "127.0.0.1:7103",
        },
        replica: undefined,
        host: "0.0.0.0",
        port: 7200,
        transport: "udp",
        secretFile: "/etc/cohort/secret",
        logLevel: "debug",
        admin: {
          host: "127.0.0.1",
          port: 9090,
          tokenFile: "/etc/cohort/admin-token",
        },
      },
    );
  });
  await t.step("--oracle without ids is a list of addresses", () => {
    const config = parseNodeArgs([
      "--actor",
      "kv",
      "--oracle",
      "127.0.0.1:7101,[::1]:7102",
    ]);
    assert.ok(config !== "help");
    assert.deepEqual(config.oracle, ["127.0.0.1:7101", "[::1]:7102"]);
  });
  await t.step("--replica, --peers and --data run a replica here", () => {
    const config = parseNodeArgs([
      "--actor",
      "kv",
      "--replica",
      "2",
      "--peers",
      PEERS,
      "--data",
      "/tmp/r2",
    ]);
    assert.ok(config !== "help");
    assert.equal(config.oracle, undefined);
    assert.deepEqual(config.replica, {
      id: "2",
      replicas: {
        "1": "127.0.0.1:7101",
        "2": "127.0.0.1:7102",
        "3": "127.0.0.1:7103",
      },
      dataDir: "/tmp/r2",
    });
  });
  await t.step("--help and -h", () => {
    assert.equal(parseNodeArgs(["--help"]), "help");
    assert.equal(parseNodeArgs(["--actor", "nope", "-h"]), "help");
  });
});

Deno.test("node arguments: every bad value is refused with a message naming its flag", () => {
  const kv = ["--actor", "kv"];
  const bad: [string[], RegExp][] = [
    [[], /^Missing --actor: .*kv, counter/],
    [["--actor", "queue"], /^Invalid --actor "queue": use kv, counter/],
    [[...kv, "--bogus"], /Unknown option '--bogus'/],
    [[...kv, "--port"], /'--port <value>' argument missing/],
    [[...kv, "extra"], /^Unexpected argument "extra"/],
    [[...kv, "--group", "apps/kv"], /^Invalid --group: .*must start with "\/"/],
    [[...kv, "--group", "/apps//kv"], /^Invalid --group: .*empty segment/],
    [[...kv, "--group", "/_sys/kv"], /^Invalid --group "\/_sys\/kv"/],
    [[...kv, "--oracle", ""], /^Invalid --oracle: the list is empty/],
    [[...kv, "--oracle", "127.0.0.1"], /^Invalid --oracle entry "127.0.0.1"/],
    [
      [...kv, "--oracle", "1=127.0.0.1:7101,127.0.0.1:7102"],
      /^Invalid --oracle ".*": give every replica as ID=HOST:PORT or/,
    ],
    [
      [...kv, "--oracle", "127.0.0.1:7101,127.0.0.1:7101"],
      /^Invalid --oracle: address "127.0.0.1:7101" twice/,
    ],
    [
      [...kv, "--oracle", "h:1", "--replica", "1"],
      /^Invalid --replica with --oracle/,
    ],
    [
      [...kv, "--oracle", "h:1", "--data", "d"],
      /^Invalid --data with --oracle/,
    ],
    [
      [...kv, "--peers", PEERS, "--data", "d"],
      /^Missing --replica: with --peers/,
    ],
    [
      [...kv, "--replica", "1", "--data", "d"],
      /^Missing --peers: with --replica/,
    ],
    [
      [...kv, "--replica", "1", "--peers", PEERS],
      /^Missing --data: with --replica/,
    ],
    [
      [...kv, "--replica", "4", "--peers", PEERS, "--data", "d"],
      /^Invalid --replica "4": not among the --peers ids 1,2,3/,
    ],
    [
      [...kv, "--replica", "1", "--peers", "1=127.0.0.1", "--data", "d"],
      /^Invalid --peers address of "1" "127.0.0.1"/,
    ],
    [[...kv, "--host", ""], /^Invalid --host "": /],
    [[...kv, "--host", "a b"], /^Invalid --host "a b"/],
    [
      [...kv, "--port", "0"],
      /^Invalid --port "0": use an integer from 1 to 65535/,
    ],
    [[...kv, "--port", "65536"], /^Invalid --port "65536"/],
    [[...kv, "--port", "80x"], /^Invalid --port "80x"/],
    [
      [...kv, "--transport", "quic"],
      /^Invalid --transport "quic": use tcp or udp/,
    ],
    [[...kv, "--secret-file", ""], /^Invalid --secret-file: the path is empty/],
    [[...kv, "--log-level", "loud"], /^Invalid --log-level "loud": use debug/],
    [[...kv, "--admin", "9090"], /^Invalid --admin "9090": use HOST:PORT/],
    [[...kv, "--admin", "127.0.0.1:9090"], /^Missing --admin-token-file/],
    [
      [...kv, "--admin-token-file", "/t"],
      /^Invalid --admin-token-file without --admin/,
    ],
    [[...kv, "--admin-no-auth"], /^Invalid --admin-no-auth without --admin/],
    [
      [
        ...kv,
        "--admin",
        "127.0.0.1:1",
        "--admin-no-auth",
        "--admin-token-file",
        "/t",
      ],
      /^Invalid --admin-no-auth with --admin-token-file/,
    ],
  ];
  for (const [args, message] of bad) {
    assert.throws(
      () => parseNodeArgs(args),
      (error: Error) =>
        (error instanceof TypeError || error instanceof RangeError) &&
        message.test(error.message),
      args.join(" "),
    );
  }
  assert.throws(() => parseNodeArgs([...kv, "--port", "0"]), RangeError);
});
