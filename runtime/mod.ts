/**
 * The environment protocol code is handed (clock, randomness, storage,
 * logging) and its real implementations. The simulator provides virtual
 * implementations of the same interfaces.
 *
 * @module
 */

export { type Clock, SystemClock, type TimerId } from "./clock.ts";
export { checkBound, CryptoRandom, type Random } from "./random.ts";
export { checkFileName, type Storage } from "./storage.ts";
export { FileStorage, type FileStorageOptions } from "./file_storage.ts";
export {
  JsonLogger,
  type JsonLoggerOptions,
  type LogFields,
  type Logger,
  type LogLevel,
  silentLogger,
  withFields,
} from "./log.ts";
