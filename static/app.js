// The room page: checks the room, asks the name, captures camera and microphone, and shows
// the call. Signaling lives in protocol.js, tiles in tiles.js; this file is the page flow.

import { KaamosClient, lookupRoom } from "./protocol.js";
import { hasString, lang, t } from "./strings.js";
import { Stage } from "./tiles.js";

/** @typedef {import("./protocol.js").PeerInfo} PeerInfo */
/** @typedef {import("./protocol.js").RemoteTrack} RemoteTrack */
/** @typedef {import("./protocol.js").LocalTracks} LocalTracks */
/** @typedef {import("./protocol.js").CallState} CallState */
/** @typedef {import("./protocol.js").RetryReason} RetryReason */
/** @typedef {import("./protocol.js").Closed} Closed */
/** @typedef {import("./strings.js").StringKey} StringKey */
/** @typedef {"connecting" | "connected" | "reconnecting" | "media" | "error" | "ended"} PageState */
/** @typedef {{label: StringKey, onClick: () => void, primary?: boolean}} Action */

const ROOM_ID_RE = /^[A-Za-z0-9]{10}$/;
const NAME_KEY = "kaamos.name";
const CALM_AFTER_MS = 3000;
/** @type {Partial<Record<RetryReason, StringKey>>} the banner while the service, not the network, is the trouble */
const RETRY_TEXT = { restart: "restartingIn", unavailable: "unavailableIn", "wrong-node": "wrongNodeIn" };

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
  nameButton: /** @type {HTMLButtonElement} */ ($("name-button")),
  notice: $("notice"),
  toast: $("toast"),
  mic: /** @type {HTMLButtonElement} */ ($("mic")),
  cam: /** @type {HTMLButtonElement} */ ($("cam")),
  screen: /** @type {HTMLButtonElement} */ ($("screen")),
  copyLink: /** @type {HTMLButtonElement} */ ($("copy-link")),
  leave: /** @type {HTMLButtonElement} */ ($("leave")),
  nameForm: /** @type {HTMLFormElement} */ ($("name-form")),
  nameInput: /** @type {HTMLInputElement} */ ($("name-input")),
  message: $("message"),
  messageTitle: $("message-title"),
  messageText: $("message-text"),
  messageActions: $("message-actions"),
};

const stage = new Stage($("grid"), /** @type {HTMLTemplateElement} */ ($("tile-template")), $("self"));

/** @type {KaamosClient | null} */
let client = null;
/** @type {LocalTracks} */
let localTracks = {};
/** @type {Map<string, PeerInfo>} */
const peers = new Map();
let name = "";
let over = false;
let restartNoticeShown = false; // server-shutdown's notice, taken down at the next join
/** @type {ReturnType<typeof setTimeout> | undefined} */
let calmTimer;
/** @type {ReturnType<typeof setTimeout> | undefined} */
let toastTimer;

// For tests and debugging: window.kaamos.pc is the current RTCPeerConnection.
Object.defineProperty(window, "kaamos", {
  value: Object.freeze({
    get client() {
      return client;
    },
    get pc() {
      return client?.pc ?? null;
    },
    get localTracks() {
      return localTracks;
    },
  }),
});

// ---- page state -------------------------------------------------------------------

/**
 * The status banner; it fades a few seconds after the call is connected and well.
 * @param {PageState} state
 * @param {string} text
 */
function setState(state, text) {
  document.body.dataset.state = state;
  ui.status.textContent = text;
  document.body.classList.remove("calm");
  clearTimeout(calmTimer);
  if (state === "connected") {
    calmTimer = setTimeout(() => document.body.classList.add("calm"), CALM_AFTER_MS);
  }
}

function updatePresence() {
  if (document.body.dataset.state !== "connected") return;
  const text = peers.size === 0 ? t("alone") : t("inCall", { n: peers.size + 1 });
  if (ui.status.textContent !== text) setState("connected", text);
}

