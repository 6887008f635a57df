import assert from "node:assert/strict";
import * as root from "../mod.ts";
import * as oracle from "../oracle/mod.ts";
import * as transport from "../transport/mod.ts";
import * as sim from "../sim/mod.ts";

// Pins the runtime export list of every public entry point: adding or
// removing a public name must be a deliberate edit of this test.

Deno.test("root module exports exactly the stable core", () => {
  assert.deepEqual(Object.keys(root).sort(), [
    "Actor",
    "CryptoRandom",
    "FileStorage",
    "GroupHandle",
    "JsonCodec",
    "JsonLogger",
    "Node",
    "NotMemberError",
    "ORDERINGS",
    "OracleClient",
    "OracleError",
    "OracleServer",
    "QueryTimeoutError",
    "SystemClock",
    "describeIssues",
    "dispatchTable",
    "handler",
    "onView",
    "silentLogger",
    "startOracleGroup",
    "validate",
    "withFields",
  ]);
});

Deno.test("oracle module exports the client, the servers and the replica", () => {
  assert.deepEqual(Object.keys(oracle).sort(), [
    "MAX_GBCAST_DATA_LENGTH",
    "MAX_PATH_BYTES",
    "MAX_PATH_SEGMENTS",
    "MAX_SEGMENT_BYTES",
    "OracleClient",
    "OracleError",
    "OracleReplica",
    "OracleServer",
    "OracleTreeClient",
    "SYSTEM_PREFIX",
    "TREE_CHANNEL",
    "WalCorruptionError",
    "checkPath",
    "isUnder",
    "oracleTreeLink",
    "ownerPath",
    "startOracleGroup",
    "viewChannel",
  ]);
});

Deno.test("transport module exports the transports, framing and codecs", () => {
  assert.deepEqual(Object.keys(transport).sort(), [
    "DEFAULT_MAX_DATAGRAM_SIZE",
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_MAX_QUEUE_BYTES",
    "FRAME_HEADER_SIZE",
    "FRAME_KIND_DATA",
    "FRAME_MAGIC_0",
    "FRAME_MAGIC_1",
    "FRAME_VERSION",
    "FrameDecoder",
    "FrameError",
    "JsonCodec",
    "MAX_FRAME_SIZE_LIMIT",
    "MemoryNetwork",
    "MemoryTransport",
    "TcpTransport",
    "TransportMux",
    "UdpTransport",
    "checkMaxFrameSize",
    "emptyTransportStats",
    "encodeFrame",
    "writeFrameHeader",
  ]);
});

Deno.test("sim module exports the simulator and the scenario runner", () => {
  assert.deepEqual(Object.keys(sim).sort(), [
    "DEFAULT_LINK",
    "Prng",
    "Simulation",
    "SimulationError",
    "checkLinearizable",
    "runScenario",
    "runScenarioCli",
    "sampleLatency",
    "simScenario",
  ]);
});
