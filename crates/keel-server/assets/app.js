// keel's browser UI: one page, no build step, no dependencies. It talks to the same
// API as any client: POST /chat and GET /sessions/{id}/events stream Server-Sent
// Events; the login cookie (set by opening the URL `keel serve` printed) authenticates.
"use strict";

const $ = (id) => document.getElementById(id);
const transcript = $("transcript");
const input = $("message");
const sendButton = $("send");
const stopButton = $("stop");
const badge = $("session-badge");
const statusLine = $("status");

// Outputs longer than this start collapsed.
const COLLAPSE_LINES = 12;
const COLLAPSE_CHARS = 1200;

let sessionId = null;
let running = false;
// Bumped whenever the transcript is replaced, so a stream for an older view stops drawing.
let view = 0;
// The block streamed text is appended to (one per model response), and the last such
// block of the turn (which the formatted final answer replaces).
let textBlock = null;
let lastTextBlock = null;

function setSession(id) {
  sessionId = id;
  badge.textContent = id ? id.slice(0, 8) : "new session";
  badge.title = id ? `Session ${id}` : "No session yet: the first message starts one";
  badge.dataset.sessionId = id || "";
  badge.classList.toggle("active", Boolean(id));
  for (const item of document.querySelectorAll("#sessions button")) {
    item.classList.toggle("active", item.dataset.sessionId === id);
  }
}

function setRunning(value) {
  running = value;
  stopButton.disabled = !value;
  sendButton.disabled = value;
  statusLine.textContent = value ? "running…" : "";
}

function block(kind, label) {
  const div = document.createElement("div");
  div.className = `event ${kind}`;
  if (label) {
    const head = document.createElement("div");
    head.className = "label";
    head.textContent = label;
    div.appendChild(head);
  }
  const nearBottom = transcript.scrollHeight - transcript.scrollTop - transcript.clientHeight < 80;
  transcript.appendChild(div);
  if (nearBottom) transcript.scrollTop = transcript.scrollHeight;
  return div;
}

// A <pre> with the text, inside a collapsed <details> when it is long.
function preformatted(parent, text, summary) {
  const pre = document.createElement("pre");
  pre.textContent = text;
  const long = text.split("\n").length > COLLAPSE_LINES || text.length > COLLAPSE_CHARS;
  if (!long) {
    parent.appendChild(pre);
    return;
  }
  const details = document.createElement("details");
  const sum = document.createElement("summary");
  sum.textContent = `${summary} (${text.split("\n").length} lines, click to expand)`;
  details.append(sum, pre);
  parent.appendChild(details);
}

// Prose with ``` fenced blocks and `inline code`, as DOM nodes (never innerHTML).
function richText(parent, text) {
  const parts = text.split(/```[^\n]*\n?/);
  parts.forEach((part, i) => {
    if (i % 2 === 1) {
      const pre = document.createElement("pre");
      pre.className = "code";
      const code = document.createElement("code");
      code.textContent = part.replace(/\n$/, "");
      pre.appendChild(code);
      parent.appendChild(pre);
      return;
    }
    const span = document.createElement("span");
    span.className = "prose";
    part.split(/(`[^`\n]+`)/).forEach((piece) => {
      if (piece.startsWith("`") && piece.endsWith("`") && piece.length > 2) {
        const code = document.createElement("code");
        code.textContent = piece.slice(1, -1);
        span.appendChild(code);
      } else if (piece) {
        span.appendChild(document.createTextNode(piece));
      }
    });
    parent.appendChild(span);
  });
}

