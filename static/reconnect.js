// The reconnect policy of the browser client (docs/protocol.md, "How the browser client
// reconnects"): the client's state and its transitions, when to try again and after how
// long, which URL to try when the room lookup fails, what counts towards giving up, and why
// the page waits. Pure: no DOM, no socket, no timer; time and chance are injectable.

import { isSocketUrl } from "./lookup.js";

/** Close codes after which a client must not reconnect (docs/protocol.md, "Close codes"). */
export const FINAL_CLOSE_CODES = new Set([1000, 4001, 4400, 4404, 4409, 4410]);
/** Server error codes that end the call for good. */
export const FINAL_ERRORS = new Set(["INVALID_ROOM_ID", "ROOM_NOT_FOUND", "ROOM_FULL", "ROOM_EXPIRED"]);
/** A node that does not hold the room closes with this after a WRONG_NODE error. */
export const WRONG_NODE_CLOSE = 4421;
export const MAX_REDIRECTS = 3;
/** REGISTRY_UNAVAILABLE closes with this: the service cannot take the call right now. */
export const TRY_AGAIN_CLOSE = 1013;
/** A join that lasted this long resets the backoff. */
export const STABLE_MS = 30_000;

/**
 * Why the client is about to try again: "lost" (the network or the media connection),
 * "restart" (server-shutdown), "unavailable" (the service answered but cannot take the
 * call now: REGISTRY_UNAVAILABLE, close 1013, a 5xx room lookup, RATE_LIMITED) or
 * "wrong-node" (WRONG_NODE redirects went round more than MAX_REDIRECTS times).
 * @typedef {"lost" | "restart" | "unavailable" | "wrong-node"} RetryReason
 */

/**
 * Where the client is in the call; it changes only in ReconnectPolicy.fire, along
 * TRANSITIONS. IDLE: connect() not called yet; LOOKING_UP: an attempt asks where to
 * signal; JOINING: a socket (or a redirect's) has not brought `joined` yet; JOINED: in the
 * call; WAITING: between attempts; LEAVING: `leave` sent, the close (or a second) ends
 * the call; CLOSED: "closed" was emitted, nothing reconnects.
 */
export const ClientState = Object.freeze({
  IDLE: "idle",
  LOOKING_UP: "looking-up",
  JOINING: "joining",
  JOINED: "joined",
  WAITING: "waiting",
  LEAVING: "leaving",
  CLOSED: "closed",
});
/** @typedef {(typeof ClientState)[keyof typeof ClientState]} ClientState */

/**
 * What happens to the client: connect(); the wait is over ("attempt"); the lookup said
 * where to signal ("found"); WRONG_NODE followed; `joined`; the session ended and another
 * attempt follows ("retry"); leave() on an open socket; the call is over ("end").
 * @typedef {"connect" | "attempt" | "found" | "redirect" | "joined" | "retry" | "leave" | "end"} ClientEvent
 */

const S = ClientState;

/**
 * All the transitions: event -> {from: to}. An event in a state not listed changes nothing.
 * @type {Readonly<Record<ClientEvent, Readonly<Partial<Record<ClientState, ClientState>>>>>}
 */
export const TRANSITIONS = Object.freeze({
  connect: Object.freeze({ [S.IDLE]: S.LOOKING_UP }),
  attempt: Object.freeze({ [S.WAITING]: S.LOOKING_UP }),
  found: Object.freeze({ [S.LOOKING_UP]: S.JOINING }),
  // The server redirects only a join; a 4421 close is followed the same way whenever it comes.
  redirect: Object.freeze({ [S.JOINING]: S.JOINING, [S.JOINED]: S.JOINING }),
  joined: Object.freeze({ [S.JOINING]: S.JOINED }),
  retry: Object.freeze({ [S.JOINING]: S.WAITING, [S.JOINED]: S.WAITING }),
  leave: Object.freeze({ [S.JOINING]: S.LEAVING, [S.JOINED]: S.LEAVING }),
  end: Object.freeze({
    [S.IDLE]: S.CLOSED, [S.LOOKING_UP]: S.CLOSED, [S.JOINING]: S.CLOSED,
    [S.JOINED]: S.CLOSED, [S.WAITING]: S.CLOSED, [S.LEAVING]: S.CLOSED,
  }),
});

/**
 * @param {ClientState} state
 * @param {ClientEvent} event
 * @returns {ClientState | null}  the next state, or null when `event` does not apply in `state`
 */
