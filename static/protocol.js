// Kaamos signaling client: WebSocket + one RTCPeerConnection, no DOM.
// The contract is docs/protocol.md; names here follow it exactly.

/** @typedef {"camera" | "microphone" | "screen"} Source */

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
 * Detail of the "error" event (a server `error` message).
 * @typedef {object} ServerError
 * @property {string} code
 * @property {string} message
 */

/**
 * Detail of the "closed" event.
 * @typedef {object} Closed
 * @property {number} code  WebSocket close code (1006 when the network dropped).
 * @property {string} reason
 */

/**
 * @typedef {object} LocalTracks
 * @property {MediaStreamTrack} [camera]
 * @property {MediaStreamTrack} [microphone]
 * @property {MediaStreamTrack} [screen]
 */

/**
 * @typedef {object} ClientOptions
 * @property {string} roomId
 * @property {string} name
 * @property {LocalTracks} localTracks  The tracks to publish; their keys become `publish`.
 * @property {{protocol: string, host: string}} [location]  Defaults to globalThis.location.
 */

/** Close codes after which a client must not reconnect (docs/protocol.md, "Close codes"). */
export const FINAL_CLOSE_CODES = new Set([1000, 4001, 4400, 4404, 4409, 4410]);

/** @type {Source[]} */
const SOURCE_ORDER = ["camera", "microphone", "screen"];

/**
 * The signaling URL for a room: ws: for http pages, wss: for https pages.
 * @param {{protocol: string, host: string}} loc
 * @param {string} roomId
 * @returns {string}
 */
