// The browser client's protocol modules without a browser: the room lookup (contract C3,
// static/lookup.js); the reconnect policy on its own, table by table (static/reconnect.js:
// states and transitions, backoff, which URL next, what counts towards giving up); and the
// whole client (static/protocol.js over static/session.js: C2 server-shutdown, WRONG_NODE
// redirects, final codes) with fake WebSocket, fetch, timers and RTCPeerConnection. Run by
// tests/browser/test_browser_protocol.py (node --test).

import assert from "node:assert/strict";
import { test } from "node:test";

import { LookupError, lookupRoom, signalingUrl } from "../../static/lookup.js";
import * as facade from "../../static/protocol.js";
import { KaamosClient } from "../../static/protocol.js";
import {
  ClientState,
  FINAL_CLOSE_CODES,
  FINAL_ERRORS,
  MAX_REDIRECTS,
  ReconnectPolicy,
  STABLE_MS,
  TRANSITIONS,
  TRY_AGAIN_CLOSE,
  WRONG_NODE_CLOSE,
  backoffMs,
  nextState,
  readServerError,
  readShutdown,
  retryReason,
} from "../../static/reconnect.js";

const LOC = { protocol: "https:", host: "kaamos.example:8443" };
const ROOM = "AbCdEf1234";

/** A fetch that answers every request with `status` and `body`; it records the URLs. */
function fakeFetch(status, body, urls = []) {
  return async (url) => {
    urls.push(url);
    return { ok: status < 300, status, json: async () => body };
  };
}

test("lookupRoom takes signaling_url, else falls back to the same origin", async () => {
  const urls = [];
  const there = { signaling_url: "wss://node2.example/ws/AbCdEf1234" };
  assert.deepEqual(await lookupRoom(LOC, ROOM, fakeFetch(200, there, urls)), {
    signalingUrl: "wss://node2.example/ws/AbCdEf1234",
  });
  assert.deepEqual(urls, ["https://kaamos.example:8443/api/rooms/AbCdEf1234"]);
  const same = { signalingUrl: "wss://kaamos.example:8443/ws/AbCdEf1234" };
  assert.deepEqual(await lookupRoom(LOC, ROOM, fakeFetch(200, { room_id: ROOM })), same);
  // Anything but a ws:// or wss:// URL is ignored.
  assert.deepEqual(await lookupRoom(LOC, ROOM, fakeFetch(200, { signaling_url: "http://x/" })), same);
  assert.equal(signalingUrl({ protocol: "http:", host: "h:1" }, ROOM), "ws://h:1/ws/AbCdEf1234");
});

test("lookupRoom: 404 and 410 are final, a 5xx or a network error throws", async () => {
  const notFound = { error: { code: "ROOM_NOT_FOUND", message: "no" } };
  assert.deepEqual(await lookupRoom(LOC, ROOM, fakeFetch(404, notFound)), { error: "ROOM_NOT_FOUND" });
  const expired = { error: { code: "ROOM_EXPIRED", message: "old" } };
  assert.deepEqual(await lookupRoom(LOC, ROOM, fakeFetch(410, expired)), { error: "ROOM_EXPIRED" });
  const down = { error: { code: "REGISTRY_UNAVAILABLE", message: "redis" } };
  await assert.rejects(lookupRoom(LOC, ROOM, fakeFetch(503, down)), { name: "LookupError", status: 503 });
  await assert.rejects(lookupRoom(LOC, ROOM, fakeFetch(502, null)), LookupError);
  await assert.rejects(lookupRoom(LOC, ROOM, async () => Promise.reject(new TypeError("offline"))), TypeError);
});

test("backoffMs doubles from 0.5 s to 10 s with +-25 % jitter", () => {
  assert.equal(backoffMs(1, () => 0.5), 500);
  assert.equal(backoffMs(2, () => 0.5), 1000);
  assert.equal(backoffMs(5, () => 0.5), 8000);
  assert.equal(backoffMs(50, () => 0.5), 10_000);
  assert.equal(backoffMs(1, () => 0), 375);
  assert.equal(backoffMs(1, () => 1), 625);
});

/** Fake WebSocket: records instances; tests open it, feed messages and close it. */
class FakeSocket {
  static OPEN = 1;
  /** @type {FakeSocket[]} */
  static all = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    this.listeners = {};
    FakeSocket.all.push(this);
  }
  addEventListener(type, fn) {
    (this.listeners[type] ??= []).push(fn);
  }
  fire(type, event) {
    for (const fn of this.listeners[type] ?? []) fn(event);
  }
  send(data) {
    this.sent.push(JSON.parse(data));
  }
  close() {}
  open() {
    this.readyState = 1;
    this.fire("open", {});
  }
  message(msg) {
    this.fire("message", { data: JSON.stringify(msg) });
  }
  closeWith(code) {
    this.readyState = 3;
    this.fire("close", { code, reason: "" });
  }
}

/** Fake RTCPeerConnection: only what a session touches before an offer. Like a browser, it
 * throws on an ICE server URL that is not stun:, stuns:, turn: or turns:. */
