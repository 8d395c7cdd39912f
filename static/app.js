// The room page: asks the name, captures camera and microphone, and shows one tile per
// remote peer. All signaling lives in protocol.js; this file only touches the DOM.

import { KaamosClient } from "./protocol.js";

/** @typedef {import("./protocol.js").PeerInfo} PeerInfo */
/** @typedef {import("./protocol.js").RemoteTrack} RemoteTrack */
/** @typedef {import("./protocol.js").LocalTracks} LocalTracks */
/** @typedef {"connecting" | "connected" | "error" | "ended"} PageState */

const ROOM_ID_RE = /^[A-Za-z0-9]{10}$/;
const NAME_KEY = "kaamos.name";

const STRINGS = {
  en: {
    mic: "Microphone",
    camera: "Camera",
    leave: "Leave",
    yourName: "Your name",
    join: "Join",
    connecting: "Connecting…",
    askingMedia: "Asking for camera and microphone…",
    alone: "You are the only one here. Waiting for others…",
    inCall: "In the call: {n}",
    mediaFailed: "Media connection failed",
    micOnly: "No camera: the others will only hear you.",
    receiveOnly: "No camera or microphone: you can only watch and listen.",
    errorTitle: "Cannot join the call",
    ROOM_NOT_FOUND: "This room does not exist. Ask the bot for a new link.",
    ROOM_EXPIRED: "This room has expired. Ask the bot for a new link.",
    ROOM_FULL: "This room is full. Try again later.",
    INVALID_ROOM_ID: "This link is not valid. Check that it was copied in full.",
    DISCONNECTED: "The connection to the server was lost.",
    UNKNOWN: "The server refused the connection ({code}).",
    CLIENT_ERROR: "Something went wrong on this page. Try reloading it.",
    endedTitle: "Call ended",
    left: "You left the call.",
    roomEnded: "The call was ended.",
    you: "You",
  },
  ru: {
    mic: "Микрофон",
    camera: "Камера",
    leave: "Выйти",
    yourName: "Ваше имя",
    join: "Войти",
    connecting: "Подключение…",
    askingMedia: "Запрашиваем доступ к камере и микрофону…",
    alone: "Вы здесь одни. Ждём остальных…",
    inCall: "В звонке: {n}",
    mediaFailed: "Не удалось установить медиасоединение",
    micOnly: "Камера недоступна: вас будут только слышать.",
    receiveOnly: "Нет камеры и микрофона: вы можете только смотреть и слушать.",
    errorTitle: "Не удалось войти в звонок",
    ROOM_NOT_FOUND: "Такой комнаты нет. Попросите у бота новую ссылку.",
    ROOM_EXPIRED: "Срок действия комнаты истёк. Попросите у бота новую ссылку.",
    ROOM_FULL: "Комната заполнена. Попробуйте позже.",
    INVALID_ROOM_ID: "Неверная ссылка. Проверьте, что она скопирована целиком.",
    DISCONNECTED: "Соединение с сервером потеряно.",
    UNKNOWN: "Сервер отказал в подключении ({code}).",
    CLIENT_ERROR: "Что-то пошло не так на странице. Попробуйте её перезагрузить.",
    endedTitle: "Звонок завершён",
    left: "Вы вышли из звонка.",
    roomEnded: "Звонок завершён.",
    you: "Вы",
  },
};

const lang = (navigator.language || "en").toLowerCase().startsWith("ru") ? "ru" : "en";
/** @typedef {keyof typeof STRINGS.en} StringKey */

/**
 * @param {StringKey} key
 * @param {Object<string, string | number>} [vars]
 * @returns {string}
 */
function t(key, vars = {}) {
  return STRINGS[lang][key].replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ""));
}

/**
 * @template {HTMLElement} T
 * @param {string} id
 * @returns {T}
 */
function $(id) {
  return /** @type {T} */ (document.getElementById(id));
}

const ui = {
  status: $("status"),
  grid: $("grid"),
  notice: $("notice"),
  selfView: /** @type {HTMLVideoElement} */ ($("self-view")),
  mic: /** @type {HTMLButtonElement} */ ($("mic")),
  cam: /** @type {HTMLButtonElement} */ ($("cam")),
  leave: /** @type {HTMLButtonElement} */ ($("leave")),
  nameForm: /** @type {HTMLFormElement} */ ($("name-form")),
  nameInput: /** @type {HTMLInputElement} */ ($("name-input")),
  message: $("message"),
  messageTitle: $("message-title"),
  messageText: $("message-text"),
  tileTemplate: /** @type {HTMLTemplateElement} */ ($("tile-template")),
};

