// model.js: the page's data and state, with no drawing. What is visible at the thresholds (as
// the pruning does it, see circuits/view/data.py), names of nodes, search, groups and their
// persistence (localStorage, graph.json export).

const D = JSON.parse(document.getElementById("circuit-data").textContent);
const N = D.nodes.length;
const E = D.edges.source.length;
const SAVE_TOKEN = (document.querySelector('meta[name="circuits-save"]') || {}).content || "";
const GROUP_COLOURS = ["#7b3294", "#008837", "#e66101", "#0571b0", "#c51b7d", "#4d9221",
  "#b35806", "#542788", "#01665e", "#8c510a"];

const state = {
  nodeThreshold: D.thresholds.node,
  edgeThreshold: D.thresholds.edge,
  selected: null,      // node index, or {group: k}
  head: null,          // a head name whose edges are highlighted
  matches: null,       // Set of node indices matching the search
  picked: new Set(),   // nodes picked for a new group
  groups: [],          // [{label, members: [node index]}]
  collapse: false,     // draw each group as one supernode
};

// ------------------------------------------------------------------------------------------
// nodes

const ROLE_OF = D.nodes.map((n) => D.columns[n.col].name);
const middleOrder = [...Array(N).keys()]
  .filter((i) => D.nodes[i].kind === "feature" || D.nodes[i].kind === "error")
  .sort((a, b) => D.nodes[b].influence - D.nodes[a].influence || a - b);
const maxInfluence = Math.max(1e-12, ...middleOrder.map((i) => D.nodes[i].influence));
const incoming = Array.from({ length: N }, () => []);
const outgoing = Array.from({ length: N }, () => []);
for (let k = 0; k < E; k++) {
  incoming[D.edges.target[k]].push(k);
  outgoing[D.edges.source[k]].push(k);
}
for (const list of [...incoming, ...outgoing]) {
  list.sort((a, b) => Math.abs(D.edges.weight[b]) - Math.abs(D.edges.weight[a]));
}

function columnToken(col) {
  const t = D.columns[col].token;
  return t === null || t === undefined ? null : t;
}

function showToken(text) {
  return text.replace(/\n/g, "⏎").replace(/\t/g, "⇥").replace(/\r/g, "␍");
}

function nodeName(i) {
  const n = D.nodes[i];
  if (n.kind === "feature") return `L${n.layer} #${n.feature}`;
  if (n.kind === "error") return `error L${n.layer}`;
  if (n.kind === "target") return D.metric;
  const token = columnToken(n.col);
  return token === null ? "token" : `"${showToken(token)}"`;
}

function nodeTitle(i) {
  return `${nodeName(i)} · ${ROLE_OF[i]}`;
}

function description(i) {
  const n = D.nodes[i];
  return n.kind === "feature" ? D.features[`${n.layer}_${n.feature}`] || null : null;
}

// ------------------------------------------------------------------------------------------
// thresholds

let visible = null; // {nodes: Uint8Array, edges: Uint8Array, nNodes, nEdges}

function computeVisible() {
  const nodes = new Uint8Array(N);
  const edges = new Uint8Array(E);
  const t = state.nodeThreshold;
  const total = middleOrder.reduce((s, i) => s + D.nodes[i].influence, 0);
  let held = 0;
  for (const i of middleOrder) {
    if (t < 1 && (total <= 0 || held >= t * total)) break;
    nodes[i] = 1;
    held += D.nodes[i].influence;
  }
  const kept = (i) => nodes[i] || D.nodes[i].kind === "token" || D.nodes[i].kind === "target";
  let between = 0;
  for (let k = 0; k < E; k++) {
    if (kept(D.edges.source[k]) && kept(D.edges.target[k])) between += D.edges.score[k];
  }
  let mass = 0;
  for (let k = 0; k < E; k++) {  // edges come sorted by score, strongest first
    const s = D.edges.source[k], g = D.edges.target[k];
    if (!kept(s) || !kept(g)) continue;
    if (state.edgeThreshold < 1 && mass >= state.edgeThreshold * between) break;
    edges[k] = 1;
    mass += D.edges.score[k];
  }
  for (let i = 0; i < N; i++) if (D.nodes[i].kind === "target") nodes[i] = 1;
  for (let k = 0; k < E; k++) {
    if (edges[k]) { nodes[D.edges.source[k]] = 1; nodes[D.edges.target[k]] = 1; }
  }
  let nNodes = 0, nEdges = 0;
  for (let i = 0; i < N; i++) nNodes += nodes[i];
  for (let k = 0; k < E; k++) nEdges += edges[k];
  visible = { nodes, edges, nNodes, nEdges };
  return visible;
}

// ------------------------------------------------------------------------------------------
// search: by feature id (`L1 #230`, `#230`, `1_230`, `230`, a graph.json node id) or text

