// Our own camera and microphone: capture them (and tell a refusal from a missing device),
// carry on without one that is unplugged mid-call, and show them in our own tile.

import { notice } from "./banners.js";
import { call, stage, ui } from "./page.js";
import { t } from "./strings.js";

/** @typedef {import("./protocol.js").LocalTracks} LocalTracks */

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
export async function captureMedia() {
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

/** A device unplugged mid-call: carry on without it. */
export function watchDevices() {
  for (const source of /** @type {const} */ (["camera", "microphone"])) {
    call.localTracks[source]?.addEventListener("ended", () => {
      if (call.over) return;
      delete call.localTracks[source];
      call.client?.setTrack(source, null);
      const button = source === "camera" ? ui.cam : ui.mic;
      button.disabled = true;
      notice(t("deviceLost", { device: t(source === "camera" ? "cameraWord" : "micWord") }));
      showSelf();
    });
  }
}

/** Our own tile: the camera (the initial when it is off or missing) and what is muted. */
export function showSelf() {
  stage.showSelf(call.localTracks.camera, call.client?.muted ?? { camera: false, microphone: false }, Boolean(call.localTracks.microphone));
}
