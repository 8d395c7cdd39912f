// What the room page's modules share: the elements they use, the stage of tiles, and the
// call's state (the client, our own tracks, the others in the call, whether it is over).

import { Stage } from "./tiles.js";

/** @typedef {import("./protocol.js").KaamosClient} KaamosClient */
/** @typedef {import("./protocol.js").PeerInfo} PeerInfo */
/** @typedef {import("./protocol.js").LocalTracks} LocalTracks */

/**
 * @template {HTMLElement} T
 * @param {string} id
 * @returns {T}
 */
function $(id) {
  return /** @type {T} */ (document.getElementById(id));
}

export const ui = {
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

export const stage = new Stage($("grid"), /** @type {HTMLTemplateElement} */ ($("tile-template")), $("self"));

/**
 * The call as the page knows it: `client` once the page has joined, `localTracks` our
 * camera, microphone and screen, `peers` the others by peer id, and `over` once the call has
 * ended or failed (nothing after that brings it back but a reload).
 * @type {{client: KaamosClient | null, localTracks: LocalTracks, peers: Map<string, PeerInfo>, over: boolean}}
 */
export const call = { client: null, localTracks: {}, peers: new Map(), over: false };