export function nextState(state, event) {
  return TRANSITIONS[event]?.[state] ?? null;
}

/**
 * Milliseconds to wait before reconnect attempt number `failures` (1 = the first retry):
 * exponential from 0.5 s up to 10 s, with jitter so that a room does not come back in step.
 * @param {number} failures
 * @param {() => number} [random]
 * @returns {number}
 */
export function backoffMs(failures, random = Math.random) {
  const base = Math.min(10_000, 500 * 2 ** Math.max(0, failures - 1));
  return Math.round(base * (0.75 + 0.5 * random()));
}

/**
 * What a session learnt about why it ends (all null: nothing).
 * @typedef {object} Ending
 * @property {string | null} redirect  WRONG_NODE: where the room really is
 * @property {number | null} retryAfter  server-shutdown, RATE_LIMITED: seconds to wait
 * @property {RetryReason | null} reason  what the server said about why the session ends
 * @property {string | null} error  a final error code (a server's, or NO_WEBRTC)
 */

/**
 * How a session ended: `code`, the WebSocket close code (null when this end gave the socket
 * up first); `abandoned`, this end gave it up (media failed, join timeout, rejoin);
 * `joinedAt`, when `joined` came (Date.now()); `mediaConnected`, media ever connected.
 * @typedef {Ending & {code: number | null, abandoned: boolean, joinedAt: number | null,
 *   mediaConnected: boolean}} SessionEnd
 */

/** @returns {Ending} */
export function noEnding() {
  return { redirect: null, retryAfter: null, reason: null, error: null };
}

/**
 * What a server `error` message means for the reconnect.
 * @param {any} msg
 * @returns {Partial<Ending> | null}  null: an error that changes nothing (log it)
 */
export function readServerError(msg) {
  const code = String(msg?.code);
  if (code === "WRONG_NODE" && isSocketUrl(msg.signaling_url)) return { redirect: msg.signaling_url };
  // Too many connections from this address: the close (4429) follows; wait as told.
  if (code === "RATE_LIMITED" && Number(msg.retry_after) > 0) {
    return { retryAfter: Number(msg.retry_after), reason: "unavailable" };
  }
  // The close (1013) follows; back off, it is not our network.
  if (code === "REGISTRY_UNAVAILABLE") return { reason: "unavailable" };
  if (FINAL_ERRORS.has(code)) return { error: code };
  return null;
}

/**
 * What `server-shutdown` means (contract C2): the call goes on until the close (1001);
 * come back after retry_after.
 * @param {any} msg
 * @returns {{retryAfter: number, reason: RetryReason}}
 */
export function readShutdown(msg) {
  return { retryAfter: Math.max(0, Number(msg?.retry_after) || 0), reason: "restart" };
}

/**
 * Why the page waits after a session ended like `end`.
 * @param {SessionEnd} end
 * @param {boolean} serviceDown  this attempt's room lookup got a 5xx
 * @returns {RetryReason}
 */
export function retryReason(end, serviceDown) {
  if (end.reason) return end.reason;
  if (end.code === TRY_AGAIN_CLOSE || serviceDown) return "unavailable";
  if (end.code === WRONG_NODE_CLOSE) return "wrong-node";
  return "lost";
}

/**
 * What the client does after a session ended.
 * @typedef {{action: "end", error: string | null}
 *   | {action: "redirect", url: string}
 *   | {action: "retry", delayMs: number, attempt: number, reason: RetryReason}} Decision
 */

/**
 * @typedef {object} PolicyOptions
 * @property {string} ownUrl  the page's same-origin signaling URL for the room
 * @property {number} [maxAttempts]  attempts in a row lost to the network before giving up
 * @property {number} [maxFirstAttempts]  the same before the first join
 * @property {() => number} [random]  jitter, in [0, 1)
 * @property {() => number} [now]  milliseconds, like Date.now
 */

/**
 * The client's state and everything that decides its next attempt. The client tells it
 * what happened (the methods below) and does what it says; it never touches a socket.
 */
export class ReconnectPolicy {
  /** @type {ClientState} */
  #state = ClientState.IDLE;

