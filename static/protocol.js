// Kaamos signaling client: WebSocket + one RTCPeerConnection, reconnecting; no DOM.
// The contract is docs/protocol.md; names here follow it exactly.

/** @typedef {"camera" | "microphone" | "screen"} Source */
/** @typedef {"camera" | "microphone"} MutableSource */

/**
 * @typedef {object} PeerInfo
 * @property {string} peer_id
 * @property {string} name
 * @property {Source[]} sources
 * @property {{camera: boolean, microphone: boolean}} muted
 */

/**
 * @typedef {object} TrackInfo
 * @property {string} peer_id
 * @property {Source} source
 */

/**
 * @typedef {object} JoinedMessage
 * @property {"joined"} type
 * @property {string} peer_id
 * @property {string} room_id
 * @property {PeerInfo[]} peers
 * @property {RTCIceServer[]} ice_servers
 */

/**
 * @typedef {object} OfferMessage
 * @property {"offer"} type
 * @property {string} sdp
 * @property {Object<string, TrackInfo>} tracks
 */

/**
 * @typedef {object} IceCandidateMessage
 * @property {"ice-candidate"} type
 * @property {string | null} candidate
 * @property {string | null} [sdpMid]
 * @property {number | null} [sdpMLineIndex]
 */

/**
 * Detail of the "track" event: a remote track now carries `source` of `peer_id`.
 * @typedef {object} RemoteTrack
 * @property {string} peer_id
 * @property {Source} source
 * @property {string} mid
 * @property {MediaStreamTrack} track
 */

/**
 * Why the client is about to try again: "lost" (the network or the media connection),
 * "restart" (server-shutdown), "unavailable" (the service answered but cannot take the
 * call now: REGISTRY_UNAVAILABLE, close 1013, a 5xx room lookup, RATE_LIMITED) or
 * "wrong-node" (WRONG_NODE redirects went round more than MAX_REDIRECTS times).
 * @typedef {"lost" | "restart" | "unavailable" | "wrong-node"} RetryReason
 */

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
 * @typedef {object} LocalTracks
 * @property {MediaStreamTrack} [camera]
 * @property {MediaStreamTrack} [microphone]
 * @property {MediaStreamTrack} [screen]
 */

/**
 * What `GET /api/rooms/{id}` says: where to signal, or why not to.
 * @typedef {{signalingUrl: string} | {error: string}} RoomLookup
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

/** Close codes after which a client must not reconnect (docs/protocol.md, "Close codes"). */
export const FINAL_CLOSE_CODES = new Set([1000, 4001, 4400, 4404, 4409, 4410]);
/** Server error codes that end the call for good. */
export const FINAL_ERRORS = new Set(["INVALID_ROOM_ID", "ROOM_NOT_FOUND", "ROOM_FULL", "ROOM_EXPIRED"]);
/** A node that does not hold the room closes with this after a WRONG_NODE error. */
export const WRONG_NODE_CLOSE = 4421;
export const MAX_REDIRECTS = 3;
/** REGISTRY_UNAVAILABLE closes with this: the service cannot take the call right now. */
export const TRY_AGAIN_CLOSE = 1013;
/** A socket that has not brought `joined` by then is given up and retried. */
const JOIN_TIMEOUT_MS = 10_000;
/** A join that lasted this long resets the backoff. */
const STABLE_MS = 30_000;

