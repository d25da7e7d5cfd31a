// The toolmesh console: plain DOM, no framework, no build step, no CDN. It talks to the
// gateway's /ui/api (behind the gateway's client token) and follows /ui/api/events (server-sent
// events read with fetch, so the token goes in a header, never in a URL).

const TOKEN_KEY = "toolmesh-console-token";
const $ = (sel) => document.querySelector(sel);

/** An element with attributes and children (strings become text: never HTML). */
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) if (c !== undefined && c !== null && c !== false) e.append(c instanceof Node ? c : String(c));
  return e;
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY) ?? "";
}

class Unauthorized extends Error {}

async function api(path, options = {}) {
  const headers = { ...(options.headers ?? {}) };
  if (token()) headers.authorization = `Bearer ${token()}`;
  const res = await fetch(path, { ...options, headers });
  if (res.status === 401) throw new Unauthorized();
  const body = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
  if (!res.ok) throw new Error(body.error ?? `HTTP ${res.status}`);
  return body;
}

function setStatus(text, kind = "") {
  const s = $("#status");
  s.textContent = text;
  s.className = `status ${kind}`;
}

function askForToken() {
  $("#app").hidden = true;
  $("#login").hidden = false;
  setStatus("token needed", "bad");
  $("#token").focus();
}

// ---- topology ----------------------------------------------------------------------------

function instanceState(i) {
  if (i.status === "critical" || i.breaker === "open") return "down";
  if (i.status === "warning" || i.breaker === "half-open") return "warn";
  return "up";
}

function renderTopology(t) {
  const root = $("#topology");
  root.replaceChildren(
    ...t.agents.map((a) =>
      el(
        "div",
        { class: "agent", dataset: { agent: a.name } },
        el(
          "h3",
          {},
          a.name,
          el("span", { class: "meta" }, `${a.instances.length} instance${a.instances.length === 1 ? "" : "s"} · ${a.tools} tools`),
        ),
        el(
          "table",
          { class: "instances" },
          el(
            "thead",
            {},
            el("tr", {}, ...["", "instance", "address", "Consul", "breaker", "in flight", "calls/s"].map((h) => el("th", {}, h))),
          ),
          el(
            "tbody",
            {},
            ...a.instances.map((i) =>
              el(
                "tr",
                { class: `instance ${instanceState(i)}`, dataset: { instance: i.id, state: instanceState(i) } },
                el("td", {}, el("span", { class: "dot", title: instanceState(i) })),
                el("td", {}, i.id),
                el("td", {}, i.address),
                el("td", {}, i.status),
                el("td", {}, i.breaker),
                el("td", { class: "num" }, i.inFlight),
                el("td", { class: "num" }, i.rate.toFixed(1)),
              ),
            ),
          ),
        ),
      ),
    ),
  );
  const g = t.gateway ?? {};
  setStatus(
    `live · ${t.agents.length} agent kinds · ${g.sessions ?? 0} MCP sessions at the gateway · ${new Date(t.at).toLocaleTimeString()}`,
    "ok",
  );
}

// ---- tools -------------------------------------------------------------------------------

let tools = [];

function renderTools() {
  $("#tools").replaceChildren(
    ...tools.map((t) =>
      el(
        "li",
        {},
        el(
          "button",
          { type: "button", class: "tool-link", dataset: { tool: `${t.agent}.${t.name}` }, onclick: () => showTool(t) },
          `${t.agent}.${t.name}`,
        ),
      ),
    ),
  );
}

function annotationBadges(a) {
  const badges = [];
  if (a.readOnlyHint) badges.push("read-only");
  if (a.idempotentHint) badges.push("idempotent");
  if (a.destructiveHint) badges.push("destructive");
  if (a.openWorldHint) badges.push("open world");
  return badges.map((b) => el("span", { class: `badge ${b.replace(/\W/g, "-")}` }, b));
}

/** One input per top-level property of the tool's input schema; anything nested is JSON. */
function field(name, schema, required) {
  const id = `arg-${name}`;
  const label = el(
    "label",
    { for: id },
    name,
    required ? " *" : "",
    schema.description ? el("span", { class: "hint" }, ` — ${schema.description}`) : "",
  );
  let input;
  if (Array.isArray(schema.enum)) {
    input = el(
      "select",
      { id, name },
      el("option", { value: "" }, "—"),
      ...schema.enum.map((v) => el("option", { value: String(v) }, String(v))),
    );
  } else if (schema.type === "boolean") {
    input = el(
      "select",
      { id, name },
      el("option", { value: "" }, "—"),
      el("option", { value: "true" }, "true"),
      el("option", { value: "false" }, "false"),
    );
  } else if (schema.type === "number" || schema.type === "integer") {
    input = el("input", { id, name, type: "number", step: schema.type === "integer" ? "1" : "any" });
  } else if (schema.type === "string") {
    input = el("input", { id, name, type: "text", placeholder: schema.format ?? "" });
  } else {
    input = el("textarea", { id, name, rows: 2, placeholder: "JSON" });
  }
  input.dataset.kind =
    schema.type === "number" || schema.type === "integer"
      ? "number"
      : schema.type === "boolean"
        ? "boolean"
        : schema.type === "string" || Array.isArray(schema.enum)
          ? "string"
          : "json";
  return el("div", { class: "field" }, label, input);
}

