// The arena page: one websocket, two streaming columns, a vote, the reveal. This module owns the
// page's state and wires the socket, the reducer (battle_state.js) and the drawing
// (battle_view.js) together; the state changes only through `change` below, and is drawn at most
// once an animation frame.

import { SIDES, acceptsPrompt, answersRegenerate, lastTurn, lastTurnAny, reduceBattle, stateKey } from "./battle_state.js";
import { OUTCOMES, battleView } from "./battle_view.js";
import { promptKeysWire } from "./composer_keys.js";
import { controlsOf } from "./controls.js";
import { modelsWatch } from "./models_status.js";
import { socketConnect } from "./socket.js";

const STORAGE_KEY = "arena.battle";  // sessionStorage: the battle to rejoin after a reload
const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);
const form = byTestId("composer");
const promptBox = byTestId("prompt");
const touchFirst = window.matchMedia("(pointer: coarse)");

const page = {
  battle: null,  // see battle_state.js; null before the first prompt and after "New round"
  connected: false,
  // The prompt sent and not yet answered: its text stays in the box until the server accepts it.
  pendingPrompt: null,  // {text, battle, index, previous}
  pendingVote: null,  // the outcome sent and not yet answered
  pendingRegenerate: null,  // {battle, index, attempt}: a regenerate or retry sent and not yet answered
  // A join sent for a fresh snapshot (the battle is `behind`), not yet answered.
  resyncing: false,
  modelsReady: form.dataset.modelsReady !== "false",
  // {text, at}: `at` is the stateKey a refusal about the battle's state was about (null if not),
  // so that it goes once that state changes.
  composerError: null,
  status: "",  // the connection's trouble, if any
};

const view = battleView();
const models = modelsWatch(form.dataset.modelsStatusUrl, () => { if (!page.modelsReady) modelsReadySet(true); });
let renderQueued = false;
// Streaming text is drawn at most this often: each frame drawn costs Chromium style, layout,
// paint and compositing whatever changed (at 60 frames a second about 2.5 ms of CPU per token,
// at 10 about 1; bench/browser.py), and ten updates a second read as smoothly.
const FRAME_MIN_MS = 100;
let renderedAt = -Infinity;

function change(changes) {
  Object.assign(page, changes);
  if (renderQueued) return;
  renderQueued = true;
  const frame = () => requestAnimationFrame(() => { renderQueued = false; render(); });
  const wait = renderedAt + FRAME_MIN_MS - performance.now();
  if (wait > 0) setTimeout(frame, wait);
  else frame();
}

// Drawn at once (not at the next frame) after what the user did, so that focus can move first.
function render(focusMove) {
  renderedAt = performance.now();
  view.draw(page, controlsOf(page), focusMove);
}

const socket = socketConnect({
  path: "/ws/arena/",
  onOpen() {
    change({ connected: true, status: "" });
    const id = page.battle ? page.battle.battle : sessionStorage.getItem(STORAGE_KEY);
    if (id) socket.send({ action: "join", battle: id });
  },
  onFrame,
  onClose() {
    // Whatever was in flight is lost with the connection (the prompt is still in its box); the
    // join on reconnecting brings a fresh snapshot anyway.
    change({
      connected: false, pendingPrompt: null, pendingVote: null, pendingRegenerate: null, resyncing: false,
      status: "Connection lost; reconnecting…",
    });
  },
});

function sendOrSay(frame) {
  if (socket.send(frame)) return true;
  change({ composerError: { text: "Not connected yet; try again in a moment.", at: null } });
  return false;
}

function onFrame(frame) {
  if (frame.type === "state") stateTake(frame.state);
  else if (frame.type === "error") refusalTake(frame);
  else eventTake(frame);
  refusalExpire();
}

function stateTake(state) {
  const changes = { battle: state, resyncing: false };
  if (acceptsPrompt(state, page.pendingPrompt)) {
    view.promptClear(page.pendingPrompt.text);
    Object.assign(changes, { pendingPrompt: null, composerError: null });
    if (!page.modelsReady) modelsReadySet(true);  // a battle started: there were models after all
  }
  if (answersRegenerate(state, page.pendingRegenerate)) changes.pendingRegenerate = null;
  if (state && state.voted) changes.pendingVote = null;
  if (state) sessionStorage.setItem(STORAGE_KEY, state.battle);
  else sessionStorage.removeItem(STORAGE_KEY);
  change(changes);
}