/**
 * @param {string} title
 * @param {string} text
 * @param {Action[]} [actions]
 */
function showMessage(title, text, actions = []) {
  ui.messageTitle.textContent = title;
  ui.messageText.textContent = text;
  ui.messageActions.replaceChildren(
    ...actions.map((a) => {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = t(a.label);
      b.className = a.primary ? "primary" : "secondary";
      b.addEventListener("click", a.onClick);
      return b;
    }),
  );
  ui.message.hidden = false;
  /** @type {HTMLElement | null} */ (ui.messageActions.querySelector("button"))?.focus();
}

/** @param {string} text */
function notice(text) {
  ui.notice.textContent = text;
  ui.notice.hidden = false;
}

/** @param {string} text */
function toast(text) {
  ui.toast.textContent = text;
  ui.toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (ui.toast.hidden = true), 4000);
}

/** @param {string} code */
function fail(code) {
  document.body.dataset.errorCode = code;
  const text = hasString(code) ? t(code) : t("UNKNOWN", { code });
  /** @type {Action[]} */
  const actions =
    code === "ROOM_FULL" || code === "UNREACHABLE" || code === "CLIENT_ERROR"
      ? [{ label: "tryAgain", onClick: () => location.reload(), primary: true }]
      : [];
  setState("error", t("errorTitle"));
  showMessage(t("errorTitle"), text, actions);
  teardown();
}

/**
 * @param {string} text
 * @param {boolean} canRejoin
 */
function end(text, canRejoin) {
  setState("ended", t("endedTitle"));
  const actions = canRejoin ? [{ label: /** @type {StringKey} */ ("rejoin"), onClick: () => location.reload(), primary: true }] : [];
  showMessage(t("endedTitle"), text, actions);
  teardown();
}

/** Stop every local track (camera light off) and clear the call from the page. */
function teardown() {
  over = true;
  for (const track of Object.values(localTracks)) track?.stop();
  stage.hideSelf();
  stage.clear();
  peers.clear();
  ui.notice.hidden = true;
  ui.nameButton.hidden = true;
  for (const b of [ui.mic, ui.cam, ui.screen, ui.leave]) b.disabled = true;
}

// ---- local media ----------------------------------------------------------------------

/**
 * @param {unknown} err
 * @returns {boolean} whether the user or a policy refused access (not "no device")
 */
function isDenied(err) {
  const n = err instanceof Error || err instanceof DOMException ? err.name : "";
  return n === "NotAllowedError" || n === "SecurityError" || n === "PermissionDeniedError";
}

/**
 * Camera and microphone; else what of them can be had. Reports what was refused.
 * @returns {Promise<{tracks: LocalTracks, denied: {camera: boolean, microphone: boolean}}>}
 */
async function captureMedia() {
  const denied = { camera: false, microphone: false };
  const md = navigator.mediaDevices;
  if (!md?.getUserMedia) return { tracks: {}, denied };
  const audio = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
  const video = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { max: 30 } };
  try {
    const stream = await md.getUserMedia({ audio, video });
    return { tracks: { camera: stream.getVideoTracks()[0], microphone: stream.getAudioTracks()[0] }, denied };
  } catch (err) {
    console.info("kaamos: camera and microphone:", err);
  }
  /** @type {LocalTracks} */
  const tracks = {};
  for (const [source, constraints] of /** @type {const} */ ([
    ["microphone", { audio }],
    ["camera", { video }],
  ])) {
    try {
      const stream = await md.getUserMedia(constraints);
      tracks[source] = stream.getTracks()[0];
    } catch (err) {
      console.info(`kaamos: ${source}:`, err);
      denied[source] = isDenied(err);
    }
  }
  return { tracks, denied };
}

/**
 * Capture; when access was refused, say what to do and let the user try again or join
 * with what there is.
 * @returns {Promise<LocalTracks>}
 */