function render(event) {
  switch (event.type) {
    case "session":
      setSession(event.session_id);
      break;
    case "context":
      break; // the project context the model sees; not part of the conversation view
    case "user":
      textBlock = null;
      lastTextBlock = null;
      block("user").textContent = event.content;
      break;
    case "thinking":
      textBlock = null;
      lastTextBlock = null;
      block("thinking").textContent = `thinking · iteration ${event.iteration}`;
      break;
    case "delta":
      if (!textBlock) textBlock = lastTextBlock = block("text");
      textBlock.textContent += event.text;
      break;
    case "assistant":
      textBlock = null;
      break;
    case "tool_call": {
      const div = block("tool_call", `tool call · ${event.name}`);
      div.dataset.callId = event.call_id;
      preformatted(div, JSON.stringify(event.arguments, null, 2), "arguments");
      break;
    }
    case "tool_result": {
      const div = block(`tool_result${event.is_error ? " failed" : ""}`,
        `${event.is_error ? "tool error" : "tool result"} · ${event.name} · ${event.duration_ms} ms`);
      div.dataset.callId = event.call_id;
      preformatted(div, event.output, "output");
      break;
    }
    case "verification": {
      const div = block(`verification ${event.passed ? "passed" : "failed"}`,
        `tests ${event.passed ? "passed" : "failed"} · ${event.command}`);
      preformatted(div, event.output, "test output");
      break;
    }
    case "approval_request": {
      const div = block("approval", `approval needed · ${event.name}`);
      div.dataset.callId = event.call_id;
      div.appendChild(document.createTextNode(event.reason));
      preformatted(div, JSON.stringify(event.arguments, null, 2), "arguments");
      const sessionAtRequest = sessionId;
      for (const [label, allow] of [["Allow", true], ["Deny", false]]) {
        const button = document.createElement("button");
        button.textContent = label;
        button.className = `approve-${allow ? "allow" : "deny"}`;
        button.addEventListener("click", async () => {
          div.querySelectorAll("button").forEach((b) => { b.disabled = true; });
          await fetch(`/sessions/${encodeURIComponent(sessionAtRequest)}/approvals/${encodeURIComponent(event.call_id)}`, {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ allow }),
          });
        });
        div.appendChild(button);
      }
      break;
    }
    case "approval": {
      const waiting = document.querySelector(`.approval[data-call-id="${CSS.escape(event.call_id)}"]`);
      if (waiting) waiting.querySelectorAll("button").forEach((b) => b.remove());
      block(`approval-decision ${event.allowed ? "allowed" : "denied"}`).textContent =
        `${event.allowed ? "approved" : "not approved"} (${event.by})`;
      break;
    }
    case "feedback":
      block("feedback", `keel → model · ${event.reason}`).appendChild(document.createTextNode(event.content));
      break;
    case "repair":
      block("repair").textContent = `malformed tool call ${event.repaired ? "repaired" : "not repaired"}: ${event.problem}`;
      break;
    case "response": {
      // The streamed text of the final response is replaced by its formatted form.
      if (lastTextBlock) lastTextBlock.remove();
      textBlock = lastTextBlock = null;
      richText(block("response"), event.content);
      break;
    }
    case "usage": {
      const parts = [];
      if (event.prompt_tokens != null) parts.push(`prompt ${event.prompt_tokens}`);
      if (event.cached_prompt_tokens != null) parts.push(`cached ${event.cached_prompt_tokens}`);
      if (event.completion_tokens != null) parts.push(`completion ${event.completion_tokens}`);
      if (event.time_to_first_token_ms != null) parts.push(`first token ${event.time_to_first_token_ms} ms`);
      if (parts.length) block("usage").textContent = parts.join(" · ");
      break;
    }
    case "checkpoint":
      renderCheckpoint(event);
      break;
    case "undo":
    case "redo": {
      const div = block(`restore ${event.type}`, `${event.type === "undo" ? "undone" : "redone"} · turn ${event.turn}`);
      div.appendChild(document.createTextNode(filesLine(event.files)));
      break;
    }
    case "plan":
      renderPlan(event);
      break;
    case "error":
      block("error", `error · ${event.kind}`).appendChild(document.createTextNode(event.message));
      break;
    case "done":
      textBlock = null;
      block(`done ${event.outcome}`).textContent = `done · ${event.outcome} · ${event.iterations} iteration${event.iterations === 1 ? "" : "s"}`;
      break;
    default:
      break;
  }
}

// `a.py +3 −1, new.py (new) +1 −0`.
function filesLine(files) {
  if (!files.length) return "no files";
  return files.map((f) => {
    const what = f.before == null ? " (new)" : f.after == null ? " (deleted)" : "";
    const counts = f.added != null ? ` +${f.added} −${f.removed}` : "";
    return `${f.path}${what}${counts}`;
  }).join(", ");
}

// A button that runs `action` once per click, disabled while it runs.
function button(label, className, action) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.className = className;
  b.addEventListener("click", async () => {
    b.disabled = true;
    try {
      await action();
    } finally {
      b.disabled = false;
    }
  });
  return b;
}

// The files a turn changed, with its diff on demand and undo / redo.
function renderCheckpoint(event) {
  const div = block("checkpoint", `files changed · turn ${event.turn}`);
  div.appendChild(document.createTextNode(filesLine(event.files)));
  const session = sessionId;
  const bar = document.createElement("div");
  bar.className = "buttons";
  const diffBox = document.createElement("div");
  bar.append(
    button("Show diff", "show-diff", async () => {
      const response = await fetch(`/sessions/${encodeURIComponent(session)}/turns/${event.turn}/diff`);
      if (!response.ok) {
        diffBox.replaceChildren(document.createTextNode(await apiError(response)));
        return;
      }
      const body = await response.json();
      const pre = document.createElement("pre");
      pre.className = "diff";
      for (const line of body.diff.replace(/\n$/, "").split("\n")) {
        const span = document.createElement("span");
        span.className = line.startsWith("+++") || line.startsWith("---") || line.startsWith("diff ") ? "file"
          : line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : line.startsWith("@@") ? "hunk" : "";
        span.textContent = `${line}\n`;
        pre.appendChild(span);
      }
      diffBox.replaceChildren(pre);
    }),
    button("Undo last turn", "undo", () => restoreFiles(session, "undo")),
    button("Redo", "redo", () => restoreFiles(session, "redo")),
  );
  div.append(bar, diffBox);
}

