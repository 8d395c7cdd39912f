// Before the call: the room id from the address and the room check (so "no such room" comes
// before the camera prompt), the name (asked once, remembered, changeable from the top bar),
// and camera and microphone, with "Try again" and "Join anyway" when access was refused.

import { fail, notice, setState, showMessage } from "./banners.js";
import { captureMedia } from "./devices.js";
import { call, ui } from "./page.js";
import { lookupRoom } from "./protocol.js";
import { t } from "./strings.js";

/** @typedef {import("./protocol.js").LocalTracks} LocalTracks */

const ROOM_ID_RE = /^[A-Za-z0-9]{10}$/;
const NAME_KEY = "kaamos.name";

let name = "";

// ---- the room ---------------------------------------------------------------------------

/**
 * The room id from the address, checked with the server before anything is asked of the
 * user (docs/protocol.md, "Refusals"). A lookup that cannot be made is left to the socket.
 * @returns {Promise<string | null>}  null when there is no call: the page says why
 */
export async function checkRoom() {
  const match = location.pathname.match(/^\/room\/([^/]*)\/?$/);
  const roomId = match ? decodeURIComponent(match[1]) : "";
  if (!ROOM_ID_RE.test(roomId)) {
    fail("INVALID_ROOM_ID");
    return null;
  }
  try {
    const room = await lookupRoom(location, roomId);
    if ("error" in room) {
      fail(room.error);
      return null;
    }
  } catch (err) {
    console.info("kaamos: room lookup failed, trying the socket:", err);
  }
  return roomId;
}

// ---- name -------------------------------------------------------------------------------

/**
 * The name, shown in the top bar; clicking it there changes it (and rejoins).
 * @returns {Promise<string>}
 */
export async function chooseName() {
  name = await askName();
  showName();
  ui.nameButton.addEventListener("click", editName);
  return name;
}

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
  if (value === null || value === name || call.over) return;
  name = value;
  showName();
  call.client?.rejoin(name);
}

// ---- camera and microphone ----------------------------------------------------------------

/**
 * Capture; when access was refused, say what to do and let the user try again or join
 * with what there is.
 * @returns {Promise<LocalTracks>}
 */
export async function acquireMedia() {
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