async function acquireMedia() {
  for (;;) {
    setState("media", t("askingMedia"));
    const { tracks, denied } = await captureMedia();
    if (!denied.camera && !denied.microphone) {
      if (!tracks.camera) notice(tracks.microphone ? t("micOnly") : t("receiveOnly"));
      return tracks;
    }
    const what = denied.camera && denied.microphone ? t("deniedBoth") : denied.camera ? t("deniedCamera") : t("deniedMic");
    document.body.dataset.errorCode = "MEDIA_DENIED";
    const retry = await new Promise((resolve) => {
      showMessage(t("deniedTitle"), t("deniedText", { what }), [
        { label: "tryAgain", onClick: () => resolve(true) },
        { label: "joinAnyway", onClick: () => resolve(false), primary: true },
      ]);
    });
    ui.message.hidden = true;
    delete document.body.dataset.errorCode;
    if (!retry) {
      notice(t("deniedNotice", { what }));
      return tracks;
    }
    for (const track of Object.values(tracks)) track?.stop();
  }
}

/** A device unplugged mid-call: carry on without it. */
function watchDevices() {
  for (const source of /** @type {const} */ (["camera", "microphone"])) {
    localTracks[source]?.addEventListener("ended", () => {
      if (over) return;
      delete localTracks[source];
      client?.setTrack(source, null);
      const button = source === "camera" ? ui.cam : ui.mic;
      button.disabled = true;
      notice(t("deviceLost", { device: t(source === "camera" ? "cameraWord" : "micWord") }));
      showSelf();
    });
  }
}

function showSelf() {
  stage.showSelf(localTracks.camera, client?.muted ?? { camera: false, microphone: false }, Boolean(localTracks.microphone));
}

// ---- controls ---------------------------------------------------------------------------

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
    showSelf();
  });
}

async function toggleScreen() {
  if (!client) return;
  const current = localTracks.screen;
  if (current) {
    current.stop();
    delete localTracks.screen;
    ui.screen.setAttribute("aria-pressed", "false");
    await client.setTrack("screen", null);
    return;
  }
  let track;
  try {
    track = (await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { max: 15 } } })).getVideoTracks()[0];
  } catch (err) {
    console.info("kaamos: screen share:", err);
    return;
  }
  if (over) return track.stop();
  localTracks.screen = track;
  ui.screen.setAttribute("aria-pressed", "true");
  // The browser's own "stop sharing" ends the track.
  track.addEventListener("ended", () => {
    if (localTracks.screen === track) toggleScreen();
  });
  await client.setTrack("screen", track);
}

async function copyLink() {
  const url = `${location.origin}${location.pathname}`;
  try {
    await navigator.clipboard.writeText(url);
    toast(t("linkCopied"));
  } catch {
    // No clipboard API (http page, old browser): show it to copy by hand.
    toast(t("linkShown", { url }));
  }
}

/** M toggles the microphone and V the camera (by key position, so any layout works). */
function bindShortcuts() {
  document.addEventListener("keydown", (event) => {
    const target = /** @type {HTMLElement} */ (event.target);
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    if (target.closest("input, textarea, select, [contenteditable]")) return;
    const button = event.code === "KeyM" ? ui.mic : event.code === "KeyV" ? ui.cam : null;
    if (button && !button.disabled) {
      event.preventDefault();
      button.click();
    }
  });
}

// ---- name -------------------------------------------------------------------------------

/** @returns {string | null} */
function storedName() {
  try {
    return localStorage.getItem(NAME_KEY)?.trim() || null;
  } catch {
    return null; // storage disabled: the name is asked every time
  }
}

/**
 * Show the name form until a name is given.
 * @param {string} current
 * @param {boolean} editing  a cancel button and Escape close it
 * @returns {Promise<string | null>}  null when cancelled
 */
