// One signaling session: one WebSocket and its RTCPeerConnection, one join of the room
// (docs/protocol.md). It joins, answers offers by mid, trades ICE candidates and tells its
// owner what happened; whether and when to join again is the owner's (reconnect.js). No DOM.

import { noEnding, readServerError, readShutdown } from "./reconnect.js";

/** @typedef {import("./reconnect.js").Ending} Ending */
/** @typedef {import("./reconnect.js").SessionEnd} SessionEnd */

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
 * @typedef {object} LocalTracks
 * @property {MediaStreamTrack} [camera]
 * @property {MediaStreamTrack} [microphone]
 * @property {MediaStreamTrack} [screen]
 */

/**
 * Who a session works for (the KaamosClient): what to join with, and whom to tell.
 * @typedef {object} SessionOwner
 * @property {string} name
 * @property {Source[]} publishing
 * @property {LocalTracks} localTracks
 * @property {(type: string, detail: unknown) => void} emit  an event for the page
 * @property {(session: Session, msg: JoinedMessage) => void} onJoined
 * @property {(session: Session) => void} onMediaConnected
 * @property {(session: Session, end: SessionEnd) => void} onSessionClosed  once per session
 */

/** A socket that has not brought `joined` by then is given up and retried. */
export const JOIN_TIMEOUT_MS = 10_000;

/**
 * A session's life: active (its socket opens, joins, carries the call), abandoned (this end
 * gave it up; its end is on the way to the owner), closed (the owner was told).
 */
export const SessionState = Object.freeze({
  ACTIVE: "active",
  ABANDONED: "abandoned",
  CLOSED: "closed",
});
/** @typedef {(typeof SessionState)[keyof typeof SessionState]} SessionState */

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
 * Session (the server sees a new peer). It reports to its owner.
 */
export class Session {
  /**
   * @param {SessionOwner} owner
   * @param {string} url
   */
  constructor(owner, url) {
    this.owner = owner;
    this.url = url;
    this.ws = new WebSocket(url);
    /** @type {SessionState} */
    this.state = SessionState.ACTIVE;
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
    /** @type {Ending} what this session learnt about why it ends */
    this.ending = noEnding();
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

  /** @returns {boolean} whether a message sent now goes out (a `leave`, for instance) */
  get canSend() {
    return this.state !== SessionState.CLOSED && this.ws.readyState === WebSocket.OPEN;
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
    if (this.state !== SessionState.ACTIVE) return;
    console.info("kaamos: reconnecting:", why);
    this.state = SessionState.ABANDONED;
    this.pc?.close();
    // 4000: an application close code, so the server logs it as ours.
    this.ws.close(4000, why.slice(0, 100));
    // A socket still connecting may take long to report its close; do not wait for it.
    this.inbox = this.inbox.then(() => this.finish(null));
  }

  /** @param {any} msg */
  async handle(msg) {
    if (this.state === SessionState.CLOSED) return;
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
      case "error": {
        const told = readServerError(msg);
        if (told) Object.assign(this.ending, told);
        else console.warn("kaamos: server error", String(msg.code), msg.message);
        break;
      }
      case "server-shutdown": {
        const told = readShutdown(msg);
        Object.assign(this.ending, told);
        this.owner.emit("server-shutdown", { retryAfter: told.retryAfter });
        break;
      }
      case "room-ended":
        // The close with 4001 follows and ends the call.
        break;
      default:
        console.warn("kaamos: unknown message type", msg?.type);
    }
  }

  /** @param {JoinedMessage} msg */
  onJoined(msg) {
    clearTimeout(this.joinTimer);
    // Always pass the list, even empty (docs/protocol.md, "joined").
    const pc = newPeerConnection(Array.isArray(msg.ice_servers) ? msg.ice_servers : []);
    if (!pc) {
      this.ending.error = "NO_WEBRTC";
      this.abandon("no RTCPeerConnection");
      return;
    }
    this.peerId = msg.peer_id;
    this.joinedAt = Date.now();
    this.pc = pc;
    pc.addEventListener("icecandidate", (event) => this.onLocalCandidate(event.candidate));
    pc.addEventListener("connectionstatechange", () => {
      if (this.state !== SessionState.ACTIVE) return;
      this.owner.emit("connection-state", pc.connectionState);
      if (pc.connectionState === "connected") {
        this.mediaConnected = true;
        this.owner.onMediaConnected(this);
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
    if (this.state === SessionState.CLOSED) return;
    const abandoned = this.state === SessionState.ABANDONED;
    this.state = SessionState.CLOSED;
    clearTimeout(this.joinTimer);
    this.pc?.close();
    for (const rt of this.remoteTracks.values()) this.owner.emit("track-removed", rt);
    this.remoteTracks.clear();
    /** @type {SessionEnd} */
    const end = { ...this.ending, code, abandoned, joinedAt: this.joinedAt, mediaConnected: this.mediaConnected };
    this.owner.onSessionClosed(this, end);
  }
}
