// Kaamos signaling client, the one module the page uses: KaamosClient joins a room and
// joins again after a dropped socket, a server restart or a failed media connection. No DOM.
// The contract is docs/protocol.md; names here follow it exactly. The parts:
// lookup.js (where to signal), session.js (one socket's join), reconnect.js (the state,
// when and where to try again, when to give up).

import { LookupError, lookupRoom, signalingUrl } from "./lookup.js";
import { ClientState, ReconnectPolicy } from "./reconnect.js";
import { Session } from "./session.js";

export { LookupError, lookupRoom, signalingUrl } from "./lookup.js";
export {
  ClientState,
  FINAL_CLOSE_CODES,
  FINAL_ERRORS,
  MAX_REDIRECTS,
  TRY_AGAIN_CLOSE,
  WRONG_NODE_CLOSE,
  backoffMs,
} from "./reconnect.js";

/** @typedef {import("./session.js").Source} Source */
/** @typedef {import("./session.js").MutableSource} MutableSource */
/** @typedef {import("./session.js").PeerInfo} PeerInfo */
/** @typedef {import("./session.js").TrackInfo} TrackInfo */
/** @typedef {import("./session.js").JoinedMessage} JoinedMessage */
/** @typedef {import("./session.js").RemoteTrack} RemoteTrack */
/** @typedef {import("./session.js").LocalTracks} LocalTracks */
/** @typedef {import("./session.js").SessionOwner} SessionOwner */
/** @typedef {import("./reconnect.js").RetryReason} RetryReason */
/** @typedef {import("./reconnect.js").SessionEnd} SessionEnd */
/** @typedef {import("./lookup.js").RoomLookup} RoomLookup */

/**
 * Detail of the "state" event.
 * @typedef {object} CallState
 * @property {"connecting" | "connected" | "reconnecting"} state
 * @property {number} [retryInMs]  when reconnecting: the wait before the next attempt
 * @property {number} [attempt]  when reconnecting: how many attempts failed in a row
 * @property {RetryReason} [reason]  when reconnecting: why
 */

/**
 * Detail of the "closed" event: the call is over and will not reconnect.
 * @typedef {object} Closed
 * @property {number | null} code  the last WebSocket close code, if a socket was open
 * @property {string | null} error  a server error code (ROOM_FULL, ...), "UNREACHABLE"
 *   when every attempt failed for network reasons, "NO_WEBRTC" when the browser cannot
 *   create an RTCPeerConnection, or null after leave() and room-ended
 */

/**
 * @typedef {object} ClientOptions
 * @property {string} roomId
 * @property {string} name
 * @property {LocalTracks} localTracks  The tracks to publish; their keys become `publish`.
 * @property {{protocol: string, host: string}} [location]  Defaults to globalThis.location.
 * @property {number} [maxAttempts]  attempts in a row lost to the network before giving up
 *   (UNREACHABLE); the service's own refusals ("unavailable", "wrong-node") do not count
 * @property {number} [maxFirstAttempts]  the same before the first join
 */

/** @type {Source[]} */
const SOURCE_ORDER = ["camera", "microphone", "screen"];

/**
 * One participant in a room, for as long as the page wants to be in the call: it joins,
 * and after a dropped socket, a server restart or a failed media connection it joins again
 * (each join is a new peer for the server) until leave() or a final refusal. Its state
 * (`state`, a ClientState) and every decision about the next attempt are the
 * ReconnectPolicy's; this class does what the policy says with sockets and timers.
 *
 * Events (all CustomEvent, payload in `detail`):
 * - "state": CallState
 * - "joined": JoinedMessage — after every (re)join; the peers listed are all there are
 * - "peer-joined", "peer-updated": PeerInfo
 * - "peer-left": {peer_id: string}
 * - "track": RemoteTrack — a receiving m-line now carries this peer's source
 * - "track-removed": RemoteTrack — that m-line turned inactive, moved, or the session ended
 * - "connection-state": RTCPeerConnectionState of the media connection
 * - "server-shutdown": {retryAfter: number} — the server restarts soon; the call goes on
 * - "closed": Closed — the call is over
 *
 * @implements {SessionOwner}
 */
export class KaamosClient extends EventTarget {
  /** @param {ClientOptions} options */
  constructor(options) {
    super();
    this.roomId = options.roomId;
    this.name = options.name;
    /** @type {LocalTracks} */
    this.localTracks = { ...options.localTracks };
    this.location = options.location ?? globalThis.location;
    this.policy = new ReconnectPolicy({
      ownUrl: signalingUrl(this.location, this.roomId),
      maxAttempts: options.maxAttempts,
      maxFirstAttempts: options.maxFirstAttempts,
    });
    /** @type {{camera: boolean, microphone: boolean}} */
    this.muted = { camera: false, microphone: false };
    /** @type {Session | null} */
    this.session = null;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.retryTimer = undefined;
    /** @type {number | null} */
    this.lastCloseCode = null;
  }

  /** @returns {ClientState} where the client is in the call */
  get state() {
    return this.policy.state;
  }

  /** @returns {boolean} whether a join ever succeeded */
  get everJoined() {
    return this.policy.everJoined;
  }

  /** @returns {RTCPeerConnection | null} the current media connection */
  get pc() {
    return this.session?.pc ?? null;
  }

  /** @returns {string | null} our peer id in the current join */
  get peerId() {
    return this.session?.peerId ?? null;
  }

  /** @returns {Map<string, RemoteTrack>} mid -> remote track, in the current join */
  get remoteTracks() {
    return this.session?.remoteTracks ?? new Map();
  }