export function signalingUrl(loc, roomId) {
  const scheme = loc.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${loc.host}/ws/${encodeURIComponent(roomId)}`;
}

/**
 * One participant's connection to a room.
 *
 * Events (all CustomEvent, payload in `detail`):
 * - "joined": JoinedMessage
 * - "peer-joined", "peer-updated": PeerInfo
 * - "peer-left": {peer_id: string}
 * - "track": RemoteTrack — a receiving m-line now carries this peer's source
 * - "track-removed": RemoteTrack — that m-line turned inactive or moved to another peer
 * - "connection-state": RTCPeerConnectionState of the media connection
 * - "error": ServerError
 * - "closed": Closed — the WebSocket is closed; the client is finished
 */
export class KaamosClient extends EventTarget {
  /** @param {ClientOptions} options */
  constructor(options) {
    super();
    this.roomId = options.roomId;
    this.name = options.name;
    /** @type {LocalTracks} */
    this.localTracks = { ...options.localTracks };
    this.url = signalingUrl(options.location ?? globalThis.location, options.roomId);
    /** @type {WebSocket | null} */
    this.ws = null;
    /** @type {RTCPeerConnection | null} */
    this.pc = null;
    /** @type {string | null} */
    this.peerId = null;
    /** @type {Map<string, RemoteTrack>} mid -> what it receives now */
    this.remoteTracks = new Map();
    /** @type {Array<IceCandidateMessage>} candidates gathered before the first answer */
    this._pendingCandidates = [];
    this._answered = false;
    this._closed = false;
    /** Server messages are handled one at a time, in order (offers are async). */
    this._inbox = Promise.resolve();
  }

  /** @returns {Source[]} the sources this client publishes, in protocol order */
  get publishing() {
    return SOURCE_ORDER.filter((s) => this.localTracks[s]);
  }

  /** Open the WebSocket and join the room. */
  connect() {
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.addEventListener("open", () => {
      this._send({ type: "join", name: this.name, publish: this.publishing });
    });
    ws.addEventListener("message", (event) => {
      if (typeof event.data !== "string") return;
      /** @type {any} */
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        console.warn("kaamos: ignoring a frame that is not JSON");
        return;
      }
      this._inbox = this._inbox
        .then(() => this._handle(msg))
        .catch((err) => console.error("kaamos: handling", msg?.type, err));
    });
    // Through the inbox, so that an error message is handled before its close.
    ws.addEventListener("close", (event) => {
      this._inbox = this._inbox.then(() => this._finish(event.code, event.reason));
    });
  }

  /**
   * Tell the others that a source is muted. The caller's track is disabled here too, so
   * nothing but black frames or silence leaves the browser.
   * @param {"camera" | "microphone"} source
   * @param {boolean} muted
   */
  mute(source, muted) {
    const track = this.localTracks[source];
    if (track) track.enabled = !muted;
    this._send({ type: "mute", source, muted });
  }

  /** Leave the room; the server answers by closing the socket with 1000. */
  leave() {
    this._send({ type: "leave" });
    this.pc?.close();
  }

  /** @param {object} msg */
  _send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  /**
   * @param {string} type
   * @param {unknown} detail
   */
  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** @param {any} msg */
  async _handle(msg) {
    if (this._closed) return;
    switch (msg?.type) {
      case "joined":
        this._onJoined(msg);
        break;
      case "offer":
        await this._onOffer(msg);
        break;
      case "ice-candidate":
        await this._onRemoteCandidate(msg);
        break;
      case "peer-joined":
      case "peer-updated":
        this._emit(msg.type, msg.peer);
        break;
      case "peer-left":
        this._emit("peer-left", { peer_id: msg.peer_id });
        break;
      case "error":
        this._emit("error", { code: String(msg.code), message: String(msg.message ?? "") });
        break;
      case "room-ended":
        // The close with 4001 follows; "closed" carries it to the UI.
        break;
      default:
        console.warn("kaamos: unknown message type", msg?.type);
    }
  }

  /** @param {JoinedMessage} msg */
  _onJoined(msg) {
    this.peerId = msg.peer_id;
    // Always pass the list, even empty (docs/protocol.md, "joined").
    const pc = new RTCPeerConnection({
      iceServers: msg.ice_servers ?? [],
      bundlePolicy: "max-bundle",
    });
    this.pc = pc;
    pc.addEventListener("icecandidate", (event) => this._onLocalCandidate(event.candidate));
    pc.addEventListener("connectionstatechange", () => {
      this._emit("connection-state", pc.connectionState);
    });
    this._emit("joined", msg);
  }

  /** @param {OfferMessage} msg */
  async _onOffer(msg) {
    const pc = this.pc;
    if (!pc) throw new Error("offer before joined");
    const tracks = msg.tracks ?? {};
    await pc.setRemoteDescription({ type: "offer", sdp: msg.sdp });
    // Attach our own media by mid, never with addTrack (docs/protocol.md).
    for (const t of pc.getTransceivers()) {
      const info = t.mid === null ? undefined : tracks[t.mid];
      if (info && info.peer_id === this.peerId) {
        t.direction = "sendonly";
        const track = this.localTracks[info.source] ?? null;
        if (t.sender.track !== track) await t.sender.replaceTrack(track);
      }
    }
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    this._send({ type: "answer", sdp: pc.localDescription?.sdp ?? answer.sdp });
    if (!this._answered) {
      this._answered = true;
      for (const c of this._pendingCandidates) this._send(c);
      this._pendingCandidates = [];
    }
    this._updateRemoteTracks(tracks);
  }

  /**
   * Work out from `tracks` which receiving m-lines changed owner. A reused m-line may go
   * from one peer to another in a single offer without a new "track" event from the
   * browser, so `tracks` is the only reliable source.
   * @param {Object<string, TrackInfo>} tracks
   */
  _updateRemoteTracks(tracks) {
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
        this._emit("track-removed", before);
      }
      if (remote) {
        /** @type {RemoteTrack} */
        const now = {
          peer_id: remote.peer_id,
          source: remote.source,
          mid: t.mid,
          track: t.receiver.track,
        };
        this.remoteTracks.set(t.mid, now);
        this._emit("track", now);
      }
    }
  }

  /** @param {RTCIceCandidate | null} candidate */
  _onLocalCandidate(candidate) {
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
    if (this._answered) this._send(msg);
    else this._pendingCandidates.push(msg);
  }

  /** @param {IceCandidateMessage} msg */
  async _onRemoteCandidate(msg) {
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

  /**
   * @param {number} code
   * @param {string} reason
   */
  _finish(code, reason) {
    if (this._closed) return;
    this._closed = true;
    this.pc?.close();
    this._emit("closed", { code, reason });
  }
}
