// Where to signal for a room: the room lookup (contract C3 in docs/protocol.md) and the
// same-origin signaling URL. No DOM; `fetch` is the only I/O.

/**
 * What `GET /api/rooms/{id}` says: where to signal, or why not to.
 * @typedef {{signalingUrl: string} | {error: string}} RoomLookup
 */

/**
 * The same-origin signaling URL for a room: ws: for http pages, wss: for https pages.
 * @param {{protocol: string, host: string}} loc
 * @param {string} roomId
 * @returns {string}
 */
export function signalingUrl(loc, roomId) {
  const scheme = loc.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${loc.host}/ws/${encodeURIComponent(roomId)}`;
}

/**
 * @param {unknown} url
 * @returns {url is string} whether `url` is a ws:// or wss:// URL a WebSocket can open
 */
export function isSocketUrl(url) {
  return typeof url === "string" && /^wss?:\/\/[^/\s]+/.test(url);
}

/** The room lookup got an HTTP answer that is neither the room nor a final refusal. */
export class LookupError extends Error {
  /**
   * @param {string} message
   * @param {number} status  the HTTP status, e.g. 503 for REGISTRY_UNAVAILABLE
   */
  constructor(message, status) {
    super(message);
    this.name = "LookupError";
    this.status = status;
  }
}

/**
 * Ask the server where to signal for a room (contract C3 in docs/protocol.md). The
 * answer's `signaling_url` wins; without it, the same-origin URL. A 4xx with an error
 * code is final (no such room, expired); anything else throws (a network error as it
 * comes from fetch, an HTTP answer as a LookupError), and the caller retries.
 * @param {{protocol: string, host: string}} loc
 * @param {string} roomId
 * @param {typeof fetch} [fetchFn]
 * @returns {Promise<RoomLookup>}
 */
export async function lookupRoom(loc, roomId, fetchFn = fetch) {
  const url = `${loc.protocol}//${loc.host}/api/rooms/${encodeURIComponent(roomId)}`;
  const response = await fetchFn(url, { cache: "no-store" });
  /** @type {any} */
  const body = await response.json().catch(() => null);
  if (response.ok) {
    const given = body?.signaling_url;
    return { signalingUrl: isSocketUrl(given) ? given : signalingUrl(loc, roomId) };
  }
  const code = body?.error?.code;
  if (response.status < 500 && typeof code === "string") return { error: code };
  throw new LookupError(`GET ${url}: HTTP ${response.status} ${code ?? ""}`.trim(), response.status);
}