function eventTake(frame) {
  const battle = reduceBattle(page.battle, frame);
  if (battle === page.battle) return;
  const revealed = frame.type === "revealed";
  change(revealed ? { battle, pendingVote: null, composerError: null } : { battle });
  if (battle.behind) resync();
}

// Ask once for a fresh snapshot of this battle (however many events showed it is behind).
function resync() {
  if (page.resyncing || !page.battle) return;
  if (socket.send({ action: "join", battle: page.battle.battle })) change({ resyncing: true });
}

function refusalTake(msg) {
  // A refusal because of the battle's state ("wait until both replies have finished") goes away
  // once that state changes; others (a rate limit, a prompt too long) stay until the next try.
  const aboutState = msg.code === "not_allowed" || msg.code === "stale";
  const refusal = { text: msg.message, at: aboutState ? stateKey(page.battle) : null };
  switch (msg.action) {
    case "prompt":
      // Refused: the text was never taken out of the box, so nothing typed is lost.
      change({ pendingPrompt: null });
      if (msg.code === "no_models") modelsReadySet(false);
      else change({ composerError: refusal });
      break;
    case "vote": {
      if (page.battle && page.battle.voted) break;  // the vote that was counted is shown; nothing to add
      const refused = page.pendingVote;
      change({ pendingVote: null, composerError: refusal });
      if (refused) {
        render();
        view.focusVoteAgain(refused);
      }
      break;
    }
    case "join":
      if (msg.code === "not_found") {
        // A battle remembered from before that no longer exists here: start afresh, quietly.
        sessionStorage.removeItem(STORAGE_KEY);
        change({ resyncing: false, battle: null });
      } else {
        change({ resyncing: false, status: msg.message });
      }
      break;
    case "regenerate":
      change({ pendingRegenerate: null, composerError: refusal });
      break;
    default:
      change({ status: msg.message });
  }
}

// A refusal about the battle's state is out of date once that state has changed and settled
// (both replies ended): "wait until both replies have finished" goes when they have.
function refusalExpire() {
  const error = page.composerError;
  if (error && error.at !== null && stateKey(page.battle) !== error.at && !lastTurnAny(page.battle, ["queued", "streaming"])) {
    change({ composerError: null });
  }
}

function modelsReadySet(ready) {
  change(ready ? { modelsReady: true } : { modelsReady: false, composerError: null });
  if (ready) models.stop();
  else models.start();
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  const text = promptBox.value.trim();
  if (!text || !controlsOf(page).send) return;
  const battleId = page.battle && !page.battle.voted ? page.battle.battle : null;
  const last = lastTurn(page.battle);
  const pending = {
    text,
    battle: battleId,
    index: battleId && last ? last.index + 1 : 0,
    previous: page.battle ? page.battle.battle : null,
  };
  if (!sendOrSay({ action: "prompt", battle: battleId, text })) return;
  change({ pendingPrompt: pending, composerError: null });
  render(() => view.focusAfterSend(touchFirst.matches));
});
promptKeysWire(form, promptBox, touchFirst);

for (const o of OUTCOMES) {
  byTestId(`vote-${o}`).addEventListener("click", () => {
    const turn = lastTurn(page.battle);
    if (!turn || !controlsOf(page).vote) return;
    // The turn and attempt shown: the server refuses the vote if the replies changed since.
    if (!sendOrSay({ action: "vote", battle: page.battle.battle, outcome: o, turn: turn.index, attempt: turn.attempt })) return;
    change({ pendingVote: o, composerError: null });  // every vote button is off until the server answers
    render(() => view.focusVoteResult());
  });
}

// Regenerate (side null) or retry one side; once until the server answers, however often clicked.
function regenerate(side) {
  const turn = lastTurn(page.battle);
  if (!turn || page.pendingRegenerate) return;
  if (!sendOrSay({ action: "regenerate", battle: page.battle.battle, side })) return;
  change({ pendingRegenerate: { battle: page.battle.battle, index: turn.index, attempt: turn.attempt }, composerError: null });
  render(() => view.focusRerun(side));
}
byTestId("regenerate").addEventListener("click", () => regenerate(null));
for (const s of SIDES) byTestId(`retry-${s}`).addEventListener("click", () => regenerate(s));

byTestId("new-round").addEventListener("click", () => {
  sessionStorage.removeItem(STORAGE_KEY);
  socket.send({ action: "new_round" });
  change({ battle: null, pendingVote: null, pendingRegenerate: null, resyncing: false, status: "", composerError: null });
  render();
  view.focusPrompt();
});

if (!page.modelsReady) models.start();
render();