/** @type {KaamosClient | null} */
let client = null;
/** @type {LocalTracks} */
let localTracks = {};
/** @type {Map<string, PeerInfo>} */
const peers = new Map();
let leaving = false;
/** @type {string | null} */
let errorCode = null;

// For tests and debugging: window.kaamos.pc is the RTCPeerConnection.
Object.defineProperty(window, "kaamos", {
  value: Object.freeze({
    get client() {
      return client;
    },
    get pc() {
      return client?.pc ?? null;
    },
  }),
});

// ---- page state -------------------------------------------------------------------

/**
 * @param {PageState} state
 * @param {string} [text]
 */
function setState(state, text) {
  document.body.dataset.state = state;
  if (text !== undefined) ui.status.textContent = text;
}

function updatePresence() {
  if (document.body.dataset.state !== "connected") return;
  ui.status.textContent = peers.size === 0 ? t("alone") : t("inCall", { n: peers.size + 1 });
}

/**
 * @param {string} title
 * @param {string} text
 */
function showMessage(title, text) {
  ui.messageTitle.textContent = title;
  ui.messageText.textContent = text;
  ui.message.hidden = false;
}

/** @param {string} code */
function fail(code) {
  errorCode = code;
  document.body.dataset.errorCode = code;
  const known = /** @type {StringKey[]} */ ([
    "ROOM_NOT_FOUND",
    "ROOM_EXPIRED",
    "ROOM_FULL",
    "INVALID_ROOM_ID",
    "DISCONNECTED",
    "CLIENT_ERROR",
  ]);
  const text = known.includes(/** @type {StringKey} */ (code))
    ? t(/** @type {StringKey} */ (code))
    : t("UNKNOWN", { code });
  setState("error", t("errorTitle"));
  showMessage(t("errorTitle"), text);
  teardown();
}

/** @param {string} text */
function end(text) {
  setState("ended", t("endedTitle"));
  showMessage(t("endedTitle"), text);
  teardown();
}

/** Stop every local track and clear the call from the page. */
function teardown() {
  for (const track of Object.values(localTracks)) track?.stop();
  ui.selfView.srcObject = null;
  ui.selfView.hidden = true;
  for (const id of [...peers.keys()]) removeTile(id);
  peers.clear();
  for (const b of [ui.mic, ui.cam, ui.leave]) b.disabled = true;
}

// ---- tiles --------------------------------------------------------------------------

/**
 * @param {string} peerId
 * @returns {HTMLElement | null}
 */
function tileOf(peerId) {
  return ui.grid.querySelector(`.tile[data-peer-id="${CSS.escape(peerId)}"]`);
}

/**
 * The tile of a peer, made on first use (a track may arrive before its peer-joined).
 * @param {string} peerId
 * @returns {HTMLElement}
 */
function ensureTile(peerId) {
  let tile = tileOf(peerId);
  if (tile) return tile;
  const fragment = /** @type {DocumentFragment} */ (ui.tileTemplate.content.cloneNode(true));
  tile = /** @type {HTMLElement} */ (fragment.firstElementChild);
  tile.dataset.peerId = peerId;
  const video = /** @type {HTMLVideoElement} */ (tile.querySelector("video"));
  const frameTile = tile;
  video.addEventListener("resize", () => {
    if (video.videoWidth && video.videoHeight) {
      frameTile.style.setProperty("--aspect", String(video.videoWidth / video.videoHeight));
    }
  });
  ui.grid.append(tile);
  ui.grid.dataset.count = String(ui.grid.children.length);
  return tile;
}

/** @param {PeerInfo} peer */
function renderPeer(peer) {
  const tile = ensureTile(peer.peer_id);
  const nameEl = /** @type {HTMLElement} */ (tile.querySelector(".name"));
  nameEl.textContent = peer.name;
  const avatar = /** @type {HTMLElement} */ (tile.querySelector(".avatar"));
  avatar.textContent = [...peer.name.trim()][0]?.toUpperCase() ?? "?";
  tile.dataset.camMuted = String(peer.muted.camera || !peer.sources.includes("camera"));
  tile.dataset.micMuted = String(peer.muted.microphone || !peer.sources.includes("microphone"));
  const micIcon = /** @type {SVGElement} */ (tile.querySelector(".muted-mic"));
  micIcon.toggleAttribute("hidden", tile.dataset.micMuted !== "true");
}

