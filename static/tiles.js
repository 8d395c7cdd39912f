// The call's tiles: one per remote camera (with its sound), one per remote screen share,
// and our own. Layout: alone, our tile fills the stage; with one other camera, theirs fills
// it and ours floats picture-in-picture; with more, every tile is in an even grid.

import { t } from "./strings.js";

/** @typedef {import("./protocol.js").PeerInfo} PeerInfo */
/** @typedef {import("./protocol.js").RemoteTrack} RemoteTrack */

export class Stage {
  /**
   * @param {HTMLElement} grid
   * @param {HTMLTemplateElement} template
   * @param {HTMLElement} self
   */
  constructor(grid, template, self) {
    this.grid = grid;
    this.template = template;
    this.self = self;
    /** @type {Map<string, Map<string, MediaStreamTrack>>} tile id -> source -> track */
    this.tracks = new Map();
    for (const video of grid.querySelectorAll("video")) watchAspect(video);
  }

  /**
   * Our own tile: the camera preview (if any) and what we have muted.
   * @param {MediaStreamTrack | undefined} camera
   * @param {{camera: boolean, microphone: boolean}} muted
   * @param {boolean} hasMic
   */
  showSelf(camera, muted, hasMic) {
    const video = /** @type {HTMLVideoElement} */ (this.self.querySelector("video"));
    if (camera && video.srcObject === null) video.srcObject = new MediaStream([camera]);
    if (!camera) video.srcObject = null;
    this.self.dataset.hasVideo = String(Boolean(camera));
    this.self.dataset.camMuted = String(muted.camera || !camera);
    this.self.dataset.micMuted = String(muted.microphone || !hasMic);
    this.self.hidden = false;
    setAvatar(this.self, t("you"));
    this.layout();
  }

  hideSelf() {
    const video = /** @type {HTMLVideoElement} */ (this.self.querySelector("video"));
    video.srcObject = null;
    this.self.hidden = true;
  }

  /** @param {PeerInfo} peer */
  renderPeer(peer) {
    const tile = this.ensureTile(peer.peer_id);
    tile.dataset.peerId = peer.peer_id;
    /** @type {HTMLElement} */ (tile.querySelector(".name")).textContent = peer.name;
    setAvatar(tile, peer.name);
    tile.dataset.camMuted = String(peer.muted.camera || !peer.sources.includes("camera"));
    tile.dataset.micMuted = String(peer.muted.microphone || !peer.sources.includes("microphone"));
    const screen = this.tileOf(`${peer.peer_id}:screen`);
    if (screen) {
      /** @type {HTMLElement} */ (screen.querySelector(".name")).textContent = t("screenOf", { name: peer.name });
    }
  }

  /** @param {string} peerId */
  removePeer(peerId) {
    for (const id of [peerId, `${peerId}:screen`]) {
      this.tracks.delete(id);
      const tile = this.tileOf(id);
      if (tile) {
        /** @type {HTMLVideoElement} */ (tile.querySelector("video")).srcObject = null;
        tile.remove();
      }
    }
    this.layout();
  }

  /** Every remote tile goes (a rejoin starts from the server's list again). */
  clear() {
    for (const tile of this.remoteTiles()) {
      /** @type {HTMLVideoElement} */ (tile.querySelector("video")).srcObject = null;
      tile.remove();
    }
    this.tracks.clear();
    this.layout();
  }

  /**
   * @param {RemoteTrack} rt
   * @param {string} [peerName]
   */
  addTrack(rt, peerName) {
    const id = rt.source === "screen" ? `${rt.peer_id}:screen` : rt.peer_id;
    const tile = this.ensureTile(id);
    if (rt.source === "screen") {
      tile.dataset.screenOf = rt.peer_id;
      /** @type {HTMLElement} */ (tile.querySelector(".name")).textContent = t("screenOf", { name: peerName ?? "" });
    } else {
      tile.dataset.peerId = rt.peer_id;
    }
    const tracks = this.tracks.get(id) ?? new Map();
    tracks.set(rt.source, rt.track);
    this.tracks.set(id, tracks);
    this.refresh(id);
  }

