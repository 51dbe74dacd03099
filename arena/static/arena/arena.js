// The arena page: one websocket, two streaming columns, a vote, the reveal.
// Protocol: see arena/consumers.py. Text offsets count Unicode code points (Python's len()).
//
// Drawing: each column keeps the elements it drew (one prompt and one reply per turn) and only
// touches what changed: a delta re-renders that one reply, and only the blocks of it that differ,
// so the reader can scroll up and select text while a reply streams. A column follows a
// streaming reply only while it is scrolled to (near) its bottom.
(function () {
  "use strict";
  const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);
  const cpLen = (s) => Array.from(s).length;
  const cpSlice = (s, start) => Array.from(s).slice(start).join("");
  const SIDES = ["a", "b"];
  const OUTCOMES = ["a", "b", "tie", "bothbad"];
  const VERDICTS = { a: "A is better", b: "B is better", tie: "a tie", bothbad: "both are bad" };
  const NEAR_BOTTOM_PX = 32;
  const MODELS_CHECK_MS = 15000;

  let socket = null;
  let retryDelay = 500;
  let battle = null;  // {battle, turns: [{index, attempt, prompt, sides: {a, b}}], votable, voted, reveal}
  let renderQueued = false;
  // The prompt sent and not yet answered: its text stays in the box until the server accepts it.
  let pendingPrompt = null;  // {text, battle, index, previous}
  let pendingVote = null;  // the outcome sent and not yet answered
  let pendingRegenerate = null;  // {battle, index, attempt}: a regenerate or retry sent and not yet answered
  // A join sent for a fresh snapshot (an event named a turn or attempt this page doesn't have:
  // another tab of the same battle sent a follow-up or a regenerate), not yet answered.
  let resyncing = false;
  let composerErrorAt = null;  // the state a refusal by the prompt box was about; cleared when it changes
  let voteRefused = null;  // the outcome the server just refused (focus goes back to its button)
  const form = byTestId("composer");
  let modelsReady = form.dataset.modelsReady !== "false";
  const maxTurns = Number(form.dataset.maxTurns) || Infinity;  // ARENA_MAX_TURNS: the server refuses more
  // On a touch-first device (phone keyboards have no Shift) Enter is a new line and Send sends;
  // with a keyboard and a mouse, Enter sends and Shift+Enter is a new line.
  const touchFirst = window.matchMedia("(pointer: coarse)");
  let modelsCheck = null;
  const drawn = { a: [], b: [] };  // per column: [{index, prompt, attempt, status, text, user, bot, md, note}]
  const heard = {};  // per column: "turn:attempt:status" last seen, for announcing changes once
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
      // Whatever was in flight is lost with the connection; the prompt is still in its box.
      pendingPrompt = null;
      pendingRegenerate = null;
      resyncing = false;  // the join on reconnecting brings a fresh snapshot anyway
      if (pendingVote) {
        pendingVote = null;
        scheduleRender();
      }
      showStatus("Connection lost; reconnecting…");
      updateControls();
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 8000);
    });
  }

  function send(frame) {
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      showComposerError("Not connected yet; try again in a moment.");
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
    if (!turn || turn.attempt !== ev.attempt) {
      const last = currentTurn();
      if (!last || ev.turn > last.index || (turn && ev.attempt > turn.attempt)) {
        // Newer than anything here: another tab of this battle sent a follow-up or regenerated.
        // What this page shows is out of date, so no vote on it until a fresh snapshot arrives.
        battle.votable = false;
        resync();
      }
      return null;  // an older attempt's late event: nothing to show
    }
    turn.sides[ev.side] = turn.sides[ev.side] || { status: "queued", text: "", offset: 0, reason: "" };
    return turn.sides[ev.side];
  }

  // Ask once for a fresh snapshot of this battle (however many events prompted it).
  function resync() {
    if (resyncing || !battle || !socket || socket.readyState !== WebSocket.OPEN) return;
    resyncing = true;
    socket.send(JSON.stringify({ action: "join", battle: battle.battle }));
  }

  // Python's str.strip() and JavaScript's trim() disagree on a few characters at the ends.
  const promptKey = (text) => (text || "").replace(/^[\s\x1c-\x1f\x85]+|[\s\x1c-\x1f\x85]+$/g, "");

  // Is this snapshot the server's answer to the prompt we sent: a turn with our text at or after
  // the index we expected (later if another tab added turns meanwhile)? A snapshot answering an
  // earlier join has fewer turns, or another prompt last, or is of the previous battle.
  function acceptsPending(state) {
    const p = pendingPrompt;
    if (!p || !state || !state.turns.length) return false;
    const last = state.turns[state.turns.length - 1];
    if (last.index < p.index || promptKey(last.prompt) !== promptKey(p.text)) return false;
    return p.battle ? state.battle === p.battle : state.battle !== p.previous;
  }

  // Does this snapshot show the regenerate we sent (a newer attempt), or has the battle moved on?
  function answersRegenerate(state) {
    const p = pendingRegenerate;
    if (!p) return false;
    if (!state || state.battle !== p.battle || !state.turns.length) return true;
    const last = state.turns[state.turns.length - 1];
    return last.index > p.index || last.attempt > p.attempt;
  }

  // What a refusal by the prompt box can be about: the battle, its last turn and the sides' states.
  function stateKey() {
    const turn = currentTurn();
    if (!turn) return battle ? battle.battle : "";
    return [battle.battle, turn.index, turn.attempt, ...SIDES.map((s) => (turn.sides[s] ? turn.sides[s].status : ""))].join(":");
  }

  function onFrame(msg) {
    switch (msg.type) {
      case "state":
        if (acceptsPending(msg.state)) {
          const box = byTestId("prompt");
          if (box.value.trim() === pendingPrompt.text) box.value = "";  // unless it was edited since
          pendingPrompt = null;
          showComposerError("");
          if (!modelsReady) setModelsReady(true);  // a battle started: there were models after all
        }
        if (answersRegenerate(msg.state)) pendingRegenerate = null;
        resyncing = false;
        battle = msg.state;
        if (battle && battle.voted) pendingVote = null;
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
          resync();
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
        if (battle) battle.votable = !battle.voted && lastTurnAll("done");
        break;
      }
      case "failed": {
        const side = sideOf(msg);
        if (side) {
          Object.assign(side, {
            status: "failed", text: msg.text, offset: cpLen(msg.text), reason: msg.reason,
            retryable: msg.retryable !== false, failure_kind: msg.failure_kind || "",
          });
        }
        if (battle) battle.votable = false;
        break;
      }
      case "revealed":
        if (battle && msg.battle === battle.battle) {
          battle.voted = true;
          battle.votable = false;
          battle.reveal = { outcome: msg.outcome, model_a: msg.model_a, model_b: msg.model_b };
          pendingVote = null;
          showComposerError("");
        }
        break;
      case "error":
        onError(msg);
        break;
    }
    scheduleRender();
  }

  function onError(msg) {
    // A refusal because of the battle's state ("wait until both replies have finished") goes away
    // once that state changes; others (a rate limit, a prompt too long) stay until the next try.
    const aboutState = msg.code === "not_allowed" || msg.code === "stale";
    switch (msg.action) {
      case "prompt":
        // Refused: the text was never taken out of the box, so nothing typed is lost.
        pendingPrompt = null;
        if (msg.code === "no_models") setModelsReady(false);
        else showComposerError(msg.message, { aboutState });
        break;
      case "vote":
        if (battle && battle.voted) break;  // the vote that was counted is shown; nothing to add
        voteRefused = pendingVote;
        pendingVote = null;
        showComposerError(msg.message, { aboutState });
        break;
      case "join":
        resyncing = false;
        if (msg.code === "not_found") {
          // A battle remembered from before that no longer exists here: start afresh, quietly.
          sessionStorage.removeItem(STORAGE_KEY);
          battle = null;
        } else {
          showStatus(msg.message);
        }
        break;
      case "regenerate":
        pendingRegenerate = null;
        showComposerError(msg.message, { aboutState });
        break;
      default:
        showStatus(msg.message);
    }
  }

  function lastTurnAny(statuses) {
    const turn = currentTurn();
    return !!turn && SIDES.some((s) => !turn.sides[s] || statuses.includes(turn.sides[s].status));
  }

  function lastTurnAll(status) {
    const turn = currentTurn();
    return !!turn && SIDES.every((s) => turn.sides[s] && turn.sides[s].status === status);
  }

  function scheduleRender() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => { renderQueued = false; render(); });
  }

  // Replace `target`'s children by those of `html`, keeping the leading ones that are unchanged
  // (the paragraphs a streaming reply already had: a selection in them survives).
  const inert = document.implementation.createHTMLDocument("");  // parses without loading anything
  function morph(target, html) {
    const fresh = inert.createElement("div");
    fresh.innerHTML = html;  // sanitised by renderMarkdown, parsed as in any <div>
    const before = Array.from(target.childNodes);
    const after = Array.from(fresh.childNodes);
    let same = 0;
    while (same < before.length && same < after.length && before[same].isEqualNode(after[same])) same++;
    for (const node of before.slice(same)) node.remove();
    target.append(...after.slice(same));
  }

  function drawTurn(panel, turn) {
    const user = document.createElement("div");
    user.className = "msg user";
    user.dir = "auto";  // a prompt in Arabic or Hebrew reads right to left
    user.textContent = turn.prompt;  // the user's own text, shown verbatim
    const bot = document.createElement("div");
    const md = document.createElement("div");
    md.className = "md";
    md.dir = "auto";
    const note = document.createElement("span");
    note.className = "waiting";
    const cursor = document.createElement("span");
    cursor.className = "cursor";
    cursor.setAttribute("aria-hidden", "true");
    cursor.textContent = "▍";
    bot.append(md, note);
    panel.append(user, bot);
    return { index: turn.index, prompt: turn.prompt, attempt: null, status: null, text: null, user, bot, md, note, cursor };
  }

  // The streaming cursor sits right after the last character: inside the innermost last element
  // of the reply (its last paragraph, the last item of a list, the code of a code block).
  const VOID_TAGS = new Set(["BR", "HR", "IMG", "WBR", "INPUT"]);
  function cursorPlace(md, cursor) {
    let holder = md;
    for (;;) {
      let last = holder.lastChild;
      while (last && last.nodeType === Node.TEXT_NODE && !last.data.trim()) last = last.previousSibling;
      if (!last || last.nodeType !== Node.ELEMENT_NODE || VOID_TAGS.has(last.tagName)) break;
      holder = last;
    }
    const tail = holder.lastChild;
    if (tail && tail.nodeType === Node.TEXT_NODE && tail.data.endsWith("\n") && holder.closest("pre")) {
      holder.insertBefore(cursor, tail.splitText(tail.data.length - 1));  // before a code block's closing newline
    } else {
      holder.append(cursor);
    }
  }

  // Taken out before the reply is compared with its next rendering, leaving its elements exactly
  // as they were parsed (so unchanged ones still compare equal and are kept).
  function cursorRemove(cursor) {
    const parent = cursor.parentNode;
    if (!parent) return;
    cursor.remove();
    parent.normalize();
  }

  function updateReply(d, turn, side) {
    const text = side.text || "";
    if (d.attempt !== turn.attempt) {
      d.attempt = turn.attempt;
      d.text = null;
      d.status = null;
    }
    if (d.text !== text) {
      cursorRemove(d.cursor);
      morph(d.md, text ? window.renderMarkdown(text) : "");  // sanitised; see markdown.js
      d.text = text;
    }
    const typing = side.status === "streaming" && !!text;
    if (!typing) cursorRemove(d.cursor);
    else if (!d.cursor.parentNode) cursorPlace(d.md, d.cursor);
    const waiting = side.status === "queued" || (side.status === "streaming" && !text);
    // A reply that failed before saying anything has no bubble: the failure is said below.
    const empty = side.status === "failed" && !text;
    const status = `${side.status}:${waiting}:${empty}`;
    if (d.status !== status) {
      d.status = status;
      d.bot.className = `msg bot ${side.status}`;
      d.bot.hidden = empty;
      d.note.textContent = waiting ? "waiting for the model…" : "";
    }
  }

  function renderSide(s) {
    const panel = byTestId(`reply-${s}`);
    const turns = battle ? battle.turns : [];
    const list = drawn[s];
    const nearBottom = panel.scrollHeight - panel.scrollTop - panel.clientHeight <= NEAR_BOTTOM_PX;
    let keep = 0;
    while (keep < list.length && keep < turns.length && list[keep].index === turns[keep].index && list[keep].prompt === turns[keep].prompt) keep++;
    for (const d of list.splice(keep)) { d.user.remove(); d.bot.remove(); }
    const added = turns.length > keep;
    for (const turn of turns.slice(keep)) list.push(drawTurn(panel, turn));
    turns.forEach((turn, i) => updateReply(list[i], turn, turn.sides[s] || { status: "queued", text: "" }));
    if (added || nearBottom) panel.scrollTop = panel.scrollHeight;

    const turn = currentTurn();
    const side = turn && turn.sides[s];
    const failed = !!(side && side.status === "failed");
    const errorBox = byTestId(`error-${s}`);
    if (errorBox.hidden === failed) errorBox.hidden = !failed;
    setText(errorBox.querySelector(".side-error-text"), failed ? side.reason : "");
    // A failure that would only happen again (too long for the model) offers no retry.
    const retry = byTestId(`retry-${s}`);
    const retryable = !failed || side.retryable !== false;
    if (retry.hidden === retryable) retry.hidden = !retryable;
    setText(byTestId(`model-${s}`), battle && battle.reveal ? `— ${battle.reveal[`model_${s}`]}` : "");
  }

  function setText(el, text) {
    if (el.textContent !== text) el.textContent = text;
  }

  // Say politely when a reply ends (never the streaming text itself).
  function announceChanges() {
    const turn = currentTurn();
    const said = [];
    for (const s of SIDES) {
      const side = turn && turn.sides[s];
      const key = side ? `${battle.battle}:${turn.index}:${turn.attempt}:${side.status}` : "";
      const before = heard[s];
      heard[s] = key;
      if (!side || key === before || !before || !before.startsWith(`${battle.battle}:${turn.index}:${turn.attempt}:`)) continue;
      if (side.status === "done") said.push(`Model ${s.toUpperCase()} has finished.`);
      if (side.status === "failed") said.push(`Model ${s.toUpperCase()} failed: ${side.reason}`);
    }
    if (said.length && lastTurnAll("done") && !battle.voted) said.push("You can vote now.");
    if (said.length) byTestId("announcer").textContent = said.join(" ");
  }

  function render() {
    // A refusal about the battle's state is out of date once that state has changed and settled
    // (both replies ended): "wait until both replies have finished" goes when they have.
    if (composerErrorAt !== null && stateKey() !== composerErrorAt && !lastTurnAny(["queued", "streaming"])) {
      showComposerError("");
    }
    for (const s of SIDES) renderSide(s);
    announceChanges();
    const result = byTestId("vote-result");
    if (battle && battle.reveal) {
      const r = battle.reveal;
      setText(result, `You voted: ${VERDICTS[r.outcome]}. Model A was ${r.model_a}, model B was ${r.model_b}. ` +
        "Send a prompt to start a new round with two new models.");
      result.hidden = false;
    } else if (pendingVote) {
      setText(result, "Saving your vote…");
      result.hidden = false;
    } else {
      result.hidden = true;
    }
    updateControls();
    if (voteRefused) {
      const button = byTestId(`vote-${voteRefused}`);
      voteRefused = null;
      if (document.activeElement === result || document.activeElement === document.body) {
        (button.disabled ? byTestId("prompt") : button).focus();
      }
    }
  }

  function updateControls() {
    const open = !!socket && socket.readyState === WebSocket.OPEN;
    const turn = currentTurn();
    const voted = !!(battle && battle.voted);
    const status = (s) => (turn && turn.sides[s] ? turn.sides[s].status : "queued");
    // The server's rules (services.turn_submit / turn_regenerate / vote_cast): a follow-up and a
    // vote need both replies of the last turn done; a regenerate needs both ended (done or failed).
    const allDone = lastTurnAll("done");
    const ended = !!turn && SIDES.every((s) => ["done", "failed"].includes(status(s)));
    const failed = turn ? SIDES.filter((s) => status(s) === "failed") : [];
    // Sides whose failure a retry can't fix (the conversation is too long for the model).
    const hopeless = failed.filter((s) => turn.sides[s].retryable === false);
    const newBattle = !battle || voted;

    let canSend, hint = "";
    if (newBattle) {
      canSend = modelsReady;  // the no-models notice says why not
    } else if (allDone && turn.index + 1 >= maxTurns) {
      canSend = false;
      hint = `This battle has reached its ${maxTurns} turns; vote, or start a new round.`;
    } else if (allDone) {
      canSend = true;
    } else if (ended && hopeless.length) {
      canSend = false;
      const one = hopeless.length === 1 ? `model ${hopeless[0].toUpperCase()}` : "";
      hint = hopeless.some((s) => turn.sides[s].failure_kind === "too_long")
        ? `This conversation is too long for ${one || "both models"}, so retrying won't help. Start a new round with a shorter prompt.`
        : `Retrying won't help: ${one ? `${one} can't` : "neither model can"} answer until an admin changes its settings. Start a new round.`;
    } else if (ended) {
      canSend = false;
      hint = failed.length === 2
        ? "Both replies failed. Press Regenerate (or start a new round) before sending another prompt."
        : `Model ${failed[0].toUpperCase()}'s reply failed. Retry it (or start a new round) before sending another prompt.`;
    } else {
      canSend = false;
      hint = "Both models are still answering; you can send your next prompt when they have finished.";
    }
    const sendButton = byTestId("send");
    sendButton.disabled = !(open && canSend && !pendingPrompt);
    const hintBox = byTestId("send-hint");
    setText(hintBox, hint);
    hintBox.hidden = !hint;

    const reveal = battle && battle.reveal;
    for (const o of OUTCOMES) {
      const button = byTestId(`vote-${o}`);
      // Not while a fresh snapshot is on its way: the vote would be on replies not yet shown here.
      button.disabled = !(open && allDone && !voted && !pendingVote && !resyncing);
      const pressed = reveal ? reveal.outcome === o : pendingVote === o;
      button.setAttribute("aria-pressed", pressed ? "true" : "false");
    }
    const canRerun = open && ended && !voted && !pendingPrompt && !pendingRegenerate && !resyncing;
    byTestId("regenerate").disabled = !(canRerun && !hopeless.length);
    for (const s of SIDES) byTestId(`retry-${s}`).disabled = !canRerun;
  }

  function canSendNow() {
    return !byTestId("send").disabled;
  }

  function showStatus(text) {
    const box = byTestId("status");
    setText(box, text);
    box.hidden = !text;
  }

  // Errors answering what the user just did appear by the prompt box, where they are looking.
  // `aboutState`: the refusal was about the battle's state, so it goes once that state changes.
  function showComposerError(text, { aboutState = false } = {}) {
    const box = byTestId("composer-error");
    composerErrorAt = text && aboutState ? stateKey() : null;
    setText(box, text);
    box.hidden = !text;
    if (text) box.scrollIntoView({ block: "nearest" });
  }

  function setModelsReady(ready, { reveal = true } = {}) {
    modelsReady = ready;
    const notice = byTestId("no-models");
    notice.hidden = ready;
    if (!ready) {
      showComposerError("");
      if (reveal) notice.scrollIntoView({ block: "nearest" });
      if (!modelsCheck) modelsCheck = setInterval(checkModels, MODELS_CHECK_MS);
    } else if (modelsCheck) {
      clearInterval(modelsCheck);
      modelsCheck = null;
    }
    updateControls();
  }

  // While no models are available, ask now and then whether a battle could start ({"available": bool}).
  async function checkModels() {
    try {
      const answer = await fetch(form.dataset.modelsStatusUrl, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!answer.ok) return;
      const status = await answer.json();
      if (status.available === true && !modelsReady) setModelsReady(true);
    } catch (_) {
      // Offline for a moment: try again at the next check.
    }
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const box = byTestId("prompt");
    const text = box.value.trim();
    if (!text || pendingPrompt || !canSendNow()) return;
    const battleId = battle && !battle.voted ? battle.battle : null;
    const last = currentTurn();
    const pending = {
      text: text,
      battle: battleId,
      index: battleId && last ? last.index + 1 : 0,
      previous: battle ? battle.battle : null,
    };
    if (send({ action: "prompt", battle: battleId, text: text })) {
      pendingPrompt = pending;  // the box is emptied when the server has accepted it
      showComposerError("");
      // Send is about to be disabled: focus mustn't fall to the page with it. With a keyboard it
      // goes to the prompt box, for the next prompt; on a touch screen to the replies, so that
      // the on-screen keyboard doesn't come back over them.
      if (document.activeElement !== box) {
        if (touchFirst.matches) byTestId("replies").focus({ preventScroll: true });
        else box.focus();
      }
      updateControls();
    }
  });
  byTestId("prompt").addEventListener("keydown", (e) => {
    if (e.key !== "Enter" || e.shiftKey || e.isComposing || e.keyCode === 229) return;  // 229: an IME is composing
    if (touchFirst.matches) return;  // a new line, as typed
    e.preventDefault();
    form.requestSubmit();
  });
  function placeholderSet() {
    byTestId("prompt").placeholder = touchFirst.matches
      ? "Type a prompt, then tap Send"
      : "Type a prompt and press Enter (Shift+Enter for a new line)";
  }
  touchFirst.addEventListener("change", placeholderSet);
  placeholderSet();
  for (const o of OUTCOMES) {
    byTestId(`vote-${o}`).addEventListener("click", () => {
      const turn = currentTurn();
      if (!battle || !turn || pendingVote || battle.voted || resyncing) return;
      // The turn and attempt shown: the server refuses the vote if the replies changed since.
      if (send({ action: "vote", battle: battle.battle, outcome: o, turn: turn.index, attempt: turn.attempt })) {
        pendingVote = o;  // every vote button is off until the server answers
        showComposerError("");
        const result = byTestId("vote-result");
        setText(result, "Saving your vote…");
        result.hidden = false;
        result.focus();  // before the pressed button is disabled, so focus never falls to the page
        updateControls();
      }
    });
  }
  // Regenerate (side null) or retry one side; once until the server answers, however often clicked.
  function regenerate(side) {
    const turn = currentTurn();
    if (!battle || !turn || pendingRegenerate) return;
    if (send({ action: "regenerate", battle: battle.battle, side: side })) {
      pendingRegenerate = { battle: battle.battle, index: turn.index, attempt: turn.attempt };
      showComposerError("");
      // The pressed button is about to be disabled (a retry's even hidden): focus goes to the
      // reply being written again, not to the page. (Regenerate is down by the prompt box: the
      // page stays where it is.)
      byTestId(`reply-${side || "a"}`).focus({ preventScroll: !side });
      updateControls();
    }
  }
  byTestId("regenerate").addEventListener("click", () => regenerate(null));
  for (const s of SIDES) byTestId(`retry-${s}`).addEventListener("click", () => regenerate(s));
  byTestId("new-round").addEventListener("click", () => {
    battle = null;
    pendingVote = null;
    pendingRegenerate = null;
    resyncing = false;
    sessionStorage.removeItem(STORAGE_KEY);
    send({ action: "new_round" });
    showStatus("");
    showComposerError("");
    render();
    byTestId("prompt").focus();
  });

  if (!modelsReady) setModelsReady(false, { reveal: false });
  render();
  connect();
})();