/** @param {string} peerId */
function removeTile(peerId) {
  const tile = tileOf(peerId);
  if (!tile) return;
  const video = /** @type {HTMLVideoElement} */ (tile.querySelector("video"));
  video.srcObject = null;
  tile.remove();
  ui.grid.dataset.count = String(ui.grid.children.length);
}

/**
 * Tracks shown in each tile, by source; the tile's video element plays them all.
 * @type {Map<string, Map<string, MediaStreamTrack>>}
 */
const tileTracks = new Map();

/** @param {string} peerId */
function refreshMedia(peerId) {
  const tile = tileOf(peerId);
  if (!tile) return;
  const tracks = tileTracks.get(peerId) ?? new Map();
  const video = /** @type {HTMLVideoElement} */ (tile.querySelector("video"));
  const list = [tracks.get("camera"), tracks.get("microphone")].filter((x) => x !== undefined);
  tile.dataset.hasVideo = String(tracks.has("camera"));
  video.srcObject = list.length ? new MediaStream(/** @type {MediaStreamTrack[]} */ (list)) : null;
  if (list.length) play(video);
}

/**
 * Start playback; if the browser blocks sound without a user gesture, play muted and
 * turn the sound on at the first click or key press.
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

/** @param {RemoteTrack} rt */
function addRemoteTrack(rt) {
  performance.mark(`kaamos:track-${rt.source}`);
  if (rt.source === "screen") return; // Screen share display is a later issue.
  ensureTile(rt.peer_id);
  const tracks = tileTracks.get(rt.peer_id) ?? new Map();
  tracks.set(rt.source, rt.track);
  tileTracks.set(rt.peer_id, tracks);
  refreshMedia(rt.peer_id);
}

/** @param {RemoteTrack} rt */
function removeRemoteTrack(rt) {
  const tracks = tileTracks.get(rt.peer_id);
  if (!tracks || tracks.get(rt.source) !== rt.track) return;
  tracks.delete(rt.source);
  refreshMedia(rt.peer_id);
}

// ---- local media and controls -------------------------------------------------------

/**
 * Camera and microphone, else microphone only, else nothing (receive only).
 * @returns {Promise<LocalTracks>}
 */
async function captureMedia() {
  const md = navigator.mediaDevices;
  if (!md?.getUserMedia) return {};
  const audio = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
  const video = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { max: 30 } };
  for (const constraints of [{ audio, video }, { audio }]) {
    try {
      const stream = await md.getUserMedia(constraints);
      return {
        camera: stream.getVideoTracks()[0],
        microphone: stream.getAudioTracks()[0],
      };
    } catch (err) {
      console.info("kaamos: getUserMedia", constraints, "failed:", err);
    }
  }
  return {};
}

/**
 * @param {HTMLButtonElement} button
 * @param {"camera" | "microphone"} source
 */
function bindToggle(button, source) {
  button.disabled = !localTracks[source];
  button.addEventListener("click", () => {
    if (!client || !localTracks[source]) return;
    const muted = button.getAttribute("aria-pressed") !== "true";
    button.setAttribute("aria-pressed", String(muted));
    client.mute(source, muted);
    if (source === "camera") ui.selfView.classList.toggle("off", muted);
  });
}

// ---- name ---------------------------------------------------------------------------

/**
 * The name from ?name=, else the remembered one, else asked once in a form.
 * @returns {Promise<string>}
 */
async function askName() {
  const fromQuery = new URLSearchParams(location.search).get("name")?.trim();
  if (fromQuery && fromQuery.length <= 64) return fromQuery;
  let stored = null;
  try {
    stored = localStorage.getItem(NAME_KEY)?.trim();
  } catch {
    // Storage may be disabled; then the name is asked every time.
  }
  if (stored && stored.length <= 64) return stored;
  ui.status.textContent = "";
  ui.nameForm.hidden = false;
  ui.nameInput.focus();
  return new Promise((resolve) => {
    ui.nameForm.addEventListener("submit", function onSubmit(event) {
      event.preventDefault();
      const name = ui.nameInput.value.trim();
      if (!name) return;
      ui.nameForm.removeEventListener("submit", onSubmit);
      ui.nameForm.hidden = true;
      try {
        localStorage.setItem(NAME_KEY, name);
      } catch {
        // Not remembered; nothing else depends on it.
      }
      resolve(name);
    });
  });
}

// ---- main ---------------------------------------------------------------------------