  /** @param {RemoteTrack} rt */
  removeTrack(rt) {
    const id = rt.source === "screen" ? `${rt.peer_id}:screen` : rt.peer_id;
    const tracks = this.tracks.get(id);
    if (!tracks || tracks.get(rt.source) !== rt.track) return;
    tracks.delete(rt.source);
    if (rt.source === "screen") {
      this.tracks.delete(id);
      this.tileOf(id)?.remove();
      this.layout();
    } else {
      this.refresh(id);
    }
  }

  /** @param {string} id */
  refresh(id) {
    const tile = this.tileOf(id);
    if (!tile) return;
    const tracks = this.tracks.get(id) ?? new Map();
    const video = /** @type {HTMLVideoElement} */ (tile.querySelector("video"));
    const list = ["camera", "screen", "microphone"].map((s) => tracks.get(s)).filter((x) => x !== undefined);
    tile.dataset.hasVideo = String(tracks.has("camera") || tracks.has("screen"));
    video.srcObject = list.length ? new MediaStream(/** @type {MediaStreamTrack[]} */ (list)) : null;
    if (list.length) play(video);
  }

  /**
   * @param {string} id  a peer id, or "<peer id>:screen"
   * @returns {HTMLElement | null}
   */
  tileOf(id) {
    return this.grid.querySelector(`.tile[data-tile-id="${CSS.escape(id)}"]`);
  }

  /** @returns {HTMLElement[]} */
  remoteTiles() {
    return [...this.grid.querySelectorAll(".tile[data-tile-id]")].map((e) => /** @type {HTMLElement} */ (e));
  }

  /**
   * The tile for `id`, made on first use (a track may arrive before its peer-joined).
   * @param {string} id
   * @returns {HTMLElement}
   */
  ensureTile(id) {
    let tile = this.tileOf(id);
    if (tile) return tile;
    const fragment = /** @type {DocumentFragment} */ (this.template.content.cloneNode(true));
    tile = /** @type {HTMLElement} */ (fragment.firstElementChild);
    tile.dataset.tileId = id;
    watchAspect(/** @type {HTMLVideoElement} */ (tile.querySelector("video")));
    this.grid.insertBefore(tile, this.self);
    this.layout();
    return tile;
  }

  layout() {
    const remote = this.remoteTiles().length;
    const layout = remote === 0 ? "solo" : remote === 1 ? "pip" : "grid";
    this.grid.dataset.layout = layout;
    // Tiles in the grid's flow: in "pip" ours floats above it.
    this.grid.dataset.count = String(layout === "grid" ? remote + (this.self.hidden ? 0 : 1) : 1);
  }
}

/**
 * The first letter of a name, on the placeholder shown instead of a camera that is off.
 * @param {HTMLElement} tile
 * @param {string} name
 */
function setAvatar(tile, name) {
  const avatar = /** @type {HTMLElement} */ (tile.querySelector(".avatar"));
  avatar.textContent = [...name.trim()][0]?.toUpperCase() ?? "?";
}

/**
 * Keep the tile's frame at the video's aspect ratio (--aspect in style.css).
 * @param {HTMLVideoElement} video
 */
function watchAspect(video) {
  video.addEventListener("resize", () => {
    const tile = /** @type {HTMLElement | null} */ (video.closest(".tile"));
    if (tile && video.videoWidth && video.videoHeight) {
      tile.style.setProperty("--aspect", String(video.videoWidth / video.videoHeight));
    }
  });
}

/**
 * Start playback; if the browser blocks sound without a user gesture, play muted and turn
 * the sound on at the first click or key press.
 * @param {HTMLVideoElement} video
 */
function play(video) {
  video.play().catch((err) => {
    if (err.name !== "NotAllowedError") return;
    video.muted = true;
    video.play().catch(() => {});
    const unmute = () => {
      video.muted = false;
      video.play().catch(() => {});
    };
    document.addEventListener("pointerdown", unmute, { once: true });
    document.addEventListener("keydown", unmute, { once: true });
  });
}
