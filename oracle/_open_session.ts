/**
 * Opening a client's session in a `connect`: a client whose session
 * fails to open is closed before the error goes on.
 *
 * @module
 */

/**
 * Opens `client`'s session, or closes it and rethrows.
 *
 * @returns The client, open.
 */
export async function openOrClose<
  T extends { open(): Promise<unknown>; close(): Promise<unknown> },
>(client: T): Promise<T> {
  try {
    await client.open();
  } catch (error) {
    await client.close();
    throw error;
  }
  return client;
}
