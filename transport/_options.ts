/**
 * Validation shared by the options of the TCP and UDP transports: numbers,
 * ports and `"host:port"` addresses. Each check throws the argument error
 * the transports document, with the option's name and value.
 *
 * @module
 */

/**
 * Checks that `value` is a finite number above 0.
 *
 * @param name The option's name, for the message.
 * @param value The value to check.
 * @returns `value`.
 * @throws {RangeError} if it is not.
 */
export function positiveNumber(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new RangeError(`Invalid ${name} ${value}: must be a positive number`);
  }
  return value;
}

/**
 * Checks that `value` is an integer of at least 1.
 *
 * @param name The option's name, for the message.
 * @param value The value to check.
 * @returns `value`.
 * @throws {RangeError} if it is not.
 */
export function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(
      `Invalid ${name} ${value}: must be a positive integer`,
    );
  }
  return value;
}

/**
 * Checks that `value` is an integer from `min` to `max` (a port, a TTL).
 *
 * @param name The option's name, for the message (`"listen port"`).
 * @param value The value to check.
 * @param min The smallest value allowed.
 * @param max The largest value allowed.
 * @returns `value`.
 * @throws {RangeError} if it is not.
 */
export function integerInRange(
  name: string,
  value: number,
  min: number,
  max: number,
): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(
      `Invalid ${name} ${value}: must be an integer from ${min} to ${max}`,
    );
  }
  return value;
}

/**
 * Splits `"host:port"` (`"[::1]:7000"` for IPv6, brackets removed) at its
 * last colon. The host is not checked beyond being non-empty; each
 * transport checks it its own way and throws its own message.
 *
 * @param address The address as configured.
 * @returns The host and a port from 1 to 65535, or `undefined` if `address`
 * is not a string of that form.
 */
export function splitHostPort(
  address: string,
): { hostname: string; port: number } | undefined {
  const colon = typeof address === "string" ? address.lastIndexOf(":") : -1;
  if (colon <= 0) return undefined;
  let hostname = address.slice(0, colon);
  const portText = address.slice(colon + 1);
  if (hostname.startsWith("[") && hostname.endsWith("]")) {
    hostname = hostname.slice(1, -1);
  }
  const port = /^[0-9]{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (hostname.length === 0 || !(port >= 1 && port <= 65535)) return undefined;
  return { hostname, port };
}
