// The web page of `genmodels serve` (GET /): pick a run, a class or a prompt, a sampler and its
// steps; Sample posts an async job, polls its progress and shows the grid. Self-contained (no
// network beyond the server). A query string fills the form (?model=M&class=3&sampler=ddim&
// steps=10&n=16&seed=1, and prompt, guidance, temperature, truncation) and ?auto=1 presses
// Sample, for links and tests. <body data-state> is loading, ready, running, done or failed;
// data-errors lists script errors.
#include <string>

#include "genmodels/models/serve.h"

namespace gm {

const std::string& serve_page() {
  static const std::string page = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>genmodels serve</title>
<style>
  body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; background: #fff; }
  h1 { font-size: 1.3em; }
  label { display: inline-block; margin: 0 1.2em 0.6em 0; }
  input[type=number] { width: 6em; }
  #grid { width: 512px; image-rendering: pixelated; display: block; margin-top: 1em; }
  progress { width: 320px; vertical-align: middle; }
  #error { color: #b00020; margin-top: 0.5em; }
  #params { color: #555; font-size: 12px; }
  [hidden] { display: none !important; }
</style>
</head>
<body data-state="loading">
<h1>genmodels serve</h1>
<form id="form">
  <label>run <select id="model"></select></label>
  <span id="info"></span><br>
  <label id="class-l">class <select id="class"></select></label>
  <label id="prompt-l">prompt <input id="prompt" size="40" placeholder="a photo of a bag"></label>
  <label id="sampler-l">sampler <select id="sampler"></select></label>
  <label id="steps-l">steps <input id="steps" type="number" min="1" max="10000"></label>
  <label id="guidance-l">guidance <input id="guidance" type="number" step="0.1"></label>
  <label id="temperature-l">temperature <input id="temperature" type="number" step="0.1"></label>
  <label id="truncation-l">truncation <input id="truncation" type="number" step="0.1"></label>
  <label>n <input id="n" type="number" min="1" value="16"></label>
  <label>seed <input id="seed" type="number" min="0" value="0"></label>
  <button id="go" type="submit">Sample</button>
  <button id="stop" type="button" disabled>Cancel</button>
</form>
<div><progress id="bar" value="0" max="1"></progress> <span id="status"></span></div>
<div id="error"></div>
<img id="grid" alt="samples" hidden>
<pre id="params"></pre>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const errors = [];
window.addEventListener("error", (e) => {
  errors.push(String(e.message));
  document.body.dataset.errors = errors.join(" | ");
});
window.addEventListener("unhandledrejection", (e) => {
  errors.push(String(e.reason));
  document.body.dataset.errors = errors.join(" | ");
});
const query = new URLSearchParams(location.search);
const numeric = ["guidance", "temperature", "truncation"];
let models = [], job = null;

function setState(s) { document.body.dataset.state = s; }
function busy(on) { $("go").disabled = on; $("stop").disabled = !on; }
function fail(message) {
  $("error").textContent = message;
  setState("failed");
  busy(false);
  job = null;
}
function current() { return models.find((m) => m.name === $("model").value); }
function samplerSteps(m, name) {
  const row = m.samplers.find((r) => r.name === name);
  return row && row.default_steps > 0 ? String(row.default_steps) : "";
}

function pick() {
  const m = current(), d = m.defaults;
  $("info").textContent = m.model + " on " + m.data + ", " + m.shape.join("x");
  const cls = $("class");
  cls.innerHTML = "";
  cls.add(new Option("every class", "-1"));
  m.classes.forEach((c, i) => cls.add(new Option(i + ": " + c, String(i))));
  $("class-l").hidden = m.classes.length === 0;
  $("prompt-l").hidden = !m.prompts;
  const s = $("sampler");
  s.innerHTML = "";
  for (const r of m.samplers) {
    const o = new Option(r.name, r.name);
    o.title = r.doc;
    s.add(o);
  }
  $("sampler-l").hidden = m.samplers.length === 0;
  if ("sampler" in d) s.value = d.sampler;
  $("steps-l").hidden = !("steps" in d);
  $("steps").value = d.steps > 0 ? String(d.steps) : samplerSteps(m, s.value);
  for (const f of numeric) {
    $(f + "-l").hidden = !(f in d);
    $(f).value = f in d ? String(d[f]) : "";
  }
}

function request() {
  const m = current();
  const body = { model: m.name, n: Number($("n").value), seed: Number($("seed").value) };
  body.async = true;
  if (!$("class-l").hidden && $("class").value !== "-1") body["class"] = Number($("class").value);
  if (!$("prompt-l").hidden && $("prompt").value) body.prompt = $("prompt").value;
  if (!$("sampler-l").hidden) body.sampler = $("sampler").value;
  if (!$("steps-l").hidden && $("steps").value) body.steps = Number($("steps").value);
  for (const f of numeric)  // sent when changed (the run's own value adds nothing)
    if (!$(f + "-l").hidden && $(f).value !== "" && Number($(f).value) !== m.defaults[f])
      body[f] = Number($(f).value);
  return body;
}

async function sample() {
  $("error").textContent = "";
  busy(true);
  setState("running");
  $("bar").value = 0;
  const r = await fetch("/v1/sample", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(request())
  });
  const j = await r.json();
  if (!r.ok) return fail(j.error);
  job = j.id;
  await poll(j.id);
}

async function poll(id) {
  const r = await fetch("/v1/jobs/" + encodeURIComponent(id));
  const j = await r.json();
  if (!r.ok) return fail(j.error);
  $("bar").max = Math.max(j.total, 1);
  $("bar").value = j.step;
  $("status").textContent = j.state + (j.total ? ": step " + j.step + " / " + j.total : "") +
      (j.position ? " (" + j.position + " in the queue)" : "");
  if (j.state === "done") return show(j.result);
  if (j.state === "failed" || j.state === "cancelled") return fail(j.error);
  setTimeout(() => poll(id).catch((e) => fail(String(e))), 150);
}

function show(res) {
  const img = $("grid"), png = res.images[0];
  img.onload = () => setState("done");
  img.onerror = () => fail("the returned PNG does not decode");
  img.src = "data:image/png;base64," + png.png;
  img.hidden = false;
  $("bar").value = $("bar").max;
  $("status").textContent = "done: " + res.n + " samples, " +
      (res.nfe === null ? "" : res.nfe + " network evaluations each, ") +
      res.seconds.toFixed(2) + " s";
  $("params").textContent =
      Object.entries(png.parameters).map(([k, v]) => k + ": " + v).join("\n");
  busy(false);
  job = null;
}

$("form").addEventListener("submit", (e) => {
  e.preventDefault();
  sample().catch((err) => fail(String(err)));
});
$("stop").addEventListener("click", () => {
  if (job) fetch("/v1/jobs/" + encodeURIComponent(job), { method: "DELETE" });
});
$("model").addEventListener("change", pick);
$("sampler").addEventListener("change", () => {
  const m = current();
  if (!(m.defaults.steps > 0)) $("steps").value = samplerSteps(m, $("sampler").value);
});

fetch("/v1/models").then((r) => r.json()).then((j) => {
  models = j.models;
  $("n").max = String(j.max_n);
  for (const m of models) $("model").add(new Option(m.name, m.name));
  if (query.has("model")) $("model").value = query.get("model");
  pick();
  for (const f of ["class", "prompt", "sampler", "steps", "n", "seed"].concat(numeric))
    if (query.has(f)) $(f).value = query.get(f);
  setState("ready");
  if (query.get("auto") === "1") sample().catch((err) => fail(String(err)));
}).catch((err) => fail("cannot load /v1/models: " + err));
</script>
</body>
</html>
)HTML";
  return page;
}

}  // namespace gm