// POST /sessions/{id}/undo or /redo; the result is drawn like the event it stored.
async function restoreFiles(session, what) {
  if (running) return;
  const response = await fetch(`/sessions/${encodeURIComponent(session)}/${what}`, { method: "POST" });
  if (!response.ok) {
    block("error", `${what} · ${response.status}`).textContent = await apiError(response);
    return;
  }
  const body = await response.json();
  if (session === sessionId) render({ type: what, turn: body.turn, files: body.files });
}

// A plan waiting for approval: its steps and an Approve button.
function renderPlan(event) {
  const div = block("plan", "plan · waiting for approval");
  const list = document.createElement("ol");
  for (const step of event.steps) {
    const item = document.createElement("li");
    richText(item, step);
    list.appendChild(item);
  }
  div.appendChild(list);
  const session = sessionId;
  const hint = document.createElement("div");
  hint.className = "hint";
  hint.textContent = "Approve to carry it out, or send what to change (with Plan first ticked).";
  div.append(button("Approve", "approve-plan", async () => {
    if (running) return;
    div.querySelectorAll("button").forEach((b) => b.remove());
    div.querySelector(".label").textContent = "plan · approved";
    hint.remove();
    const myView = view;
    const response = await fetch(`/sessions/${encodeURIComponent(session)}/plan/approve`, { method: "POST" });
    if (!response.ok) {
      block("error", `approve · ${response.status}`).textContent = await apiError(response);
      return;
    }
    await follow(response, myView);
  }), hint);
}

// Reads a text/event-stream body and calls onEvent with each event's parsed data.
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const raw = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = raw.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).replace(/^ /, "")).join("\n");
      if (!data) continue; // a keep-alive comment
      try {
        onEvent(JSON.parse(data));
      } catch (e) {
        console.error("unreadable event", data, e);
      }
    }
  }
}

async function apiError(response) {
  try {
    const body = await response.json();
    return body.error ? body.error.message : response.statusText;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

// Draws a stream's events while it belongs to the current view.
async function follow(response, myView) {
  setRunning(true);
  try {
    await readEvents(response, (event) => {
      if (myView !== view) return;
      render(event);
      if (event.type === "done") setRunning(false);
    });
  } catch (e) {
    if (myView === view) block("error", "connection").textContent = `the event stream broke: ${e.message}. Reopen the session from the list to catch up.`;
  } finally {
    if (myView === view) setRunning(false);
    loadSessions();
  }
}

async function send() {
  const message = input.value;
  if (!message.trim() || running) return;
  input.value = "";
  const myView = view;
  setRunning(true);
  let response;
  try {
    response = await fetch("/chat", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ message, session_id: sessionId, mode: $("plan-mode").checked ? "plan" : "run" }),
    });
  } catch (e) {
    setRunning(false);
    block("error", "connection").textContent = `keel serve cannot be reached: ${e.message}`;
    return;
  }
  if (!response.ok) {
    setRunning(false);
    block("error", `error · ${response.status}`).textContent = await apiError(response);
    input.value = message;
    return;
  }
  await follow(response, myView);
}

async function stop() {
  if (!sessionId || !running) return;
  const response = await fetch(`/sessions/${encodeURIComponent(sessionId)}/cancel`, { method: "POST" });
  if (!response.ok && response.status !== 409) {
    block("error", `error · ${response.status}`).textContent = await apiError(response);
  }
}

function clearView() {
  view += 1;
  transcript.replaceChildren();
  textBlock = lastTextBlock = null;
  setRunning(false);
}

function newSession() {
  clearView();
  setSession(null);
  input.focus();
}

async function openSession(id) {
  clearView();
  setSession(id);
  const myView = view;
  const response = await fetch(`/sessions/${encodeURIComponent(id)}/events`);
  if (!response.ok) {
    block("error", `error · ${response.status}`).textContent = await apiError(response);
    return;
  }
  await follow(response, myView);
  input.focus();
}

function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return new Date(ms).toLocaleDateString();
}

async function loadSessions() {
  let body;
  try {
    const response = await fetch("/sessions?limit=100");
    if (!response.ok) return;
    body = await response.json();
  } catch {
    return;
  }
  const list = $("sessions");
  list.replaceChildren();
  for (const s of body.sessions) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.sessionId = s.id;
    button.classList.toggle("active", s.id === sessionId);
    const sid = document.createElement("span");
    sid.className = "sid";
    sid.textContent = s.id.slice(0, 8);
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = `${s.turns} turn${s.turns === 1 ? "" : "s"} · ${s.running ? "running" : s.outcome || "—"} · ${ago(s.updated_at)}`;
    button.append(sid, meta);
    button.addEventListener("click", () => openSession(s.id));
    item.appendChild(button);
    list.appendChild(item);
  }
}

$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  send();
});
input.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    send();
  }
});
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && running) stop();
  if (e.altKey && (e.key === "n" || e.key === "N")) {
    e.preventDefault();
    newSession();
  }
});
stopButton.addEventListener("click", stop);
$("new-session").addEventListener("click", newSession);
loadSessions();
