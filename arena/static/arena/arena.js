// The arena page: one websocket, two streaming columns, a vote, the reveal.
// Protocol: see arena/consumers.py. Text offsets count Unicode code points (Python's len()).
(function () {
  "use strict";
  const $ = (sel) => document.querySelector(sel);
  const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);
  const cpLen = (s) => Array.from(s).length;
  const cpSlice = (s, start) => Array.from(s).slice(start).join("");

  let socket = null;
  let retryDelay = 500;
  let battle = null;  // {battle, turns: [{index, attempt, prompt, sides: {a, b}}], votable, voted, reveal}
  let renderQueued = false;
  const STORAGE_KEY = "arena.battle";

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}/ws/arena/`);
    socket.addEventListener("open", () => {
      retryDelay = 500;
      showStatus("");
      const id = battle ? battle.battle : sessionStorage.getItem(STORAGE_KEY);
      if (id) send({ action: "join", battle: id });
      updateControls();
    });
    socket.addEventListener("message", (e) => onFrame(JSON.parse(e.data)));
    socket.addEventListener("close", () => {
      showStatus("Connection lost; reconnecting…");
      updateControls();
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 8000);
    });
  }

  function send(frame) {
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      showStatus("Not connected yet; try again in a moment.");
      return false;
    }
    socket.send(JSON.stringify(frame));
    return true;
  }

  function currentTurn() {
    return battle && battle.turns.length ? battle.turns[battle.turns.length - 1] : null;
  }

  function sideOf(ev) {
    if (!battle || ev.battle !== battle.battle) return null;
    const turn = battle.turns.find((t) => t.index === ev.turn);
    if (!turn || turn.attempt !== ev.attempt) return null;
    turn.sides[ev.side] = turn.sides[ev.side] || { status: "queued", text: "", offset: 0, reason: "" };
    return turn.sides[ev.side];
  }

  function onFrame(msg) {
    switch (msg.type) {
      case "state":
        battle = msg.state;
        if (battle) sessionStorage.setItem(STORAGE_KEY, battle.battle);
        else sessionStorage.removeItem(STORAGE_KEY);
        break;
      case "started": {
        const side = sideOf(msg);
        if (side && side.status === "queued") side.status = "streaming";
        break;
      }
      case "delta": {
        const side = sideOf(msg);
        if (!side || side.status === "done" || side.status === "failed") break;
        side.status = "streaming";
        if (msg.offset > side.offset) {
          // A gap (a delta was lost): ask for a fresh snapshot instead of showing broken text.
          send({ action: "join", battle: battle.battle });
          break;
        }
        const fresh = cpSlice(msg.text, side.offset - msg.offset);
        side.text += fresh;
        side.offset += cpLen(fresh);
        break;
      }
      case "done": {
        const side = sideOf(msg);
        if (side) Object.assign(side, { status: "done", text: msg.text, offset: cpLen(msg.text), reason: "" });
        if (battle) battle.votable = bothDone();
        break;
      }
      case "failed": {
        const side = sideOf(msg);
        if (side) Object.assign(side, { status: "failed", text: msg.text, offset: cpLen(msg.text), reason: msg.reason });
        if (battle) battle.votable = false;
        break;
      }
      case "revealed":
        if (battle && msg.battle === battle.battle) {
          battle.voted = true;
          battle.votable = false;
          battle.reveal = { outcome: msg.outcome, model_a: msg.model_a, model_b: msg.model_b };
        }
        break;
      case "error":
        showStatus(msg.message);
        if (msg.code === "not_found" && msg.action === "join") {
          sessionStorage.removeItem(STORAGE_KEY);
          battle = null;
        }
        if (msg.code === "no_models") byTestId("no-models").hidden = false;
        break;
    }
    scheduleRender();
  }

  function bothDone() {
    const turn = currentTurn();
    return !!turn && ["a", "b"].every((s) => turn.sides[s] && turn.sides[s].status === "done");
  }

  function scheduleRender() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => { renderQueued = false; render(); });
  }

  function render() {
    for (const s of ["a", "b"]) {
      const panel = byTestId(`reply-${s}`);
      panel.replaceChildren();
      for (const turn of battle ? battle.turns : []) {
        const user = document.createElement("div");
        user.className = "msg user";
        user.textContent = turn.prompt;  // the user's own text, shown verbatim
        panel.append(user);
        const side = turn.sides[s] || { status: "queued", text: "" };
        const bot = document.createElement("div");
        bot.className = `msg bot ${side.status}`;
        bot.innerHTML = window.renderMarkdown(side.text);  // sanitised; see markdown.js
        if (side.status === "queued" || side.status === "streaming") {
          const cursor = document.createElement("span");
          cursor.className = "cursor";
          cursor.textContent = side.status === "queued" ? "waiting for the model…" : "▍";
          bot.append(cursor);
        }
        panel.append(bot);
      }
      panel.scrollTop = panel.scrollHeight;
      const turn = currentTurn();
      const side = turn && turn.sides[s];
      const errorBox = byTestId(`error-${s}`);
      errorBox.hidden = !(side && side.status === "failed");
      errorBox.querySelector(".side-error-text").textContent = side && side.status === "failed" ? side.reason : "";
      byTestId(`model-${s}`).textContent = battle && battle.reveal ? `— ${battle.reveal[`model_${s}`]}` : "";
    }
    const result = byTestId("vote-result");
    result.hidden = !(battle && battle.reveal);
    if (battle && battle.reveal) {
      const verdict = { a: "A is better", b: "B is better", tie: "a tie", bothbad: "both are bad" }[battle.reveal.outcome];
      result.textContent = `You voted: ${verdict}. Model A was ${battle.reveal.model_a}, model B was ${battle.reveal.model_b}. ` +
        "Send a prompt to start a new round with two new models.";
    }
    updateControls();
  }

  function updateControls() {
    const open = socket && socket.readyState === WebSocket.OPEN;
    const turn = currentTurn();
    const finished = !turn || ["a", "b"].every((s) => turn.sides[s] && ["done", "failed"].includes(turn.sides[s].status));
    const voted = !!(battle && battle.voted);
    for (const o of ["a", "b", "tie", "bothbad"]) byTestId(`vote-${o}`).disabled = !(open && battle && battle.votable && !voted);
    byTestId("regenerate").disabled = !(open && turn && finished && !voted);
    byTestId("send").disabled = !(open && finished);
    for (const s of ["a", "b"]) byTestId(`retry-${s}`).disabled = !(open && finished && !voted);
  }

  function showStatus(text) {
    const box = byTestId("status");
    box.textContent = text;
    box.hidden = !text;
  }

  byTestId("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    const box = byTestId("prompt");
    const text = box.value.trim();
    if (!text) return;
    const battleId = battle && !battle.voted ? battle.battle : null;
    if (send({ action: "prompt", battle: battleId, text: text })) {
      box.value = "";
      showStatus("");
    }
  });
  byTestId("prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      byTestId("composer").requestSubmit();
    }
  });
  for (const o of ["a", "b", "tie", "bothbad"]) {
    byTestId(`vote-${o}`).addEventListener("click", () => {
      if (battle) send({ action: "vote", battle: battle.battle, outcome: o });
    });
  }
  byTestId("regenerate").addEventListener("click", () => {
    if (battle) send({ action: "regenerate", battle: battle.battle, side: null });
  });
  for (const s of ["a", "b"]) {
    byTestId(`retry-${s}`).addEventListener("click", () => {
      if (battle) send({ action: "regenerate", battle: battle.battle, side: s });
    });
  }
  byTestId("new-round").addEventListener("click", () => {
    battle = null;
    sessionStorage.removeItem(STORAGE_KEY);
    send({ action: "new_round" });
    showStatus("");
    render();
    byTestId("prompt").focus();
  });

  render();
  connect();
})();
