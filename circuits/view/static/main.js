// main.js: wiring. Controls, clicks, keys; the first drawing marks the page ready
// (`performance.mark("circuits-view-ready")`, `document.body.dataset.ready`), which the tests and
// the open-time benchmark wait for.

function showTab(name) {
  for (const el of document.querySelectorAll(".tabs button")) {
    el.classList.toggle("current", el.dataset.tab === name);
  }
  for (const el of document.querySelectorAll(".tab")) el.hidden = el.id !== `tab-${name}`;
  state.tab = name;
}

function refreshPanel() {
  showNode();
  showAttention();
  showGroups();
}

function refreshCounts() {
  const { nNodes, nEdges } = visible;
  document.getElementById("counts").textContent =
    `${nNodes} of ${N} nodes, ${nEdges} of ${E} edges`;
  document.getElementById("node-value").textContent = state.nodeThreshold.toFixed(2);
  document.getElementById("edge-value").textContent = state.edgeThreshold.toFixed(2);
}

// everything after a change of thresholds or groups
function refresh() {
  computeVisible();
  render();
  if (!view.manual) fit(); // the drawing's size follows the thresholds
  refreshCounts();
  refreshPanel();
}

function select(i) {
  state.selected = i;
  state.showAll = false;
  highlight();
  showNode();
  showTab("node");
}

function setHead(name) {
  state.head = name;
  highlight();
  showAttention();
  document.getElementById("head-note").textContent = name ? `edges carried by ${name}` : "";
  document.getElementById("head-note").hidden = !name;
}

function onBackgroundClick() {
  if (state.selected === null && state.head === null) return;
  state.selected = null;
  setHead(null);
  highlight();
  showNode();
}

function onNodeClick(ev) {
  const el = ev.target.closest(".node");
  if (!el) return;
  if (el.dataset.group !== undefined) {
    state.selected = { group: +el.dataset.group };
    highlight(); showNode(); showTab("node");
    return;
  }
  const i = +el.dataset.i;
  if (ev.shiftKey || ev.metaKey || ev.ctrlKey) {
    if (state.picked.has(i)) state.picked.delete(i); else state.picked.add(i);
    highlight(); showGroups(); showTab("groups");
    return;
  }
  select(i);
}

function showMatches(query) {
  const found = searchNodes(query);
  state.matches = found ? new Set(found) : null;
  highlight();
  const list = document.getElementById("search-results");
  list.replaceChildren();
  list.hidden = !found;
  if (!found) return;
  if (!found.length) { list.append(h("div", { class: "sub" }, "no match")); return; }
  for (const i of found.slice(0, 30)) {
    list.append(h("button", { class: `result${visible.nodes[i] ? "" : " hidden"}`,
      onclick: () => { select(i); list.hidden = true; } },
    h("b", {}, nodeTitle(i)), " ", h("span", { class: "sub" }, D.nodes[i].label)));
  }
  if (found.length > 30) list.append(h("div", { class: "sub" }, `${found.length - 30} more`));
}

function header() {
  document.title = `${D.task} on ${D.model} · circuit`;
  document.getElementById("title").textContent = `${D.task} on ${D.model}`;
  const faith = D.figures.find((f) => f[0] === "faithfulness");
  document.getElementById("headline").textContent = [
    faith ? `faithfulness ${faith[1]}` : null,
    `${D.n_prompts} prompts`, `metric ${D.metric}`].filter(Boolean).join(" · ");
  const prompt = document.getElementById("prompt");
  prompt.replaceChildren(h("span", { class: "sub" }, "first prompt: "),
    ...D.example.tokens.map((t, j) => h("span", { class: "tok",
      title: D.example.roles[j] ? `role ${D.example.roles[j]}` : null }, showToken(t))));
}

function installControls() {
  const node = document.getElementById("node-threshold");
  const edge = document.getElementById("edge-threshold");
  node.value = state.nodeThreshold;
  edge.value = state.edgeThreshold;
  const onSlide = () => {
    state.nodeThreshold = +node.value;
    state.edgeThreshold = +edge.value;
    saveState();
    refresh();
  };
  node.addEventListener("input", onSlide);
  edge.addEventListener("input", onSlide);
  const search = document.getElementById("search");
  search.addEventListener("input", () => showMatches(search.value));
  search.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") {
      const first = searchNodes(search.value);
      if (first && first.length) { select(first[0]); document.getElementById("search-results").hidden = true; }
    }
    if (ev.key === "Escape") { search.value = ""; showMatches(""); }
  });
  document.getElementById("fit").addEventListener("click", fit);
  for (const el of document.querySelectorAll(".tabs button")) {
    el.addEventListener("click", () => showTab(el.dataset.tab));
  }
  const svg = document.getElementById("graph");
  svg.addEventListener("click", onNodeClick);
  svg.addEventListener("mouseover", (ev) => {
    const el = ev.target.closest(".node");
    if (el && el.dataset.i !== undefined) showTooltip(ev, +el.dataset.i);
  });
  svg.addEventListener("mouseout", (ev) => { if (ev.target.closest(".node")) hideTooltip(); });
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && ev.target.tagName !== "INPUT") onBackgroundClick();
  });
  window.addEventListener("resize", fit);
  installZoom();
}

function start() {
  loadState();
  header();
  installControls();
  refresh();
  showTab("node");
  requestAnimationFrame(() => requestAnimationFrame(() => {
    performance.mark("circuits-view-ready");
    document.body.dataset.ready = String(performance.now().toFixed(1));
  }));
}

window.circuitsView = { data: D, state, refresh, select, setHead, autoGroup, exportedGraph,
  supernodesJson, computeVisible };
start();