class FakePeerConnection {
  /** @type {FakePeerConnection[]} */
  static all = [];
  constructor(config) {
    for (const server of config.iceServers) {
      for (const url of [server.urls].flat()) {
        if (!/^(stuns?|turns?):/.test(url)) throw new SyntaxError(`'${url}' is not a valid URL`);
      }
    }
    this.config = config;
    this.connectionState = "new";
    this.listeners = {};
    this.closed = false;
    FakePeerConnection.all.push(this);
  }
  addEventListener(type, fn) {
    (this.listeners[type] ??= []).push(fn);
  }
  set(state) {
    this.connectionState = state;
    for (const fn of this.listeners.connectionstatechange ?? []) fn({});
  }
  close() {
    this.closed = true;
  }
}

/**
 * Run `fn` with fake globals (sockets, fetch, timers, peer connections; console.info
 * silenced); it gets the delays the client asked setTimeout for, and can run those timers.
 * Whatever `fn` replaces of these globals or of console is put back afterwards.
 */
async function withFakes(lookupBody, fn) {
  const saved = {
    WebSocket: globalThis.WebSocket,
    fetch: globalThis.fetch,
    setTimeout: globalThis.setTimeout,
    RTCPeerConnection: globalThis.RTCPeerConnection,
  };
  const savedConsole = { info: console.info, warn: console.warn, error: console.error };
  const delays = [];
  /** @type {Array<() => void>} */
  const timers = [];
  FakeSocket.all = [];
  globalThis.WebSocket = FakeSocket;
  globalThis.fetch = fakeFetch(200, lookupBody);
  globalThis.RTCPeerConnection = FakePeerConnection;
  globalThis.setTimeout = (cb, ms) => {
    // The 10 s join timeout is not under test here; reconnect waits are.
    if (ms !== 10_000) {
      delays.push(ms);
      timers.push(cb);
    }
    return 0;
  };
  console.info = () => {};
  try {
    await fn({ delays, runTimers: () => timers.splice(0).forEach((cb) => cb()) });
  } finally {
    Object.assign(globalThis, saved);
    Object.assign(console, savedConsole);
  }
}

/** Let pending promises (the lookup, the inbox) run; setImmediate is not faked. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

function newClient() {
  const client = new KaamosClient({ roomId: ROOM, name: "Ann", localTracks: {}, location: LOC });
  const events = [];
  for (const type of ["state", "closed"]) client.addEventListener(type, (e) => events.push([type, e.detail]));
  return { client, events };
}

/** A new client, connected: its first socket is open and has sent `join`. */
async function opened() {
  const { client, events } = newClient();
  client.connect();
  await settle();
  const ws = FakeSocket.all[0];
  ws.open();
  return { client, events, ws };
}

/** @param {FakeSocket} ws  the server answers `join` */
function joined(ws, peerId = "Pp1", iceServers = []) {
  ws.message({ type: "joined", peer_id: peerId, room_id: ROOM, peers: [], ice_servers: iceServers });
}

test("WRONG_NODE is followed at most MAX_REDIRECTS times per attempt", async () => {
  await withFakes({ signaling_url: "wss://a.example/ws/AbCdEf1234" }, async ({ delays }) => {
    const { client, events } = newClient();
    client.connect();
    await settle();
    for (let i = 0; i <= MAX_REDIRECTS; i++) {
      const ws = FakeSocket.all.at(-1);
      ws.open();
      assert.deepEqual(ws.sent, [{ type: "join", name: "Ann", publish: [] }]);
      ws.message({ type: "error", code: "WRONG_NODE", message: "", signaling_url: `wss://n${i}.example/ws/x` });
      ws.closeWith(4421);
      await settle();
    }
    assert.deepEqual(
      FakeSocket.all.map((w) => w.url),
      ["wss://a.example/ws/AbCdEf1234", "wss://n0.example/ws/x", "wss://n1.example/ws/x", "wss://n2.example/ws/x"],
    );
    // The fourth redirect is not followed: the attempt failed and waits its backoff.
    assert.equal(delays.length, 1);
    assert.ok(delays[0] >= 375 && delays[0] <= 625, delays);
    assert.equal(events.at(-1)[1].reason, "wrong-node");
  });
});

test("server-shutdown waits retry_after plus jitter, then looks the room up again", async () => {
  await withFakes({ room_id: ROOM }, async ({ delays, runTimers }) => {
    const { events, ws } = await opened();
    assert.equal(ws.url, "wss://kaamos.example:8443/ws/AbCdEf1234");
    ws.message({ type: "server-shutdown", retry_after: 7 });
    ws.closeWith(1001);
    await settle();
    assert.equal(delays.length, 1);
    assert.ok(delays[0] >= 7000 && delays[0] <= 8000, delays);
    assert.deepEqual(events.at(-1)[1], { state: "reconnecting", retryInMs: delays[0], attempt: 0, reason: "restart" });
    runTimers();
    await settle();
    assert.equal(FakeSocket.all.length, 2);
  });
});