function translatePage() {
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll("[data-i18n]")) {
    const key = /** @type {StringKey} */ (/** @type {HTMLElement} */ (el).dataset.i18n);
    el.textContent = t(key);
  }
  for (const b of [ui.mic, ui.cam, ui.leave]) {
    const label = b.querySelector(".label")?.textContent ?? "";
    b.title = label;
    b.setAttribute("aria-label", label);
  }
}

/** @param {KaamosClient} c */
function wire(c) {
  c.addEventListener("joined", (e) => {
    const msg = /** @type {CustomEvent<import("./protocol.js").JoinedMessage>} */ (e).detail;
    performance.mark("kaamos:joined");
    setState("connected");
    ui.leave.disabled = false;
    for (const peer of msg.peers) {
      peers.set(peer.peer_id, peer);
      renderPeer(peer);
    }
    updatePresence();
  });
  c.addEventListener("peer-joined", (e) => {
    const peer = /** @type {CustomEvent<PeerInfo>} */ (e).detail;
    peers.set(peer.peer_id, peer);
    renderPeer(peer);
    updatePresence();
  });
  c.addEventListener("peer-updated", (e) => {
    const peer = /** @type {CustomEvent<PeerInfo>} */ (e).detail;
    peers.set(peer.peer_id, peer);
    renderPeer(peer);
  });
  c.addEventListener("peer-left", (e) => {
    const { peer_id } = /** @type {CustomEvent<{peer_id: string}>} */ (e).detail;
    peers.delete(peer_id);
    tileTracks.delete(peer_id);
    removeTile(peer_id);
    updatePresence();
  });
  c.addEventListener("track", (e) => addRemoteTrack(/** @type {CustomEvent<RemoteTrack>} */ (e).detail));
  c.addEventListener("track-removed", (e) =>
    removeRemoteTrack(/** @type {CustomEvent<RemoteTrack>} */ (e).detail),
  );
  c.addEventListener("connection-state", (e) => {
    const state = /** @type {CustomEvent<RTCPeerConnectionState>} */ (e).detail;
    document.body.dataset.mediaState = state;
    performance.mark(`kaamos:pc-${state}`);
    if (state === "failed" && document.body.dataset.state === "connected") {
      ui.status.textContent = t("mediaFailed");
    } else {
      updatePresence();
    }
  });
  c.addEventListener("error", (e) => {
    const { code, message } = /** @type {CustomEvent<{code: string, message: string}>} */ (e).detail;
    if (code === "BAD_MESSAGE") {
      console.warn("kaamos: server says BAD_MESSAGE:", message);
      return;
    }
    fail(code);
  });
  c.addEventListener("closed", (e) => {
    const { code } = /** @type {CustomEvent<{code: number}>} */ (e).detail;
    document.body.dataset.closeCode = String(code);
    if (errorCode) return;
    if (leaving) end(t("left"));
    else if (code === 4001) end(t("roomEnded"));
    else fail("DISCONNECTED");
  });
}

async function main() {
  translatePage();
  setState("connecting", t("connecting"));
  const match = location.pathname.match(/^\/room\/([^/]*)\/?$/);
  const roomId = match ? decodeURIComponent(match[1]) : "";
  if (!ROOM_ID_RE.test(roomId)) {
    fail("INVALID_ROOM_ID");
    return;
  }
  const name = await askName();
  setState("connecting", t("askingMedia"));
  localTracks = await captureMedia();
  performance.mark("kaamos:media");
  if (localTracks.camera) {
    const self = ui.selfView;
    self.addEventListener("resize", () => {
      if (self.videoWidth && self.videoHeight) {
        self.style.aspectRatio = `${self.videoWidth} / ${self.videoHeight}`;
      }
    });
    self.srcObject = new MediaStream([localTracks.camera]);
    ui.selfView.hidden = false;
  } else {
    ui.notice.textContent = localTracks.microphone ? t("micOnly") : t("receiveOnly");
    ui.notice.hidden = false;
  }
  bindToggle(ui.mic, "microphone");
  bindToggle(ui.cam, "camera");
  ui.leave.addEventListener("click", () => {
    if (!client || leaving) return;
    leaving = true;
    client.leave();
    end(t("left"));
  });
  setState("connecting", t("connecting"));
  client = new KaamosClient({ roomId, name, localTracks });
  wire(client);
  client.connect();
}

main().catch((err) => {
  console.error("kaamos:", err);
  fail("CLIENT_ERROR");
});