/** @type {Source[]} */
const SOURCE_ORDER = ["camera", "microphone", "screen"];

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
function isSocketUrl(url) {
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
 * The media connection. An ICE server entry the browser refuses (a URL without stun: or
 * turn:, TURN without credentials) makes the constructor throw: rather than stay stuck,
 * leave such entries out, and say which (by URL only: TURN entries carry credentials).
 * @param {RTCIceServer[]} iceServers
 * @returns {RTCPeerConnection | null}  null when the browser cannot make one at all
 */
function newPeerConnection(iceServers) {
  /** @param {RTCIceServer[]} servers */
  const make = (servers) => new RTCPeerConnection({ iceServers: servers, bundlePolicy: "max-bundle" });
  try {
    return make(iceServers);
  } catch (err) {
    console.warn("kaamos: the browser refuses the ice_servers, checking them one by one:", err);
  }
  const usable = iceServers.filter((server) => {
    try {
      make([server]).close();
      return true;
    } catch (err) {
      console.warn("kaamos: leaving out an ICE server the browser refuses:", JSON.stringify(server?.urls), err);
      return false;
    }
  });
  for (const servers of [usable, []]) {
    try {
      return make(servers);
    } catch (err) {
      console.error("kaamos: cannot create an RTCPeerConnection:", err);
    }
  }
  return null;
}

/**
 * One WebSocket and its RTCPeerConnection: one join of the room. A reconnect is a new
 * Session (the server sees a new peer). It reports to its KaamosClient through `owner`.
 */
class Session {
  /**
   * @param {KaamosClient} owner
   * @param {string} url
   */
  constructor(owner, url) {
    this.owner = owner;
    this.url = url;
    this.ws = new WebSocket(url);
    /** @type {RTCPeerConnection | null} */
    this.pc = null;
    /** @type {string | null} */
    this.peerId = null;
    /** @type {Map<string, RemoteTrack>} mid -> what it receives now */
    this.remoteTracks = new Map();
    /** @type {Map<Source, RTCRtpTransceiver>} where the server wants our own sources */
    this.sendTransceivers = new Map();
    /** @type {IceCandidateMessage[]} candidates gathered before the first answer */
    this.pendingCandidates = [];
    this.answered = false;
    this.closed = false;
    /** Set when this end gave the session up (media failed, join timeout, rejoin). */
    this.abandoned = false;
    /** @type {string | null} WRONG_NODE: where the room really is */
    this.redirect = null;
    /** @type {number | null} server-shutdown, RATE_LIMITED: seconds to wait before reconnecting */
    this.retryAfter = null;
    /** @type {RetryReason | null} what the server said about why this session ends */
    this.reason = null;
    /** @type {string | null} a final server error code */
    this.error = null;
    /** @type {number | null} when `joined` came (Date.now()) */
    this.joinedAt = null;
    /** Whether media ever connected: then a later failure is a fresh start, no backoff. */
    this.mediaConnected = false;
    /** Server messages are handled one at a time, in order (offers are async). */
    this.inbox = Promise.resolve();
    this.joinTimer = setTimeout(() => this.abandon("no joined in time"), JOIN_TIMEOUT_MS);

    this.ws.addEventListener("open", () => {
      this.send({ type: "join", name: owner.name, publish: owner.publishing });
    });
    this.ws.addEventListener("message", (event) => {
      if (typeof event.data !== "string") return;
      /** @type {any} */
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        console.warn("kaamos: ignoring a frame that is not JSON");
        return;
      }
      this.inbox = this.inbox
        .then(() => this.handle(msg))
        .catch((err) => console.error("kaamos: handling", msg?.type, err));
    });
    // Through the inbox, so that an error message is handled before its close.
    this.ws.addEventListener("close", (event) => {
      this.inbox = this.inbox.then(() => this.finish(event.code));
    });
  }

  /** @param {object} msg */
  send(msg) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  /**
   * Give this session up from our side; the owner reconnects.
   * @param {string} why
   */
  abandon(why) {
    if (this.closed || this.abandoned) return;
    console.info("kaamos: reconnecting:", why);
    this.abandoned = true;
    this.pc?.close();
    // 4000: an application close code, so the server logs it as ours.
    this.ws.close(4000, why.slice(0, 100));
    // A socket still connecting may take long to report its close; do not wait for it.
    this.inbox = this.inbox.then(() => this.finish(null));
  }

  /** @param {any} msg */
  async handle(msg) {
    if (this.closed) return;
    switch (msg?.type) {
      case "joined":
        this.onJoined(msg);
        break;
      case "offer":
        await this.onOffer(msg);
        break;
      case "ice-candidate":
        await this.onRemoteCandidate(msg);
        break;
      case "peer-joined":
      case "peer-updated":
        this.owner.emit(msg.type, msg.peer);
        break;
      case "peer-left":
        this.owner.emit("peer-left", { peer_id: msg.peer_id });
        break;
      case "error":
        this.onError(msg);
        break;
      case "server-shutdown":
        // Contract C2: the call goes on until the close (1001); come back after retry_after.
        this.retryAfter = Math.max(0, Number(msg.retry_after) || 0);
        this.reason = "restart";
        this.owner.emit("server-shutdown", { retryAfter: this.retryAfter });
        break;
      case "room-ended":
        // The close with 4001 follows and ends the call.
        break;
      default:
        console.warn("kaamos: unknown message type", msg?.type);
    }
  }

  /** @param {any} msg */
  onError(msg) {
    const code = String(msg.code);
    if (code === "WRONG_NODE" && isSocketUrl(msg.signaling_url)) {
      this.redirect = msg.signaling_url;
    } else if (code === "RATE_LIMITED" && Number(msg.retry_after) > 0) {
      // Too many connections from this address: the close (4429) follows; wait as told.
      this.retryAfter = Number(msg.retry_after);
      this.reason = "unavailable";
    } else if (code === "REGISTRY_UNAVAILABLE") {
      this.reason = "unavailable"; // the close (1013) follows; back off, it is not our network
    } else if (FINAL_ERRORS.has(code)) {
      this.error = code;
    } else {
      console.warn("kaamos: server error", code, msg.message);
    }
  }

  /** @param {JoinedMessage} msg */
  onJoined(msg) {
    clearTimeout(this.joinTimer);
    // Always pass the list, even empty (docs/protocol.md, "joined").
    const pc = newPeerConnection(Array.isArray(msg.ice_servers) ? msg.ice_servers : []);
    if (!pc) {
      this.error = "NO_WEBRTC";
      this.abandon("no RTCPeerConnection");
      return;
    }
    this.peerId = msg.peer_id;
    this.joinedAt = Date.now();
    this.pc = pc;
    pc.addEventListener("icecandidate", (event) => this.onLocalCandidate(event.candidate));
    pc.addEventListener("connectionstatechange", () => {
      if (this.closed || this.abandoned) return;
      this.owner.emit("connection-state", pc.connectionState);
      if (pc.connectionState === "connected") {
        this.mediaConnected = true;
        this.owner.resetBackoff();
      }
      // The server has no ICE restart: a failed media connection is a rejoin.
      if (pc.connectionState === "failed") this.abandon("media connection failed");
    });
    this.owner.onJoined(this, msg);
  }

  /** @param {OfferMessage} msg */
  async onOffer(msg) {
    const pc = this.pc;
    if (!pc) throw new Error("offer before joined");
    const tracks = msg.tracks ?? {};
    await pc.setRemoteDescription({ type: "offer", sdp: msg.sdp });
    // Attach our own media by mid, never with addTrack (docs/protocol.md).
    this.sendTransceivers.clear();
    for (const t of pc.getTransceivers()) {
      const info = t.mid === null ? undefined : tracks[t.mid];
      if (info && info.peer_id === this.peerId) {
        t.direction = "sendonly";
        this.sendTransceivers.set(info.source, t);
        const track = this.owner.localTracks[info.source] ?? null;
        if (t.sender.track !== track) await t.sender.replaceTrack(track);
      }
    }
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    this.send({ type: "answer", sdp: pc.localDescription?.sdp ?? answer.sdp });
    if (!this.answered) {
      this.answered = true;
      for (const c of this.pendingCandidates) this.send(c);
      this.pendingCandidates = [];
    }
    this.updateRemoteTracks(tracks);
  }

  /**
   * Work out from `tracks` which receiving m-lines changed owner. A reused m-line may go
   * from one peer to another in a single offer without a new "track" event from the
   * browser, so `tracks` is the only reliable source.
   * @param {Object<string, TrackInfo>} tracks
   */
  updateRemoteTracks(tracks) {
    if (!this.pc) return;
    for (const t of this.pc.getTransceivers()) {
      if (t.mid === null) continue;
      const info = tracks[t.mid];
      const remote = info && info.peer_id !== this.peerId ? info : null;
      const before = this.remoteTracks.get(t.mid);
      if (before && remote && before.peer_id === remote.peer_id && before.source === remote.source) {
        continue;
      }
      if (before) {
        this.remoteTracks.delete(t.mid);
        this.owner.emit("track-removed", before);
      }
      if (remote) {
        /** @type {RemoteTrack} */
        const now = { peer_id: remote.peer_id, source: remote.source, mid: t.mid, track: t.receiver.track };
        this.remoteTracks.set(t.mid, now);
        this.owner.emit("track", now);
      }
    }
  }

  /** @param {RTCIceCandidate | null} candidate */
  onLocalCandidate(candidate) {
    /** @type {IceCandidateMessage} */
    let msg;
    if (candidate && candidate.candidate) {
      msg = {
        type: "ice-candidate",
        candidate: candidate.candidate,
        sdpMid: candidate.sdpMid,
        sdpMLineIndex: candidate.sdpMLineIndex,
      };
    } else {
      // End of candidates. With max-bundle everything runs on the first m-line.
      const first = this.pc?.getTransceivers().find((t) => t.mid !== null);
      msg = { type: "ice-candidate", candidate: "", sdpMid: first?.mid ?? "0", sdpMLineIndex: 0 };
    }
    // The server ignores candidates sent before the first answer.
    if (this.answered) this.send(msg);
    else this.pendingCandidates.push(msg);
  }

  /** @param {IceCandidateMessage} msg */
  async onRemoteCandidate(msg) {
    if (!this.pc || !this.pc.remoteDescription) return;
    try {
      await this.pc.addIceCandidate({
        candidate: msg.candidate ?? "",
        sdpMid: msg.sdpMid ?? null,
        sdpMLineIndex: msg.sdpMLineIndex ?? null,
      });
    } catch (err) {
      console.warn("kaamos: server candidate rejected", err);
    }
  }

  /** @param {number | null} code  null when this end abandoned the socket */
  finish(code) {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.joinTimer);
    this.pc?.close();
    for (const rt of this.remoteTracks.values()) this.owner.emit("track-removed", rt);
    this.remoteTracks.clear();
    this.owner.onSessionClosed(this, code);
  }
}

