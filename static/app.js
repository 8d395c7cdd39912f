// The room page: checks the room, asks the name, captures camera and microphone, and shows
// the call. Signaling lives in protocol.js, tiles in tiles.js, words in strings.js; the page
// is in page.js (its elements and the call's state), banners.js (what it says), prejoin.js
// (room check, name, camera and microphone permission), devices.js (our own camera and
// microphone), controls.js (the buttons and keys) and call.js (the call's events). This file
// puts them in order.

import { fail, setState } from "./banners.js";
import { wire } from "./call.js";
import { bindControls, bindShortcuts } from "./controls.js";
import { showSelf, watchDevices } from "./devices.js";
import { call, ui } from "./page.js";
import { acquireMedia, checkRoom, chooseName } from "./prejoin.js";
import { KaamosClient } from "./protocol.js";
import { lang, t } from "./strings.js";

/** @typedef {import("./strings.js").StringKey} StringKey */

// For tests and debugging: window.kaamos.pc is the current RTCPeerConnection.
Object.defineProperty(window, "kaamos", {
  value: Object.freeze({
    get client() {
      return call.client;
    },
    get pc() {
      return call.client?.pc ?? null;
    },
    get localTracks() {
      return call.localTracks;
    },
  }),
});

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
  const roomId = await checkRoom();
  if (roomId === null) return;
  const name = await chooseName();
  call.localTracks = await acquireMedia();
  performance.mark("kaamos:media");
  const client = new KaamosClient({ roomId, name, localTracks: call.localTracks });
  call.client = client;
  showSelf();
  watchDevices();
  bindControls();
  wire(client);
  client.connect();
}

main().catch((err) => {
  console.error("kaamos:", err);
  fail("CLIENT_ERROR");
});