test("RATE_LIMITED waits its retry_after before the next attempt", async () => {
  await withFakes({ room_id: ROOM }, async ({ delays }) => {
    const { events, ws } = await opened();
    ws.message({ type: "error", code: "RATE_LIMITED", message: "", retry_after: 17 });
    ws.closeWith(4429);
    await settle();
    assert.equal(delays.length, 1);
    assert.ok(delays[0] >= 17000 && delays[0] <= 18000, delays);
    assert.equal(events.at(-1)[1].reason, "unavailable");
  });
});

test("final refusals end the call without reconnecting", async () => {
  for (const [code, close] of [["ROOM_FULL", 4409], ["ROOM_NOT_FOUND", 4404]]) {
    await withFakes({ room_id: ROOM }, async ({ delays }) => {
      const { events, ws } = await opened();
      ws.message({ type: "error", code, message: "" });
      ws.closeWith(close);
      await settle();
      assert.deepEqual(events.at(-1), ["closed", { code: close, error: code }]);
      assert.deepEqual(delays, []);
    });
  }
});

test("a dropped socket reconnects with growing backoff, then gives up", async () => {
  await withFakes({ room_id: ROOM }, async ({ delays, runTimers }) => {
    const { client, events } = newClient();
    client.connect();
    await settle();
    for (let i = 0; i < 3; i++) {
      FakeSocket.all.at(-1).closeWith(1006);
      await settle();
      runTimers();
      await settle();
    }
    assert.equal(FakeSocket.all.length, 4);
    assert.ok(delays[0] <= 625 && delays[1] >= 750 && delays[1] <= 1250 && delays[2] >= 1500, delays);
    assert.deepEqual(new Set(events.slice(1).map(([, d]) => d.reason)), new Set(["lost"]));
    // Never in the call: the fourth failure in a row gives up.
    FakeSocket.all.at(-1).closeWith(1006);
    await settle();
    assert.deepEqual(events.at(-1), ["closed", { code: 1006, error: "UNREACHABLE" }]);
  });
});

const REGISTRY_DOWN = { error: { code: "REGISTRY_UNAVAILABLE", message: "The room registry is unavailable." } };

test("the service unavailable (lookup 503, REGISTRY_UNAVAILABLE, 1013) never gives up as UNREACHABLE", async () => {
  await withFakes({ room_id: ROOM }, async ({ delays, runTimers }) => {
    globalThis.fetch = fakeFetch(503, REGISTRY_DOWN);
    const { client, events } = newClient();
    client.connect();
    await settle();
    for (let i = 0; i < 8; i++) {
      const ws = FakeSocket.all.at(-1);
      ws.open();
      if (i % 2 === 0) ws.message({ type: "error", code: "REGISTRY_UNAVAILABLE", message: "" });
      // A socket that dies on a lookup that got 503 is the service too: the user's network works.
      ws.closeWith(i % 4 === 3 ? 1006 : 1013);
      await settle();
      runTimers();
      await settle();
    }
    // The lookup answers again, but the node still cannot reach the registry: 1013 alone.
    globalThis.fetch = fakeFetch(200, { room_id: ROOM });
    FakeSocket.all.at(-1).closeWith(1013);
    await settle();
    assert.equal(FakeSocket.all.length, 9);
    assert.ok(!events.some(([type]) => type === "closed"), events);
    const retries = events.filter(([, d]) => d.state === "reconnecting").map(([, d]) => d.reason);
    assert.deepEqual(retries, Array(9).fill("unavailable"));
    // Still backing off, up to 10 s.
    assert.ok(delays[1] >= 750 && delays.at(-1) >= 7500 && delays.at(-1) <= 12_500, delays);
  });
});

test("lookup failing: back to the socket that last joined, then the page's own origin", async () => {
  await withFakes({ signaling_url: "wss://node2.example/ws/AbCdEf1234" }, async ({ runTimers }) => {
    const { events, ws: first } = await opened();
    joined(first);
    await settle();
    /** The current socket drops; the next attempt runs. */
    const drop = async () => {
      FakeSocket.all.at(-1).closeWith(1006);
      await settle();
      runTimers();
      await settle();
    };
    globalThis.fetch = fakeFetch(503, REGISTRY_DOWN);
    for (let i = 0; i < 3; i++) await drop();
    // The network fails the lookup: the same order.
    globalThis.fetch = async () => Promise.reject(new TypeError("Failed to fetch"));
    await drop();
    const own = "wss://kaamos.example:8443/ws/AbCdEf1234";
    assert.deepEqual(
      FakeSocket.all.map((w) => w.url),
      [first.url, first.url, own, first.url, own],
    );
    const reasons = events.filter(([, d]) => d.state === "reconnecting").map(([, d]) => d.reason);
    assert.deepEqual(reasons, ["lost", "unavailable", "unavailable", "unavailable"]);
    // Joined through the page's own origin: that socket is now the one to go back to.
    FakeSocket.all.at(-1).open();
    joined(FakeSocket.all.at(-1), "Pp2");
    await settle();
    await drop();
    assert.equal(FakeSocket.all.at(-1).url, own);
    assert.equal(FakeSocket.all.length, 6);
  });
});