function searchNodes(query) {
  const q = query.trim().toLowerCase();
  if (!q) return null;
  const id = q.match(/^(?:l(\d+)\s*)?#?\s*(\d+)$/) || q.match(/^(\d+)_(\d+)$/);
  const out = [];
  for (let i = 0; i < N; i++) {
    const n = D.nodes[i];
    let hit = n.id.toLowerCase() === q;
    if (!hit && id && n.kind === "feature") {
      const [layer, feature] = id[1] === undefined ? [null, +id[2]] : [+id[1], +id[2]];
      hit = n.feature === feature && (layer === null || n.layer === layer);
    }
    if (!hit && !id) {
      const d = description(i);
      const text = [nodeTitle(i), n.label, ...(d ? [...d.promoted, ...d.input_tokens]
        .map((p) => p[0]) : [])].join("\n").toLowerCase();
      hit = text.includes(q);
    }
    if (hit) out.push(i);
  }
  return out.sort((a, b) => D.nodes[b].influence - D.nodes[a].influence);
}

// ------------------------------------------------------------------------------------------
// groups

function groupOf(i) {
  for (let k = 0; k < state.groups.length; k++) {
    if (state.groups[k].members.includes(i)) return k;
  }
  return -1;
}

function groupColour(k) {
  return GROUP_COLOURS[k % GROUP_COLOURS.length];
}

function addGroup(label, members) {
  const set = new Set(members);
  for (const g of state.groups) g.members = g.members.filter((i) => !set.has(i));
  state.groups = state.groups.filter((g) => g.members.length > 0);
  state.groups.push({ label: label || `group ${state.groups.length + 1}`, members: [...set] });
  saveState();
}

function removeGroup(k) {
  state.groups.splice(k, 1);
  saveState();
}

// Add the proposals of `kind` ("position" or "description") for visible features that are in
// no group yet; returns the number of groups added.
function autoGroup(kind) {
  let added = 0;
  for (const [label, members] of D.auto_groups[kind]) {
    const free = members.filter((i) => visible.nodes[i] && groupOf(i) < 0);
    if (free.length >= 2) { addGroup(label, free); added++; }
  }
  return added;
}

function supernodesJson() {
  return state.groups.map((g) => [g.label, ...g.members.map((i) => D.nodes[i].id)]);
}

// ------------------------------------------------------------------------------------------
// persistence: the page's state in localStorage, keyed by the graph; the file's own groups
// (graph.json's qParams.supernodes) win when they changed since the state was saved

const STORE_KEY = `circuits-view/${D.slug}/${D.key}`;
const FILE_GROUPS = JSON.stringify(D.supernodes);
const INDEX_OF = new Map(D.nodes.map((n, i) => [n.id, i]));

function groupsFromIds(list) {
  return list.map(([label, ids]) => ({ label, members: ids.map((id) => INDEX_OF.get(id))
    .filter((i) => i !== undefined) })).filter((g) => g.members.length > 0);
}

function saveState() {
  try {
    localStorage.setItem(STORE_KEY, JSON.stringify({
      file: FILE_GROUPS,
      node: state.nodeThreshold,
      edge: state.edgeThreshold,
      groups: state.groups.map((g) => [g.label, g.members.map((i) => D.nodes[i].id)]),
    }));
  } catch (err) { /* storage refused (private window, file:// policy): state lasts a visit */ }
}

function loadState() {
  state.groups = D.supernodes.map(([label, members]) => ({ label, members }));
  let saved = null;
  try { saved = JSON.parse(localStorage.getItem(STORE_KEY) || "null"); } catch (err) { }
  if (!saved) return;
  if (typeof saved.node === "number") state.nodeThreshold = saved.node;
  if (typeof saved.edge === "number") state.edgeThreshold = saved.edge;
  if (saved.file === FILE_GROUPS && Array.isArray(saved.groups)) {
    state.groups = groupsFromIds(saved.groups);
  }
}

// graph.json as the run wrote it, with the groups as qParams.supernodes
function exportedGraph() {
  const graph = JSON.parse(document.getElementById("graph-json").textContent);
  graph.qParams = graph.qParams || {};
  graph.qParams.supernodes = supernodesJson();
  return graph;
}

function downloadGraph() {
  const blob = new Blob([JSON.stringify(exportedGraph(), null, 2) + "\n"],
    { type: "application/json" });
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = "graph.json";
  document.body.appendChild(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 0);
}

// served by `circuits view --serve`: write the groups into the run's graph.json and graph.html
async function saveToRun() {
  const response = await fetch("supernodes", {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Circuits-Token": SAVE_TOKEN },
    body: JSON.stringify({ supernodes: supernodesJson() }),
  });
  const reply = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(reply.error || `${response.status} ${response.statusText}`);
  return reply;
}