function readArguments(form) {
  const args = {};
  for (const input of form.querySelectorAll("[name]")) {
    const v = input.value.trim();
    if (v === "") continue;
    switch (input.dataset.kind) {
      case "number":
        args[input.name] = Number(v);
        break;
      case "boolean":
        args[input.name] = v === "true";
        break;
      case "json":
        args[input.name] = JSON.parse(v);
        break;
      default:
        args[input.name] = v;
    }
  }
  return args;
}

function showTool(t) {
  const schema = t.inputSchema ?? {};
  const props = schema.properties ?? {};
  const required = new Set(schema.required ?? []);
  const out = el("div", { class: "call-result" });
  const form = el(
    "form",
    {
      class: "call-form",
      onsubmit: async (ev) => {
        ev.preventDefault();
        let args;
        try {
          args = readArguments(form);
        } catch (e) {
          out.replaceChildren(el("p", { class: "error" }, `Arguments: ${e.message}`));
          return;
        }
        out.replaceChildren(el("p", { class: "hint" }, "calling…"));
        try {
          const r = await api("/ui/api/call", {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ agent: t.agent, tool: t.name, arguments: args }),
          });
          out.replaceChildren(renderCallResult(r));
        } catch (e) {
          if (e instanceof Unauthorized) return askForToken();
          out.replaceChildren(el("p", { class: "error" }, e.message));
        }
      },
    },
    ...Object.entries(props).map(([name, s]) => field(name, s, required.has(name))),
    el("button", { type: "submit", class: "call" }, `Call ${t.agent}.${t.name}`),
  );
  $("#tool").replaceChildren(
    el("h3", {}, `${t.agent}.${t.name}`, t.title ? el("span", { class: "meta" }, t.title) : ""),
    el("div", { class: "badges" }, ...annotationBadges(t.annotations ?? {})),
    el("p", { class: "description" }, t.description),
    el("details", {}, el("summary", {}, "input schema"), el("pre", {}, JSON.stringify(schema, null, 2))),
    t.outputSchema ? el("details", {}, el("summary", {}, "output schema"), el("pre", {}, JSON.stringify(t.outputSchema, null, 2))) : "",
    form,
    out,
  );
}

function renderCallResult(r) {
  if (r.error) return el("div", {}, el("p", { class: "error" }, r.error), r.call?.hops ? waterfall(r.call.hops) : "");
  const text = (r.result.content ?? [])
    .filter((c) => c.type === "text")
    .map((c) => c.text)
    .join("\n");
  return el(
    "div",
    { class: r.result.isError ? "result tool-error" : "result ok" },
    el(
      "p",
      { class: "answered" },
      `answered by ${r.instance} · trace ${r.traceId} · ${Math.round(r.call?.ms ?? 0)} ms${r.result.isError ? " · isError" : ""}`,
    ),
    el("pre", { class: "text" }, text),
    r.result.structuredContent
      ? el("details", {}, el("summary", {}, "structured content"), el("pre", {}, JSON.stringify(r.result.structuredContent, null, 2)))
      : "",
    r.call?.hops ? waterfall(r.call.hops) : "",
  );
}

// ---- traces ------------------------------------------------------------------------------

/** The hops of one call as a waterfall: a row per hop, indented under its parent, a bar on one time axis. */
function waterfall(hops) {
  if (!hops?.length) return el("p", { class: "hint" }, "No hops recorded for this call (it ran while no console was open).");
  const byId = new Map(hops.map((h) => [h.id, h]));
  const children = new Map();
  const roots = [];
  for (const h of hops) {
    if (h.parent && byId.has(h.parent)) (children.get(h.parent) ?? children.set(h.parent, []).get(h.parent)).push(h);
    else roots.push(h);
  }
  const t0 = Math.min(...hops.map((h) => h.start));
  const total = Math.max(1, Math.max(...hops.map((h) => h.start + h.ms)) - t0);
  const rows = [];
  const walk = (h, depth) => {
    const bar = el("div", { class: `bar ${h.kind}${h.error ? " failed" : ""}` });
    bar.style.left = `${((h.start - t0) / total) * 100}%`;
    bar.style.width = `${Math.max(0.5, (h.ms / total) * 100)}%`;
    const label = el(
      "div",
      { class: "label" },
      `${h.kind === "client" ? "→ " : ""}${h.service} · ${h.name}${h.instance ? ` @ ${h.instance}` : ""}${h.attempt ? ` (attempt ${h.attempt})` : ""}${h.error ? ` · ${h.error}` : ""}`,
    );
    label.style.paddingLeft = `${depth * 1.1}em`;
    label.title = label.textContent;
    rows.push(
      el(
        "div",
        { class: "hop", dataset: { service: h.service, kind: h.kind } },
        label,
        el("div", { class: "track" }, bar),
        el("div", { class: "ms" }, `${h.ms.toFixed(1)} ms`),
      ),
    );
    for (const c of (children.get(h.id) ?? []).sort((a, b) => a.start - b.start)) walk(c, depth + 1);
  };
  for (const r of roots.sort((a, b) => a.start - b.start)) walk(r, 0);
  return el("div", { class: "waterfall" }, ...rows);
}