test("a media connection that fails after working is a rejoin at once (no ICE restart)", async () => {
  await withFakes({ room_id: ROOM }, async ({ delays, runTimers }) => {
    const { ws } = await opened();
    let closedWith = null;
    ws.close = (code) => (closedWith = code);
    joined(ws);
    await settle();
    const pc = FakePeerConnection.all.at(-1);
    pc.set("connected");
    pc.set("failed");
    await settle();
    assert.equal(closedWith, 4000);
    assert.ok(pc.closed);
    assert.deepEqual(delays, [0]);
    runTimers();
    await settle();
    assert.equal(FakeSocket.all.length, 2);
  });
});

test("ice_servers the browser refuses are left out, not a page stuck on Connecting", async () => {
  await withFakes({ room_id: ROOM }, async ({ delays }) => {
    const warnings = [];
    console.warn = (...args) => warnings.push(args.join(" "));
    const { client, events, ws } = await opened();
    const peers = [];
    client.addEventListener("joined", (e) => peers.push(e.detail.peer_id));
    const good = { urls: ["turn:turn.example:3478"], username: "u", credential: "secret" };
    joined(ws, "Pp1", [{ urls: "stun.example.org" }, good, { urls: ["stun:ok.example", "ok2.example"] }]);
    await settle();
    assert.deepEqual(peers, ["Pp1"]);
    assert.deepEqual(FakePeerConnection.all.at(-1).config, { iceServers: [good], bundlePolicy: "max-bundle" });
    assert.equal(events.at(-1)[1].state, "connected");
    assert.ok(warnings.some((w) => w.includes('"stun.example.org"')), warnings);
    assert.ok(!warnings.some((w) => w.includes("secret")), warnings);
    assert.deepEqual(delays, []);
  });
});

test("a browser that cannot make an RTCPeerConnection at all ends the call with NO_WEBRTC", async () => {
  await withFakes({ room_id: ROOM }, async ({ delays }) => {
    globalThis.RTCPeerConnection = class {
      constructor() {
        throw new DOMException("WebRTC is disabled", "NotSupportedError");
      }
    };
    console.error = console.warn = () => {};
    const { events, ws } = await opened();
    joined(ws, "Pp1", [{ urls: "stun:a" }]);
    await settle();
    assert.deepEqual(events.at(-1), ["closed", { code: null, error: "NO_WEBRTC" }]);
    assert.deepEqual(delays, []);
  });
});

// ---- static/protocol.js is the page's one import ------------------------------------------

test("protocol.js still exports what the page and other clients import", () => {
  for (const [name, value] of Object.entries({ LookupError, lookupRoom, signalingUrl, backoffMs, ClientState })) {
    assert.equal(facade[name], value, name);
  }
  for (const [name, value] of Object.entries({ FINAL_CLOSE_CODES, FINAL_ERRORS, MAX_REDIRECTS, TRY_AGAIN_CLOSE, WRONG_NODE_CLOSE })) {
    assert.equal(facade[name], value, name);
  }
  assert.equal(typeof facade.KaamosClient, "function");
});

// ---- the reconnect policy alone (static/reconnect.js): no socket, no timer -----------------

const OWN = "wss://kaamos.example:8443/ws/AbCdEf1234";
const NODE2 = "wss://node2.example/ws/AbCdEf1234";
const { IDLE, LOOKING_UP, JOINING, JOINED, WAITING, LEAVING, CLOSED } = ClientState;
const EVENTS = ["connect", "attempt", "found", "redirect", "joined", "retry", "leave", "end"];

/** The events that take a new policy to each state; the state can be set no other way. */
const PATHS = {
  [IDLE]: [],
  [LOOKING_UP]: ["connect"],
  [JOINING]: ["connect", "found"],
  [JOINED]: ["connect", "found", "joined"],
  [WAITING]: ["connect", "found", "retry"],
  [LEAVING]: ["connect", "found", "leave"],
  [CLOSED]: ["end"],
};

/** A new policy taken to `state` by events (JOINED through joined(), as the client does). */
function reach(state, options = {}) {
  const policy = new ReconnectPolicy({ ownUrl: OWN, ...options });
  for (const event of PATHS[state]) assert.ok(event === "joined" ? policy.joined(OWN) : policy.fire(event), event);
  assert.equal(policy.state, state);
  return policy;
}

test("ClientState is a frozen set of string constants, each with its transitions", () => {
  assert.ok(Object.isFrozen(ClientState) && Object.isFrozen(TRANSITIONS));
  assert.deepEqual(Object.values(ClientState), ["idle", "looking-up", "joining", "joined", "waiting", "leaving", "closed"]);
  assert.deepEqual(Object.keys(TRANSITIONS), EVENTS);
  assert.throws(() => {
    new ReconnectPolicy({ ownUrl: OWN }).state = CLOSED;
  }, TypeError);
});