  /** @param {PolicyOptions} options */
  constructor(options) {
    this.ownUrl = options.ownUrl;
    this.maxAttempts = options.maxAttempts ?? 30;
    // Someone opening the link should not wait minutes to learn the server is unreachable.
    this.maxFirstAttempts = options.maxFirstAttempts ?? 4;
    this.random = options.random ?? Math.random;
    this.now = options.now ?? Date.now;
    /** Whether a join ever succeeded: giving up then takes maxAttempts, not maxFirstAttempts. */
    this.everJoined = false;
    /** Failed attempts in a row: the backoff grows with them. */
    this.failures = 0;
    /** Those of them lost to the network (reason "lost"): too many and the call gives up. */
    this.lostAttempts = 0;
    /** WRONG_NODE redirects followed in this attempt. */
    this.redirects = 0;
    /** @type {string | null} the signaling URL of the last session that brought `joined` */
    this.lastGoodUrl = null;
    /** Failed lookups in a row: the fallback URL alternates with them. */
    this.lookupFailures = 0;
    /** This attempt's lookup got a 5xx: the service is down, not the user's network. */
    this.serviceDown = false;
  }

  /** @returns {ClientState} */
  get state() {
    return this.#state;
  }

  /**
   * The one place the state changes.
   * @param {ClientEvent} event
   * @returns {boolean}  false (and no change) when `event` does not apply now
   */
  fire(event) {
    const next = nextState(this.#state, event);
    if (next === null) return false;
    if (next === ClientState.LOOKING_UP) {
      // A new attempt: its own redirects, its own lookup.
      this.redirects = 0;
      this.serviceDown = false;
    }
    this.#state = next;
    return true;
  }

  /** A call that went well starts its backoff afresh. */
  resetBackoff() {
    this.failures = 0;
    this.lostAttempts = 0;
  }

  /** The room lookup answered (with a URL or a final refusal). */
  lookupAnswered() {
    this.lookupFailures = 0;
  }

  /**
   * The room lookup failed. The room API may be down (Redis) while the sockets are not:
   * try the socket that last brought `joined` (the room most likely still lives there),
   * then the page's own origin, in turn while the lookups keep failing.
   * @param {number | null} status  the HTTP status, null for a network error
   * @returns {string}  where to signal instead
   */
  lookupFailed(status) {
    this.serviceDown = status !== null && status >= 500;
    const own = this.ownUrl;
    const urls = this.lastGoodUrl && this.lastGoodUrl !== own ? [this.lastGoodUrl, own] : [own];
    return urls[this.lookupFailures++ % urls.length];
  }

  /**
   * The socket at `url` brought `joined`.
   * @param {string} url
   * @returns {boolean}  false when the client is not joining (then nothing changes)
   */
  joined(url) {
    if (!this.fire("joined")) return false;
    this.everJoined = true;
    this.lastGoodUrl = url;
    this.lookupFailures = 0;
    return true;
  }

  /** The media connection connected: the call works. */
  mediaConnected() {
    this.resetBackoff();
  }

  /**
   * The current session ended: end the call, follow a redirect, or wait and try again.
   * @param {SessionEnd} end
   * @returns {Decision}
   */
  sessionEnded(end) {
    if (this.state === ClientState.LEAVING) return this.over(null);
    if (end.error) return this.over(end.error);
    if (!end.abandoned && end.code !== null && FINAL_CLOSE_CODES.has(end.code)) return this.over(null);
    if (end.redirect && end.code === WRONG_NODE_CLOSE && this.redirects < MAX_REDIRECTS) {
      this.redirects += 1;
      this.fire("redirect");
      return { action: "redirect", url: end.redirect };
    }
    if (end.joinedAt !== null && this.now() - end.joinedAt > STABLE_MS) this.resetBackoff();
    const reason = retryReason(end, this.serviceDown);
    let delayMs;
    if (end.retryAfter !== null) {
      delayMs = end.retryAfter * 1000 + Math.round(this.random() * 1000);
    } else if (end.abandoned && end.mediaConnected) {
      delayMs = 0; // media flowed a moment ago (a rejoin, a connection that broke): straight back
    } else {
      this.failures += 1;
      // Only the network counts towards giving up: the server that answered is there.
      if (reason === "lost") this.lostAttempts += 1;
      delayMs = backoffMs(this.failures, this.random);
    }
    if (this.lostAttempts >= (this.everJoined ? this.maxAttempts : this.maxFirstAttempts)) {
      return this.over("UNREACHABLE");
    }
    this.fire("retry");
    return { action: "retry", delayMs, attempt: this.failures, reason };
  }

  /**
   * @param {string | null} error
   * @returns {Decision}
   */
  over(error) {
    this.fire("end");
    return { action: "end", error };
  }
}