/**
 * One participant in a room, for as long as the page wants to be in the call: it joins,
 * and after a dropped socket, a server restart or a failed media connection it joins again
 * (each join is a new peer for the server) until leave() or a final refusal.
 *
 * Events (all CustomEvent, payload in `detail`):
 * - "state": CallState
 * - "joined": JoinedMessage — after every (re)join; the peers listed are all there are
 * - "peer-joined", "peer-updated": PeerInfo
 * - "peer-left": {peer_id: string}
 * - "track": RemoteTrack — a receiving m-line now carries this peer's source
 * - "track-removed": RemoteTrack — that m-line turned inactive, moved, or the session ended
 * - "connection-state": RTCPeerConnectionState of the media connection
 * - "closed": Closed — the call is over
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
    this.maxAttempts = options.maxAttempts ?? 30;
    // Someone opening the link should not wait minutes to learn the server is unreachable.
    this.maxFirstAttempts = options.maxFirstAttempts ?? 4;
    this.everJoined = false;
    /** @type {{camera: boolean, microphone: boolean}} */
    this.muted = { camera: false, microphone: false };
    /** @type {Session | null} */
    this.session = null;
    /** Failed attempts in a row: the backoff grows with them. */
    this.failures = 0;
    /** Those of them lost to the network (reason "lost"): too many and the call gives up. */
    this.lostAttempts = 0;
    this.redirects = 0;
    /** @type {string | null} the signaling URL of the last session that brought `joined` */
    this.lastGoodUrl = null;
    /** Failed lookups in a row: the fallback URL alternates with them. */
    this.lookupFailures = 0;
    /** This attempt's lookup got a 5xx: the service is down, not the user's network. */
    this.serviceDown = false;
    this.finished = false;
    this.leaving = false;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.retryTimer = undefined;
    /** @type {number | null} */
    this.lastCloseCode = null;
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
    if (this.finished || this.leaving) return;
    if (this.session && !this.session.closed) {
      this.session.abandon("rejoin");
    } else {
      clearTimeout(this.retryTimer);
      this.attempt();
    }
  }

  /**
   * Leave the room. The server answers `leave` by closing the socket with 1000; "closed"
   * follows that close (or comes after a second if the server does not answer).
   */
  leave() {
    if (this.finished || this.leaving) return;
    this.leaving = true;
    clearTimeout(this.retryTimer);
    const session = this.session;
    if (!session || session.closed || session.ws.readyState !== WebSocket.OPEN) {
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

  /** A call that went well starts its backoff afresh. */
  resetBackoff() {
    this.failures = 0;
    this.lostAttempts = 0;
  }

  /**
   * Where to signal when the room lookup failed. The room API may be down (Redis) while
   * the sockets are not: first the socket that last brought `joined` (the room most likely
   * still lives there), then the page's own origin, in turn while the lookups keep failing.
   * @returns {string}
   */
  fallbackUrl() {
    const own = signalingUrl(this.location, this.roomId);
    const urls = this.lastGoodUrl && this.lastGoodUrl !== own ? [this.lastGoodUrl, own] : [own];
    return urls[this.lookupFailures++ % urls.length];
  }

  /** One attempt: where to signal, then a socket (redirects are followed in onSessionClosed). */
  async attempt() {
    this.retryTimer = undefined;
    this.redirects = 0;
    this.serviceDown = false;
    /** @type {RoomLookup} */
    let where;
    try {
      where = await lookupRoom(this.location, this.roomId);
      this.lookupFailures = 0;
    } catch (err) {
      console.info("kaamos: room lookup failed:", err);
      this.serviceDown = err instanceof LookupError && err.status >= 500;
      where = { signalingUrl: this.fallbackUrl() };
    }
    if (this.finished || this.leaving) return;
    if ("error" in where) {
      this.end(where.error);
      return;
    }
    this.session = new Session(this, where.signalingUrl);
  }

  /**
   * @param {Session} session
   * @param {JoinedMessage} msg
   */
  onJoined(session, msg) {
    if (session !== this.session) return;
    this.everJoined = true;
    this.lastGoodUrl = session.url;
    this.lookupFailures = 0;
    this.emit("joined", msg);
    this.emit("state", { state: "connected" });
    // A rejoin is a new peer for the server: tell it again what is muted.
    for (const source of /** @type {MutableSource[]} */ (["camera", "microphone"])) {
      if (this.muted[source] && this.localTracks[source]) session.send({ type: "mute", source, muted: true });
    }
  }

  /**
   * @param {Session} session
   * @param {number | null} code
   */
  onSessionClosed(session, code) {
    if (session !== this.session || this.finished) return;
    this.lastCloseCode = code ?? this.lastCloseCode;
    if (this.leaving) return this.end(null);
    if (session.error) return this.end(session.error);
    if (!session.abandoned && code !== null && FINAL_CLOSE_CODES.has(code)) return this.end(null);
    if (session.redirect && code === WRONG_NODE_CLOSE && this.redirects < MAX_REDIRECTS) {
      this.redirects += 1;
      this.session = new Session(this, session.redirect);
      return;
    }
    if (session.joinedAt !== null && Date.now() - session.joinedAt > STABLE_MS) this.resetBackoff();
    /** @type {RetryReason} */
    let reason = "lost";
    if (session.reason) reason = session.reason;
    else if (code === TRY_AGAIN_CLOSE || this.serviceDown) reason = "unavailable";
    else if (code === WRONG_NODE_CLOSE) reason = "wrong-node";
    let delay;
    if (session.retryAfter !== null) {
      delay = session.retryAfter * 1000 + Math.round(Math.random() * 1000);
    } else if (session.abandoned && session.mediaConnected) {
      delay = 0; // media flowed a moment ago (a rejoin, a connection that broke): straight back
    } else {
      this.failures += 1;
      // Only the network counts towards giving up: the server that answered is there.
      if (reason === "lost") this.lostAttempts += 1;
      delay = backoffMs(this.failures);
    }
    if (this.lostAttempts >= (this.everJoined ? this.maxAttempts : this.maxFirstAttempts)) {
      return this.end("UNREACHABLE");
    }
    this.emit("state", { state: "reconnecting", retryInMs: delay, attempt: this.failures, reason });
    this.retryTimer = setTimeout(() => this.attempt(), delay);
  }

  /** @param {string | null} error */
  end(error) {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.retryTimer);
    this.emit("closed", { code: this.lastCloseCode, error });
  }
}