test("transitions: every event in every state (table)", () => {
  const _ = null;
  const table = {
    //           connect     attempt     found    redirect joined  retry    leave    end
    [IDLE]:       [LOOKING_UP, _,          _,       _,       _,      _,       _,       CLOSED],
    [LOOKING_UP]: [_,          _,          JOINING, _,       _,      _,       _,       CLOSED],
    [JOINING]:    [_,          _,          _,       JOINING, JOINED, WAITING, LEAVING, CLOSED],
    [JOINED]:     [_,          _,          _,       JOINING, _,      WAITING, LEAVING, CLOSED],
    [WAITING]:    [_,          LOOKING_UP, _,       _,       _,      _,       _,       CLOSED],
    [LEAVING]:    [_,          _,          _,       _,       _,      _,       _,       CLOSED],
    [CLOSED]:     [_,          _,          _,       _,       _,      _,       _,       _],
  };
  assert.deepEqual(Object.keys(table), Object.values(ClientState));
  for (const [state, row] of Object.entries(table)) {
    row.forEach((expected, i) => {
      const event = EVENTS[i];
      assert.equal(nextState(state, event), expected, `${state} --${event}-->`);
      const policy = reach(state);
      assert.equal(policy.fire(event), expected !== null, `${state} fire(${event})`);
      assert.equal(policy.state, expected ?? state, `${state} after fire(${event})`);
    });
  }
});

test("a new attempt starts with no redirects and no service failure", () => {
  for (const [from, event] of [[IDLE, "connect"], [WAITING, "attempt"]]) {
    const policy = Object.assign(reach(from), { redirects: 3, serviceDown: true });
    assert.ok(policy.fire(event));
    assert.deepEqual([policy.state, policy.redirects, policy.serviceDown], [LOOKING_UP, 0, false]);
  }
});

test("backoffMs table: 0.5 s doubling to 10 s, +-25 % jitter", () => {
  const table = [
    // failures, random, ms
    [0, 0.5, 500], [1, 0.5, 500], [2, 0.5, 1000], [3, 0.5, 2000], [4, 0.5, 4000],
    [5, 0.5, 8000], [6, 0.5, 10_000], [50, 0.5, 10_000],
    [1, 0, 375], [1, 1, 625], [3, 0, 1500], [3, 1, 2500], [6, 0, 7500], [6, 1, 12_500],
  ];
  for (const [failures, random, ms] of table) assert.equal(backoffMs(failures, () => random), ms, `${failures} ${random}`);
});

/** A policy in the given situation (JOINING unless `state` says); jitter in the middle, the clock at `now`. */
function policyIn({ state = JOINING, ...fields }, now) {
  const policy = reach(state, { random: () => 0.5, now: () => now });
  return Object.assign(policy, fields);
}

/** A session end: by default, the socket dropped (1006) before `joined`. */
function ended(fields = {}) {
  return {
    code: 1006, abandoned: false, joinedAt: null, mediaConnected: false,
    redirect: null, retryAfter: null, reason: null, error: null, ...fields,
  };
}

test("sessionEnded decides: end, redirect, or retry with its wait and reason (table)", () => {
  const NOW = 1_000_000;
  const table = [
    // name, policy fields, session end, decision, state after, failures after
    ["left: the close ends the call", { state: LEAVING }, { code: 1000 }, { action: "end", error: null }, CLOSED, 0],
    ["left, even with an error", { state: LEAVING }, { error: "ROOM_FULL", code: 4409 }, { action: "end", error: null }, CLOSED, 0],
    ["a final error", {}, { error: "ROOM_FULL", code: 4409 }, { action: "end", error: "ROOM_FULL" }, CLOSED, 0],
    ["no RTCPeerConnection", { state: JOINED }, { error: "NO_WEBRTC", code: null, abandoned: true }, { action: "end", error: "NO_WEBRTC" }, CLOSED, 0],
    ...[...FINAL_CLOSE_CODES].map((code) => [`final close ${code}`, {}, { code }, { action: "end", error: null }, CLOSED, 0]),
    ["abandoned: our 4000, not a final code", {}, { code: 1000, abandoned: true }, { action: "retry", delayMs: 500, attempt: 1, reason: "lost" }, WAITING, 1],
    ["WRONG_NODE followed", { redirects: 2 }, { code: 4421, redirect: NODE2 }, { action: "redirect", url: NODE2 }, JOINING, 0],
    ["WRONG_NODE once too often", { redirects: 3 }, { code: 4421, redirect: NODE2 }, { action: "retry", delayMs: 500, attempt: 1, reason: "wrong-node" }, WAITING, 1],
    ["4421 without a URL", {}, { code: 4421 }, { action: "retry", delayMs: 500, attempt: 1, reason: "wrong-node" }, WAITING, 1],
    ["WRONG_NODE URL but another close", {}, { code: 1006, redirect: NODE2 }, { action: "retry", delayMs: 500, attempt: 1, reason: "lost" }, WAITING, 1],
    ["server-shutdown: retry_after + jitter, no failure", { failures: 2 }, { code: 1001, retryAfter: 7, reason: "restart" }, { action: "retry", delayMs: 7500, attempt: 2, reason: "restart" }, WAITING, 2],
    ["RATE_LIMITED: retry_after + jitter", {}, { code: 4429, retryAfter: 17, reason: "unavailable" }, { action: "retry", delayMs: 17_500, attempt: 0, reason: "unavailable" }, WAITING, 0],
    ["REGISTRY_UNAVAILABLE", { failures: 1 }, { code: 1013, reason: "unavailable" }, { action: "retry", delayMs: 1000, attempt: 2, reason: "unavailable" }, WAITING, 2],
    ["close 1013 alone", {}, { code: TRY_AGAIN_CLOSE }, { action: "retry", delayMs: 500, attempt: 1, reason: "unavailable" }, WAITING, 1],
    ["dropped after a 5xx lookup", { serviceDown: true }, { code: 1006 }, { action: "retry", delayMs: 500, attempt: 1, reason: "unavailable" }, WAITING, 1],
    ["dropped", { failures: 3 }, { code: 1006 }, { action: "retry", delayMs: 4000, attempt: 4, reason: "lost" }, WAITING, 4],
    ["dropped after media connected: backoff", { state: JOINED }, { code: 1006, mediaConnected: true, joinedAt: NOW - 1000 }, { action: "retry", delayMs: 500, attempt: 1, reason: "lost" }, WAITING, 1],
    ["join timeout (abandoned, no media)", {}, { code: null, abandoned: true }, { action: "retry", delayMs: 500, attempt: 1, reason: "lost" }, WAITING, 1],
    ["media failed after working: straight back", { state: JOINED, failures: 3 }, { code: null, abandoned: true, mediaConnected: true, joinedAt: NOW - 1000 }, { action: "retry", delayMs: 0, attempt: 3, reason: "lost" }, WAITING, 3],
    ["a join that lasted: backoff afresh", { state: JOINED, failures: 5 }, { code: 1006, joinedAt: NOW - STABLE_MS - 1 }, { action: "retry", delayMs: 500, attempt: 1, reason: "lost" }, WAITING, 1],
    ["a short join: backoff goes on", { state: JOINED, failures: 2 }, { code: 1006, joinedAt: NOW - STABLE_MS }, { action: "retry", delayMs: 2000, attempt: 3, reason: "lost" }, WAITING, 3],
  ];
  for (const [name, fields, end, decision, stateAfter, failuresAfter] of table) {
    const policy = policyIn(fields, NOW);
    assert.deepEqual(policy.sessionEnded(ended(end)), decision, name);
    assert.equal(policy.state, stateAfter, name);
    assert.equal(policy.failures, failuresAfter, name);
  }
});