  /** @returns {Source[]} the sources this client publishes, in protocol order */
  get publishing() {
    return SOURCE_ORDER.filter((s) => this.localTracks[s]);
  }

  /** Join the room (resolving where to signal first). */
  connect() {
    if (!this.policy.fire("connect")) return;
    this.emit("state", { state: "connecting" });
    this.attempt();
  }

  /**
   * Tell the others that a source is muted; the track is disabled too, so only black
   * frames or silence leave the browser. Remembered across reconnects.
   * @param {MutableSource} source
   * @param {boolean} muted
   */
  mute(source, muted) {
    this.muted[source] = muted;
    const track = this.localTracks[source];
    if (track) track.enabled = !muted;
    this.session?.send({ type: "mute", source, muted });
  }

  /**
   * Start, replace or stop sending a source (screen share, a new camera, an unplugged
   * device). A new source is published and sent once the server's offer gives it an m-line.
   * @param {Source} source
   * @param {MediaStreamTrack | null} track
   */
  async setTrack(source, track) {
    const had = Boolean(this.localTracks[source]);
    if (track) this.localTracks[source] = track;
    else delete this.localTracks[source];
    if (track && source !== "screen") track.enabled = !this.muted[source];
    const session = this.session;
    if (!session?.peerId) return; // the next join publishes what there is
    if (had && track) {
      await session.sendTransceivers.get(source)?.sender.replaceTrack(track);
    } else if (!had && track) {
      session.send({ type: "publish", source });
    } else if (had && !track) {
      await session.sendTransceivers.get(source)?.sender.replaceTrack(null);
      session.send({ type: "unpublish", source });
    }
  }

  /**
   * Leave now and join again at once, e.g. under a new name.
   * @param {string} name
   */
  rejoin(name) {
    this.name = name;
    switch (this.policy.state) {
      case ClientState.JOINING:
      case ClientState.JOINED:
        // Its end comes back through onSessionClosed, which starts the next attempt.
        this.session?.abandon("rejoin");
        break;
      case ClientState.WAITING:
        clearTimeout(this.retryTimer);
        this.retry();
        break;
      // IDLE: connect() joins under the new name; LOOKING_UP: the join on its way does.
      // LEAVING, CLOSED: over.
    }
  }

  /**
   * Leave the room. The server answers `leave` by closing the socket with 1000; "closed"
   * follows that close (or comes after a second if the server does not answer).
   */
  leave() {
    if (this.policy.state === ClientState.LEAVING || this.policy.state === ClientState.CLOSED) return;
    clearTimeout(this.retryTimer);
    const session = this.session;
    if (!session?.canSend || !this.policy.fire("leave")) {
      this.end(null);
      return;
    }
    session.send({ type: "leave" });
    session.pc?.close();
    setTimeout(() => this.end(null), 1000);
  }

  /**
   * @param {string} type
   * @param {unknown} detail
   */
  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** The wait between attempts is over. */
  retry() {
    if (this.policy.fire("attempt")) this.attempt();
  }

  /** One attempt: where to signal, then a socket (redirects are followed in onSessionClosed). */
  async attempt() {
    this.retryTimer = undefined;
    /** @type {RoomLookup} */
    let where;
    try {
      where = await lookupRoom(this.location, this.roomId);
      this.policy.lookupAnswered();
    } catch (err) {
      console.info("kaamos: room lookup failed:", err);
      where = { signalingUrl: this.policy.lookupFailed(err instanceof LookupError ? err.status : null) };
    }
    if (this.policy.state !== ClientState.LOOKING_UP) return; // left meanwhile
    if ("error" in where) {
      this.end(where.error);
      return;
    }
    this.policy.fire("found");
    this.session = new Session(this, where.signalingUrl);
  }

  /**
   * @param {Session} session
   * @param {JoinedMessage} msg
   */
  onJoined(session, msg) {
    if (session !== this.session || !this.policy.joined(session.url)) return;
    this.emit("joined", msg);
    this.emit("state", { state: "connected" });
    // A rejoin is a new peer for the server: tell it again what is muted.
    for (const source of /** @type {MutableSource[]} */ (["camera", "microphone"])) {
      if (this.muted[source] && this.localTracks[source]) session.send({ type: "mute", source, muted: true });
    }
  }

  /** @param {Session} session */
  onMediaConnected(session) {
    if (session === this.session) this.policy.mediaConnected();
  }

  /**
   * @param {Session} session
   * @param {SessionEnd} end
   */
  onSessionClosed(session, end) {
    if (session !== this.session || this.policy.state === ClientState.CLOSED) return;
    this.lastCloseCode = end.code ?? this.lastCloseCode;
    const next = this.policy.sessionEnded(end);
    if (next.action === "end") {
      this.closed(next.error);
    } else if (next.action === "redirect") {
      this.session = new Session(this, next.url);
    } else {
      const { delayMs, attempt, reason } = next;
      this.emit("state", { state: "reconnecting", retryInMs: delayMs, attempt, reason });
      this.retryTimer = setTimeout(() => this.retry(), delayMs);
    }
  }

  /**
   * End the call (if it is not over yet).
   * @param {string | null} error
   */
  end(error) {
    if (this.policy.fire("end")) this.closed(error);
  }

  /**
   * The call is over (the policy is CLOSED): stop waiting and tell the page.
   * @param {string | null} error
   */
  closed(error) {
    clearTimeout(this.retryTimer);
    this.emit("closed", { code: this.lastCloseCode, error });
  }
}