let calls = [];

function renderCalls() {
  $("#calls tbody").replaceChildren(
    ...calls.slice(0, 50).map((c) =>
      el(
        "tr",
        {
          class: `call-row ${c.outcome}`,
          dataset: { trace: c.traceId },
          onclick: () => $("#trace").replaceChildren(el("h3", {}, `${c.agent}.${c.tool} · trace ${c.traceId}`), waterfall(c.hops)),
        },
        el("td", {}, new Date(c.at).toLocaleTimeString()),
        el("td", {}, `${c.agent}.${c.tool}`),
        el("td", {}, c.instance ?? "—"),
        el("td", { class: "num" }, c.ms.toFixed(1)),
        el("td", {}, c.outcome + (c.error ? `: ${c.error}` : "")),
        el("td", {}, c.via),
        el("td", { class: "mono" }, c.traceId.slice(0, 12)),
      ),
    ),
  );
}

// ---- tasks and sessions ------------------------------------------------------------------

async function refreshWork() {
  try {
    const w = await api("/ui/api/work");
    $("#work").replaceChildren(
      el(
        "p",
        {},
        `${w.conversations} orchestrator conversation session(s) in Consul KV · ${w.gateway?.sessions ?? 0} 2025-11-25 MCP session(s) open at this gateway (${w.gateway?.evicted ?? 0} evicted)`,
      ),
      w.tasks.length
        ? el(
            "table",
            { class: "tasks" },
            el(
              "thead",
              {},
              el("tr", {}, ...["kind", "agent", "task", "tool", "status", "message", "instance", "updated"].map((h) => el("th", {}, h))),
            ),
            el(
              "tbody",
              {},
              ...w.tasks.map((t) =>
                el(
                  "tr",
                  {},
                  el("td", {}, t.kind),
                  el("td", {}, t.agent),
                  el("td", { class: "mono" }, String(t.taskId ?? "").slice(0, 8)),
                  el("td", {}, t.tool ?? ""),
                  el("td", {}, t.status ?? ""),
                  el("td", {}, t.statusMessage ?? ""),
                  el("td", {}, t.instance ?? ""),
                  el("td", {}, t.lastUpdatedAt ? new Date(t.lastUpdatedAt).toLocaleTimeString() : ""),
                ),
              ),
            ),
          )
        : el("p", { class: "hint" }, "No tasks."),
    );
  } catch (e) {
    if (e instanceof Unauthorized) return askForToken();
    $("#work").replaceChildren(el("p", { class: "error" }, `Cannot list tasks and sessions: ${e.message}`));
  }
}

// ---- the live stream ---------------------------------------------------------------------

async function follow() {
  for (;;) {
    try {
      const headers = token() ? { authorization: `Bearer ${token()}` } : {};
      const res = await fetch("/ui/api/events", { headers });
      if (res.status === 401) return askForToken();
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (!event || !data) continue;
          const payload = JSON.parse(data);
          if (event === "topology") renderTopology(payload);
          else if (event === "call") {
            calls = [payload, ...calls].slice(0, 100);
            renderCalls();
          } else if (event === "problem") setStatus(payload.error, "bad");
        }
      }
      setStatus("the gateway closed the stream; reconnecting…", "bad");
    } catch (e) {
      setStatus(`disconnected (${e.message}); reconnecting…`, "bad");
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
}

let running = false;

async function start() {
  try {
    [tools, calls] = await Promise.all([api("/ui/api/tools"), api("/ui/api/calls")]);
  } catch (e) {
    if (e instanceof Unauthorized) return askForToken();
    setStatus(e.message, "bad");
    return;
  }
  $("#login").hidden = true;
  $("#app").hidden = false;
  renderTools();
  renderCalls();
  void refreshWork();
  if (running) return;
  running = true;
  setInterval(() => void refreshWork(), 3000);
  // The tool list changes when agents come and go.
  setInterval(async () => {
    try {
      tools = await api("/ui/api/tools");
      renderTools();
    } catch {
      // the stream reports trouble
    }
  }, 10000);
  void follow();
}

$("#login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("#token").value.trim());
  $("#token").value = "";
  void start();
});

void start();