test("retryReason and the readers of server messages (table)", () => {
  const reasons = [
    [{ code: 1001, reason: "restart" }, false, "restart"],
    [{ code: 4429, reason: "unavailable" }, false, "unavailable"],
    [{ code: TRY_AGAIN_CLOSE }, false, "unavailable"],
    [{ code: 1006 }, true, "unavailable"],
    [{ code: WRONG_NODE_CLOSE }, false, "wrong-node"],
    [{ code: 1006 }, false, "lost"],
    [{ code: null, abandoned: true }, false, "lost"],
  ];
  for (const [end, serviceDown, reason] of reasons) assert.equal(retryReason(ended(end), serviceDown), reason, JSON.stringify(end));
  const errors = [
    [{ code: "WRONG_NODE", signaling_url: NODE2 }, { redirect: NODE2 }],
    [{ code: "WRONG_NODE", signaling_url: "https://node2.example/" }, null],
    [{ code: "RATE_LIMITED", retry_after: 17 }, { retryAfter: 17, reason: "unavailable" }],
    [{ code: "RATE_LIMITED" }, null],
    [{ code: "REGISTRY_UNAVAILABLE" }, { reason: "unavailable" }],
    ...[...FINAL_ERRORS].map((code) => [{ code }, { error: code }]),
    [{ code: "BAD_MESSAGE" }, null],
    [{ code: "AT_CAPACITY" }, null],
  ];
  for (const [msg, told] of errors) assert.deepEqual(readServerError({ type: "error", message: "", ...msg }), told, msg.code);
  assert.deepEqual(readShutdown({ retry_after: 7 }), { retryAfter: 7, reason: "restart" });
  assert.deepEqual(readShutdown({ retry_after: -3 }), { retryAfter: 0, reason: "restart" });
  assert.deepEqual(readShutdown({}), { retryAfter: 0, reason: "restart" });
});