function nameForm(current, editing) {
  ui.nameInput.value = current;
  const submit = /** @type {HTMLButtonElement} */ (ui.nameForm.querySelector("button[type=submit]"));
  submit.textContent = t(editing ? "save" : "join");
  ui.nameForm.hidden = false;
  ui.nameInput.focus();
  ui.nameInput.select();
  return new Promise((resolve) => {
    const cancel = document.createElement("button");
    cancel.type = "button";
    cancel.className = "secondary";
    cancel.textContent = t("cancel");
    /** @param {string | null} value */
    const done = (value) => {
      ui.nameForm.removeEventListener("submit", onSubmit);
      ui.nameForm.removeEventListener("keydown", onKey);
      cancel.remove();
      ui.nameForm.hidden = true;
      resolve(value);
    };
    /** @param {SubmitEvent} event */
    const onSubmit = (event) => {
      event.preventDefault();
      const value = ui.nameInput.value.trim();
      if (!value) return;
      try {
        localStorage.setItem(NAME_KEY, value);
      } catch {
        // Not remembered; nothing else depends on it.
      }
      done(value);
    };
    /** @param {KeyboardEvent} event */
    const onKey = (event) => {
      if (editing && event.key === "Escape") done(null);
    };
    if (editing) {
      cancel.addEventListener("click", () => done(null));
      ui.nameForm.append(cancel);
    }
    ui.nameForm.addEventListener("submit", onSubmit);
    ui.nameForm.addEventListener("keydown", onKey);
  });
}

/**
 * The name from ?name=, else the remembered one, else asked once.
 * @returns {Promise<string>}
 */
async function askName() {
  const fromQuery = new URLSearchParams(location.search).get("name")?.trim();
  if (fromQuery && fromQuery.length <= 64) return fromQuery;
  const stored = storedName();
  if (stored && stored.length <= 64) return stored;
  ui.status.textContent = "";
  return /** @type {Promise<string>} */ (nameForm("", false));
}

function showName() {
  ui.nameButton.textContent = name;
  const label = t("editName", { name });
  ui.nameButton.title = label;
  ui.nameButton.setAttribute("aria-label", label);
  ui.nameButton.hidden = false;
}

async function editName() {
  const value = await nameForm(name, true);
  if (value === null || value === name || over) return;
  name = value;
  showName();
  client?.rejoin(name);
}

// ---- the call -----------------------------------------------------------------------------

