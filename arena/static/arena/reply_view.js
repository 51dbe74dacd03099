// One column of replies. It keeps the elements it drew (one prompt and one reply per turn) and
// only touches what changed: a delta re-parses and redraws only the last blocks of that one
// reply (markdownStream), those before them stay as drawn, so a token costs the same at the end
// of a long reply as at the start and the reader can scroll up and select text while it streams.
// A reply that has ended is drawn once more from its whole text. The column follows a streaming
// reply only while it is scrolled to (near) its bottom.

import { markdownStream, renderMarkdown } from "./markdown.js";

const NEAR_BOTTOM_PX = 32;
const NOT_STARTED = { status: "queued", text: "" };
// Said plainly rather than leaving a reply that stops mid-sentence unexplained.
const FILTERED_NOTE = "This model's content filter stopped the reply here.";

const inert = document.implementation.createHTMLDocument("");  // parses without loading anything
function nodesOf(html) {
  const fresh = inert.createElement("div");
  fresh.innerHTML = html;  // sanitised by markdown.js, parsed as in any <div>
  return Array.from(fresh.childNodes);
}

// Replace the nodes `before` (the last children of `target`) by `after`, keeping the leading ones
// that are unchanged (the paragraphs a reply already had: a selection in them survives); returns
// the nodes now in their place.
function morph(target, before, after) {
  let same = 0;
  while (same < before.length && same < after.length && before[same].isEqualNode(after[same])) same++;
  for (const node of before.slice(same)) node.remove();
  target.append(...after.slice(same));
  return [...before.slice(0, same), ...after.slice(same)];
}

// A streaming reply's new text: the blocks it finished join those drawn for good, the live ones
// replace the last frame's.
function streamDraw(d, text) {
  const { finished, live } = d.stream.next(text);
  const finishedNodes = nodesOf(finished);
  const now = morph(d.md, d.live, [...finishedNodes, ...nodesOf(live)]);
  d.live = now.slice(finishedNodes.length);
}

function wholeDraw(d, text) {
  morph(d.md, Array.from(d.md.childNodes), nodesOf(text ? renderMarkdown(text) : ""));
  d.stream = null;
  d.live = null;
}

function turnDraw(panel, turn) {
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
  return {
    index: turn.index, prompt: turn.prompt, attempt: null, status: null, text: null, user, bot, md, note, cursor,
    stream: null, live: null,  // while the reply streams: its markdownStream and the live blocks' nodes
  };
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
// as they were parsed (so unchanged ones still compare equal and are kept). Only a text split for
// it is joined again: normalising the reply itself could merge text nodes of different blocks.
function cursorRemove(cursor) {
  const parent = cursor.parentNode;
  if (!parent) return;
  const split = cursor.previousSibling && cursor.previousSibling.nodeType === Node.TEXT_NODE &&
    cursor.nextSibling && cursor.nextSibling.nodeType === Node.TEXT_NODE;
  cursor.remove();
  if (split) parent.normalize();
}

function replyUpdate(d, turn, side) {
  const text = side.text || "";
  if (d.attempt !== turn.attempt) {
    d.attempt = turn.attempt;
    d.text = null;
    d.status = null;
  }
  // A reply that has ended is drawn from its whole text once, even when no text came with the end.
  if (d.text !== text || (d.stream && side.status !== "streaming")) {
    cursorRemove(d.cursor);
    const grows = d.text !== null && text.startsWith(d.text);
    if (side.status !== "streaming" || !text) wholeDraw(d, text);
    else {
      if (!grows || !d.stream) {  // a first frame, or text that isn't the last frame's plus more
        wholeDraw(d, "");
        d.stream = markdownStream();
        d.live = [];
      }
      streamDraw(d, text);
    }
    d.text = text;
  }
  const typing = side.status === "streaming" && !!text;
  if (!typing) cursorRemove(d.cursor);
  else if (!d.cursor.parentNode) cursorPlace(d.md, d.cursor);
  const waiting = side.status === "queued" || (side.status === "streaming" && !text);
  // A reply that failed before saying anything has no bubble: the failure is said below.
  const empty = side.status === "failed" && !text;
  const filtered = side.status === "done" && side.finish_reason === "content_filter";
  const status = `${side.status}:${waiting}:${empty}:${filtered}`;
  if (d.status !== status) {
    d.status = status;
    d.bot.className = `msg bot ${side.status}`;
    d.bot.hidden = empty;
    d.note.textContent = waiting ? "waiting for the model…" : filtered ? FILTERED_NOTE : "";
  }
}

// A column `panel` showing side `s` of `turns`; draw(turns) brings it up to date.
export function replyColumn(panel, s) {
  const drawn = [];  // [{index, prompt, attempt, status, text, user, bot, md, note, cursor}]
  return {
    draw(turns) {
      const nearBottom = panel.scrollHeight - panel.scrollTop - panel.clientHeight <= NEAR_BOTTOM_PX;
      let keep = 0;
      while (keep < drawn.length && keep < turns.length && drawn[keep].index === turns[keep].index && drawn[keep].prompt === turns[keep].prompt) keep++;
      for (const d of drawn.splice(keep)) { d.user.remove(); d.bot.remove(); }
      const added = turns.length > keep;
      for (const turn of turns.slice(keep)) drawn.push(turnDraw(panel, turn));
      turns.forEach((turn, i) => replyUpdate(drawn[i], turn, turn.sides[s] || NOT_STARTED));
      if (added || nearBottom) panel.scrollTop = panel.scrollHeight;
    },
  };
}