test("lookup failing: which URL next (table)", () => {
  // Steps: "fail" (network), "503" (a 5xx), "ok" (the lookup answered), "joined URL".
  const table = [
    ["never joined: the page's own origin", [], ["fail", "503", "fail"], [OWN, OWN, OWN]],
    ["joined elsewhere: there, then own, in turn", [NODE2], ["fail", "fail", "503", "fail"], [NODE2, OWN, NODE2, OWN]],
    ["joined at own origin: own only", [OWN], ["fail", "fail"], [OWN, OWN]],
    ["a lookup that answers starts the turn again", [NODE2], ["fail", "ok", "fail", "fail"], [NODE2, NODE2, OWN]],
    ["a join starts the turn again", [NODE2], ["fail", `joined ${NODE2}`, "fail"], [NODE2, NODE2]],
    ["the last join wins", [NODE2], ["fail", `joined ${OWN}`, "fail", "fail"], [NODE2, OWN, OWN]],
  ];
  for (const [name, joinedAt, steps, expected] of table) {
    const policy = new ReconnectPolicy({ ownUrl: OWN });
    const join = (url) => {
      if (policy.state === IDLE) policy.fire("connect");
      else assert.ok(policy.fire("retry") && policy.fire("attempt"));
      assert.ok(policy.fire("found") && policy.joined(url));
    };
    joinedAt.forEach(join);
    const urls = [];
    for (const step of steps) {
      if (step === "ok") policy.lookupAnswered();
      else if (step.startsWith("joined ")) join(step.slice(7));
      else urls.push(policy.lookupFailed(step === "503" ? 503 : null));
    }
    assert.deepEqual(urls, expected, name);
  }
  const policy = new ReconnectPolicy({ ownUrl: OWN });
  for (const [status, down] of [[null, false], [404, false], [500, true], [503, true], [429, false]]) {
    policy.lookupFailed(status);
    assert.equal(policy.serviceDown, down, String(status));
  }
});

/**
 * Drive a policy through attempts that each end like one of `ends` (a string from ENDS or
 * "joined"/"media"); returns the decisions.
 */
const ENDS = {
  lost: ended(),
  timeout: ended({ code: null, abandoned: true }),
  unavailable: ended({ code: 1013, reason: "unavailable" }),
  try_again: ended({ code: TRY_AGAIN_CLOSE }),
  rate_limited: ended({ code: 4429, retryAfter: 30, reason: "unavailable" }),
  restart: ended({ code: 1001, retryAfter: 5, reason: "restart" }),
  wrong_node: ended({ code: WRONG_NODE_CLOSE, redirect: NODE2 }),
};
function drive(steps, options = {}) {
  const policy = new ReconnectPolicy({ ownUrl: OWN, random: () => 0.5, ...options });
  assert.ok(policy.fire("connect"));
  const decisions = [];
  for (const step of steps) {
    if (policy.state === WAITING) assert.ok(policy.fire("attempt"));
    if (policy.state === LOOKING_UP) assert.ok(policy.fire("found"));
    if (step === "joined") assert.ok(policy.joined(OWN));
    else if (step === "media") policy.mediaConnected();
    else decisions.push(policy.sessionEnded(step === "lost after 503" ? (policy.lookupFailed(503), ENDS.lost) : ENDS[step]));
  }
  return { policy, decisions };
}

test("giving up: only attempts lost to the network count (table)", () => {
  const times = (n, step) => Array(n).fill(step);
  const table = [
    // name, steps, gives up (UNREACHABLE) at the last step
    ["before the first join: 3 lost", times(3, "lost"), false],
    ["before the first join: 4 lost", times(4, "lost"), true],
    ["join timeouts are lost too", times(4, "timeout"), true],
    ["after a join: 29 lost", ["joined", ...times(29, "lost")], false],
    ["after a join: 30 lost", ["joined", ...times(30, "lost")], true],
    ["REGISTRY_UNAVAILABLE, 100 times", times(100, "unavailable"), false],
    ["close 1013, 100 times", times(100, "try_again"), false],
    ["dropped after a 5xx lookup, 100 times", times(100, "lost after 503"), false],
    ["RATE_LIMITED, 100 times", times(100, "rate_limited"), false],
    ["server-shutdown, 100 times", times(100, "restart"), false],
    ["WRONG_NODE going round, 100 times", times(100, "wrong_node"), false],
    ["refusals between losses do not reset the count", ["lost", "unavailable", "lost", "restart", "lost", "rate_limited", "lost"], true],
    ["media that connected resets the count", ["lost", "lost", "lost", "joined", "media", ...times(29, "lost")], false],
    ["media that connected, then 30 lost", ["lost", "lost", "lost", "joined", "media", ...times(30, "lost")], true],
  ];
  for (const [name, steps, givesUp] of table) {
    const { policy, decisions } = drive(steps);
    const unreachable = decisions.filter((d) => d.action === "end");
    if (givesUp) {
      assert.deepEqual(unreachable, [{ action: "end", error: "UNREACHABLE" }], name);
      assert.equal(decisions.at(-1).action, "end", name);
      assert.equal(policy.state, CLOSED, name);
    } else {
      assert.deepEqual(unreachable, [], name);
      assert.equal(policy.state, WAITING, name);
    }
  }
  // The limits are options.
  assert.equal(drive(times(2, "lost"), { maxFirstAttempts: 2 }).policy.state, CLOSED);
  assert.equal(drive(["joined", ...times(5, "lost")], { maxAttempts: 5 }).policy.state, CLOSED);
  // The backoff grows with refusals too, and stays at 10 s +-25 %.
  const { decisions } = drive(times(8, "unavailable"));
  assert.deepEqual(decisions.map((d) => d.delayMs), [500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000]);
  assert.deepEqual(decisions.map((d) => d.attempt), [1, 2, 3, 4, 5, 6, 7, 8]);
});

// ---- the client's state, driven through fake sockets ---------------------------------------