/** @param {KaamosClient} c */
function wire(c) {
  c.addEventListener("state", (e) => {
    const { state, retryInMs, reason } = /** @type {CustomEvent<CallState>} */ (e).detail;
    if (c.lastCloseCode !== null) document.body.dataset.closeCode = String(c.lastCloseCode);
    const retryText = state === "reconnecting" && reason ? RETRY_TEXT[reason] : undefined;
    if (retryText) {
      const s = Math.max(1, Math.round((retryInMs ?? 0) / 1000));
      setState(c.everJoined ? "reconnecting" : "connecting", t(retryText, { s }));
    } else if (state === "reconnecting" && !c.everJoined) {
      setState("connecting", t("connecting"));
    } else if (state === "reconnecting") {
      const s = Math.round((retryInMs ?? 0) / 1000);
      setState("reconnecting", s >= 1 ? t("reconnectingIn", { s }) : t("reconnecting"));
    } else if (state === "connecting") {
      setState("connecting", t("connecting"));
    }
  });
  c.addEventListener("server-shutdown", () => {
    // The call goes on for now (the server drains); say so before the socket closes.
    notice(t("restartingSoon"));
    restartNoticeShown = true;
  });
  c.addEventListener("joined", (e) => {
    const msg = /** @type {CustomEvent<import("./protocol.js").JoinedMessage>} */ (e).detail;
    performance.mark("kaamos:joined");
    if (restartNoticeShown) ui.notice.hidden = true; // back on the restarted server
    restartNoticeShown = false;
    // Every join starts from the server's list: after a reconnect the old tiles are stale.
    stage.clear();
    peers.clear();
    for (const peer of msg.peers) {
      peers.set(peer.peer_id, peer);
      stage.renderPeer(peer);
    }
    ui.leave.disabled = false;
    ui.screen.disabled = false;
    setState("connected", "");
    updatePresence();
  });
  c.addEventListener("peer-joined", (e) => {
    const peer = /** @type {CustomEvent<PeerInfo>} */ (e).detail;
    peers.set(peer.peer_id, peer);
    stage.renderPeer(peer);
    updatePresence();
  });
  c.addEventListener("peer-updated", (e) => {
    const peer = /** @type {CustomEvent<PeerInfo>} */ (e).detail;
    peers.set(peer.peer_id, peer);
    stage.renderPeer(peer);
  });
  c.addEventListener("peer-left", (e) => {
    const { peer_id } = /** @type {CustomEvent<{peer_id: string}>} */ (e).detail;
    peers.delete(peer_id);
    stage.removePeer(peer_id);
    updatePresence();
  });
  c.addEventListener("track", (e) => {
    const rt = /** @type {CustomEvent<RemoteTrack>} */ (e).detail;
    performance.mark(`kaamos:track-${rt.source}`);
    stage.addTrack(rt, peers.get(rt.peer_id)?.name);
  });
  c.addEventListener("track-removed", (e) => stage.removeTrack(/** @type {CustomEvent<RemoteTrack>} */ (e).detail));
  c.addEventListener("connection-state", (e) => {
    const state = /** @type {CustomEvent<RTCPeerConnectionState>} */ (e).detail;
    document.body.dataset.mediaState = state;
    performance.mark(`kaamos:pc-${state}`);
    if (state === "failed") setState("reconnecting", t("mediaFailed"));
  });
  c.addEventListener("closed", (e) => {
    const { code, error } = /** @type {CustomEvent<Closed>} */ (e).detail;
    if (code !== null) document.body.dataset.closeCode = String(code);
    if (over) return;
    if (error) fail(error);
    else if (code === 4001) end(t("roomEnded"), false);
    else end(t("left"), true);
  });
}

function translatePage() {
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll("[data-i18n]")) {
    const key = /** @type {StringKey} */ (/** @type {HTMLElement} */ (el).dataset.i18n);
    el.textContent = t(key);
  }
  for (const b of [ui.mic, ui.cam, ui.screen, ui.copyLink, ui.leave]) {
    const label = b.querySelector(".label")?.textContent ?? "";
    const key = b.getAttribute("aria-keyshortcuts");
    b.title = key ? `${label} (${key})` : label;
    b.setAttribute("aria-label", label);
  }
}

async function main() {
  translatePage();
  setState("connecting", t("connecting"));
  bindShortcuts();
  const match = location.pathname.match(/^\/room\/([^/]*)\/?$/);
  const roomId = match ? decodeURIComponent(match[1]) : "";
  if (!ROOM_ID_RE.test(roomId)) return fail("INVALID_ROOM_ID");
  // Tell "no such room" before asking for the camera (docs/protocol.md, "Refusals").
  try {
    const room = await lookupRoom(location, roomId);
    if ("error" in room) return fail(room.error);
  } catch (err) {
    console.info("kaamos: room lookup failed, trying the socket:", err);
  }
  name = await askName();
  showName();
  ui.nameButton.addEventListener("click", editName);
  localTracks = await acquireMedia();
  performance.mark("kaamos:media");
  client = new KaamosClient({ roomId, name, localTracks });
  showSelf();
  watchDevices();
  bindToggle(ui.mic, "microphone");
  bindToggle(ui.cam, "camera");
  ui.screen.hidden = !navigator.mediaDevices?.getDisplayMedia;
  ui.screen.addEventListener("click", toggleScreen);
  ui.copyLink.addEventListener("click", copyLink);
  ui.leave.addEventListener("click", () => {
    if (!client || over) return;
    client.leave();
    end(t("left"), true);
  });
  wire(client);
  client.connect();
}

main().catch((err) => {
  console.error("kaamos:", err);
  fail("CLIENT_ERROR");
});
