/**
 * Transports move framed payloads between addressed peers: TCP (the
 * default), UDP and in-memory, all behind one {@linkcode Transport}
 * interface, with a magic/version/length frame header, a maximum frame size
 * the receiver enforces, optional peer authentication with a cluster secret,
 * and pluggable codecs (JSON by default).
 *
 * @module
 */

export {
  emptyTransportStats,
  type PeerId,
  type Transport,
  type TransportHandler,
  type TransportOptions,
  type TransportStats,
} from "./transport.ts";
export {
  checkMaxFrameSize,
  DEFAULT_MAX_FRAME_SIZE,
  encodeFrame,
  FRAME_HEADER_SIZE,
  FRAME_KIND_DATA,
  FRAME_MAGIC_0,
  FRAME_MAGIC_1,
  FRAME_VERSION,
  FrameDecoder,
  FrameError,
  type FrameErrorReason,
  MAX_FRAME_SIZE_LIMIT,
  writeFrameHeader,
} from "./frame.ts";
export { type Codec, JsonCodec, type JsonCodecOptions } from "./codec.ts";
export {
  MemoryNetwork,
  type MemoryNetworkOptions,
  MemoryTransport,
} from "./memory_transport.ts";
export { TransportMux } from "./mux.ts";
export {
  DEFAULT_MAX_DATAGRAM_SIZE,
  type UdpAddress,
  type UdpBindOptions,
  type UdpMulticastOptions,
  UdpTransport,
  type UdpTransportOptions,
  type UdpTransportStats,
} from "./udp_transport.ts";
export {
  DEFAULT_MAX_QUEUE_BYTES,
  type TcpAddress,
  type TcpListenOptions,
  TcpTransport,
  type TcpTransportOptions,
} from "./tcp_transport.ts";
export { type LogFields, type Logger, type LogLevel } from "../runtime/log.ts";