test("the client's state follows the call: connect, join, drop, wait, attempt again, leave", async () => {
  await withFakes({ room_id: ROOM }, async ({ delays, runTimers }) => {
    const { client, events } = newClient();
    assert.equal(client.state, IDLE);
    client.connect();
    assert.equal(client.state, LOOKING_UP);
    client.connect(); // a second connect() changes nothing
    await settle();
    assert.equal(client.state, JOINING);
    assert.equal(FakeSocket.all.length, 1);
    assert.deepEqual(events, [["state", { state: "connecting" }]]);
    FakeSocket.all[0].open();
    joined(FakeSocket.all[0]);
    await settle();
    assert.equal(client.state, JOINED);
    FakeSocket.all[0].closeWith(1006);
    await settle();
    assert.equal(client.state, WAITING);
    runTimers();
    assert.equal(client.state, LOOKING_UP);
    await settle();
    assert.equal(client.state, JOINING);
    const ws = FakeSocket.all[1];
    ws.open();
    joined(ws, "Pp2");
    await settle();
    client.leave();
    assert.equal(client.state, LEAVING);
    assert.deepEqual(ws.sent.at(-1), { type: "leave" });
    ws.closeWith(1000);
    await settle();
    assert.equal(client.state, CLOSED);
    assert.deepEqual(events.filter(([type]) => type === "closed"), [["closed", { code: 1000, error: null }]]);
    // The one-second fallback of leave() finds the call over: no second "closed".
    assert.deepEqual(delays, [delays[0], 1000]);
    runTimers();
    assert.equal(events.filter(([type]) => type === "closed").length, 1);
  });
});

test("rejoin while the lookup runs opens one socket, under the new name", async () => {
  await withFakes({ room_id: ROOM }, async () => {
    const { client } = newClient();
    client.connect();
    client.rejoin("Bea");
    await settle();
    assert.equal(FakeSocket.all.length, 1);
    FakeSocket.all[0].open();
    assert.deepEqual(FakeSocket.all[0].sent, [{ type: "join", name: "Bea", publish: [] }]);
  });
});

test("rejoin while waiting attempts at once; while joined, it abandons the socket", async () => {
  await withFakes({ room_id: ROOM }, async ({ delays }) => {
    const { client, ws } = await opened();
    joined(ws);
    await settle();
    let closedWith = null;
    ws.close = (code) => (closedWith = code);
    client.rejoin("Bea");
    await settle();
    assert.equal(closedWith, 4000);
    // No media had connected: the rejoin waits its backoff, like any failed attempt.
    assert.equal(client.state, WAITING);
    assert.equal(delays.length, 1);
    client.rejoin("Cid");
    assert.equal(client.state, LOOKING_UP);
    await settle();
    FakeSocket.all.at(-1).open();
    assert.deepEqual(FakeSocket.all.at(-1).sent, [{ type: "join", name: "Cid", publish: [] }]);
  });
});

test("leave before the socket opened, or while waiting, ends the call at once", async () => {
  for (const when of ["lookup", "connecting", "waiting"]) {
    await withFakes({ room_id: ROOM }, async () => {
      const { client, events } = newClient();
      client.connect();
      if (when !== "lookup") await settle();
      if (when === "waiting") {
        FakeSocket.all[0].closeWith(1006);
        await settle();
        assert.equal(client.state, WAITING);
      }
      client.leave();
      assert.equal(client.state, CLOSED, when);
      await settle();
      assert.equal(FakeSocket.all.length, when === "lookup" ? 0 : 1, when);
      assert.deepEqual(events.filter(([type]) => type === "closed").length, 1, when);
    });
  }
});

test("a joined that comes after leave() is not a join: the call stays over", async () => {
  await withFakes({ room_id: ROOM }, async () => {
    const { client, events, ws } = await opened();
    const joins = [];
    client.addEventListener("joined", (e) => joins.push(e.detail.peer_id));
    client.leave();
    assert.deepEqual(ws.sent.at(-1), { type: "leave" });
    joined(ws);
    await settle();
    assert.deepEqual(joins, []);
    assert.equal(client.state, LEAVING);
    assert.ok(!events.some(([, d]) => d?.state === "connected"), events);
    ws.closeWith(1000);
    await settle();
    assert.deepEqual(events.at(-1), ["closed", { code: 1000, error: null }]);
  });
});

test("closed reports the last close code a socket had, not the null of one given up", async () => {
  await withFakes({ room_id: ROOM }, async ({ runTimers }) => {
    console.error = console.warn = () => {};
    const { client, events } = newClient();
    client.connect();
    await settle();
    FakeSocket.all[0].closeWith(1006);
    await settle();
    runTimers();
    await settle();
    globalThis.RTCPeerConnection = class {
      constructor() {
        throw new DOMException("WebRTC is disabled", "NotSupportedError");
      }
    };
    FakeSocket.all[1].open();
    joined(FakeSocket.all[1]);
    await settle();
    assert.equal(client.lastCloseCode, 1006);
    assert.deepEqual(events.at(-1), ["closed", { code: 1006, error: "NO_WEBRTC" }]);
  });
});
