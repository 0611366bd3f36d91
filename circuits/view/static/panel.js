// panel.js: the side panel. Node: a clicked node's figures, description, top contexts and its
// strongest incoming and outgoing edges with the heads that carried them. Attention: heads,
// QK paths, moved patterns. Groups: supernodes, by hand or proposed.

const EDGES_SHOWN = 8;

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function fmt(x, digits = 3) {
  if (x === null || x === undefined || !isFinite(x)) return "–";
  return Math.abs(x) >= 1000 || (Math.abs(x) < 1e-3 && x !== 0) ? x.toExponential(2)
    : x.toFixed(digits);
}

function signed(x, digits = 3) {
  return x === null || x === undefined ? "–" : (x >= 0 ? "+" : "") + fmt(x, digits);
}

function percent(x) {
  return x === null || x === undefined || !isFinite(x) ? "–" : `${Math.round(100 * x)}%`;
}

function headChip(name, share, effect) {
  const title = `${name} carries ${percent(share)} of this edge's weight` +
    (Math.abs(share) > 1 ? " (over 100%: other heads cancel part of it)" : "") +
    (share < 0 ? " (it opposes the edge)" : "") +
    (effect !== null && effect !== undefined ? `; effect through it ${signed(effect)}` : "");
  return h("button", { class: `chip head${share < 0 ? " against" : ""}`, title,
    onclick: (ev) => { ev.stopPropagation(); setHead(name); } }, `${name} ${percent(share)}`);
}

function subLabel(i) {
  const label = D.nodes[i].label;
  return label && label !== nodeName(i) && label !== ROLE_OF[i] && D.nodes[i].kind !== "error"
    ? h("div", { class: "sub" }, label) : null;
}

function nodeLink(i) {
  return h("button", { class: "link", title: D.nodes[i].label,
    onclick: () => select(i) }, nodeTitle(i));
}

function edgeTable(ks, end, title) {
  const rows = ks.slice(0, state.showAll ? ks.length : EDGES_SHOWN).map((k) => {
    const other = D.edges[end][k];
    const w = D.edges.weight[k];
    return h("tr", { class: visible.edges[k] ? "" : "hidden", title: visible.edges[k] ? null
      : "not drawn at these thresholds" },
      h("td", {}, nodeLink(other), subLabel(other)),
      h("td", { class: `num ${w >= 0 ? "pos" : "neg"}` }, signed(w)),
      h("td", { class: "num" }, signed(D.edges.effect[k])),
      h("td", {}, D.edges.heads[k].map(([name, share, effect]) => headChip(name, share, effect))));
  });
  const more = ks.length > EDGES_SHOWN && !state.showAll
    ? h("button", { class: "link more", onclick: () => { state.showAll = true; showNode(); } },
      `show all ${ks.length}`) : null;
  return h("section", { class: "edges-list", "data-end": end },
    h("h3", {}, `${title} (${ks.length})`),
    ks.length ? h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "node"),
      h("th", { class: "num", title: "direct effect (mean over prompts)" }, "weight"),
      h("th", { class: "num", title: "first-order change of the metric when the corruption " +
        "changes the source (metric units)" }, "effect"),
      h("th", { title: "attention heads that carried the edge, share of its weight" }, "heads"))),
    h("tbody", {}, rows)) : h("p", { class: "sub" }, "none"), more);
}

function contextLine(ctx) {
  return h("div", { class: "context" }, ctx.tokens.map((t, j) => h("span",
    { class: j === ctx.active ? "active" : null }, showToken(t))),
    h("span", { class: "act" }, fmt(ctx.activation, 2)));
}

function tokenChips(list, cls) {
  return h("div", { class: "chips" }, list.map(([t, s]) => h("span", { class: `chip ${cls}`,
    title: fmt(s, 2) }, showToken(t))));
}

function descriptionSection(i) {
  const d = description(i);
  if (!d) return null;
  return h("section", { class: "description" },
    h("h3", {}, "Description"),
    h("p", { class: "sub" }, `active on ${percent(d.frequency)} of scanned tokens, ` +
      `max activation ${fmt(d.max_activation, 2)}`),
    d.top_contexts.length ? [h("h4", {}, "Top contexts"), d.top_contexts.map(contextLine)] : null,
    d.promoted.length ? [h("h4", {}, "Promotes"), tokenChips(d.promoted, "pos")] : null,
    d.suppressed.length ? [h("h4", {}, "Suppresses"), tokenChips(d.suppressed, "neg")] : null,
    d.input_tokens.length ? [h("h4", {}, "Driven by tokens"), tokenChips(d.input_tokens, "")]
      : null);
}

function nodeFacts(i) {
  const n = D.nodes[i];
  const rows = [];
  if (n.kind === "feature" || n.kind === "error") {
    rows.push(["share of circuit score", percent(n.influence),
      "what the run ranked and selected nodes by (|effect| over the circuit's total)"]);
    rows.push(["effect on the metric", `${signed(n.effect)}` + (D.gap ? ` (${percent(n.effect / D.gap)} of gap)` : ""),
      "the metric's change when this node alone is resampled from the corrupted prompt"]);
    rows.push(["influence via circuit edges", fmt(n.graph_influence),
      "share of the metric's input that flows through it along the circuit's edges"]);
    rows.push(["change under corruption", percent(n.change),
      "mean clean-to-corrupted change relative to the clean value"]);
  }
  if (n.kind === "feature") rows.push(["mean activation", fmt(n.activation, 2), ""]);
  if (n.kind === "target") rows.push(["mean value", fmt(n.activation), ""]);
  rows.push(["graph.json id", n.id, "node_id in graph.json"]);
  return h("table", { class: "facts" }, rows.map(([k, v, title]) =>
    h("tr", { title }, h("th", {}, k), h("td", {}, v))));
}

function showNode() {
  const body = document.getElementById("tab-node");
  body.replaceChildren();
  const sel = state.selected;
  if (sel === null) { body.append(overview()); return; }
  if (typeof sel === "object") { body.append(groupDetails(sel.group)); return; }
  const n = D.nodes[sel];
  const k = groupOf(sel);
  body.append(h("div", {},
    h("h2", {}, nodeName(sel), h("span", { class: "role" }, ROLE_OF[sel])),
    subLabel(sel) ? h("div", { class: "label" }, n.label) : null,
    k >= 0 ? h("p", { class: "sub" }, "in group ", h("b", { style: `color:${groupColour(k)}` },
      state.groups[k].label)) : null,
    visible.nodes[sel] ? null : h("p", { class: "warn" }, "Not drawn at these thresholds."),
    nodeFacts(sel),
    edgeTable(incoming[sel], "source", "Incoming edges"),
    edgeTable(outgoing[sel], "target", "Outgoing edges"),
    descriptionSection(sel)));
}

function overview() {
  return h("div", {},
    h("h2", {}, `${D.task} on ${D.model}`),
    h("table", { class: "facts" }, D.figures.map(([k, v]) => h("tr", {}, h("th", {}, k),
      h("td", {}, v)))),
    h("p", { class: "sub" }, "Click a node for its edges, heads and description; shift-click " +
      "to pick nodes for a group; drag to pan, scroll to zoom."),
    h("p", { class: "sub" }, `Node threshold: the strongest feature and error nodes holding ` +
      `that share of the circuit's score. Edge threshold: the strongest edges between them ` +
      `holding that share of the influence-weighted edge mass. Both at 1 draw the whole ` +
      `circuit (${N} nodes, ${E} edges).`));
}

function groupDetails(k) {
  const g = state.groups[k];
  const members = [...g.members].sort((a, b) => D.nodes[b].influence - D.nodes[a].influence);
  const share = members.reduce((s, i) => s + D.nodes[i].influence, 0);
  return h("div", {},
    h("h2", { style: `color:${groupColour(k)}` }, g.label),
    h("p", { class: "sub" }, `${members.length} nodes, ${percent(share)} of the circuit's score`),
    h("ul", { class: "members" }, members.map((i) => h("li", {}, nodeLink(i), " ",
      h("span", { class: "sub" }, D.nodes[i].label)))));
}

// ------------------------------------------------------------------------------------------
// attention

function headTable(title, note, rows, columns) {
  const table = h("table", {}, h("thead", {}, h("tr", {}, columns.map((c) =>
    h("th", { class: c.num ? "num" : "" }, c.name)))),
  h("tbody", {}, rows.map((row) => h("tr", {}, columns.map((c) => c.cell(row))))));
  return h("section", {}, h("h3", {}, title), note ? h("p", { class: "sub" }, note) : null, table);
}

function headButton(name) {
  return h("button", { class: `chip head${state.head === name ? " current" : ""}`,
    onclick: () => setHead(state.head === name ? null : name) }, name);
}

function showAttention() {
  const a = D.attention;
  const body = document.getElementById("tab-attention");
  const limit = (rows) => rows.slice(0, state.allHeads ? rows.length : 12);
  body.replaceChildren(h("div", {},
    h("p", { class: "sub" }, "Click a head to highlight the drawn edges it carried."),
    a.heads.length ? headTable("Heads on circuit edges", "total |weight × share| carried",
      limit(a.heads), [{ name: "head", cell: (r) => h("td", {}, headButton(r[0])) },
        { name: "weight carried", num: true, cell: (r) => h("td", { class: "num" }, fmt(r[1])) }])
      : null,
    a.qk_paths.length ? headTable("Paths through attention patterns (QK)",
      "The graph holds attention frozen; these senders act by moving where a later head looks " +
      "(share of the metric's gap).", limit(a.qk_paths),
      [{ name: "sender", cell: (r) => h("td", {}, r[0]) },
        { name: "head", cell: (r) => h("td", {}, headButton(r[1])) },
        { name: "share of gap", num: true, cell: (r) => h("td", { class: "num" }, signed(r[2])) }])
      : null,
    a.moved_patterns.length ? headTable("Heads whose own attention the corruption moves",
      "Each head's corrupted-prompt pattern swapped in, everything else clean.",
      limit(a.moved_patterns),
      [{ name: "head", cell: (r) => h("td", {}, headButton(r[0])) },
        { name: "metric move", num: true, cell: (r) => h("td", { class: "num" }, signed(r[1])) },
        { name: "share of gap", num: true, cell: (r) => h("td", { class: "num" }, signed(r[2])) }])
      : null,
    a.components.length ? headTable("Components (components.json)",
      "influence each attention head and MLP layer carries", limit(a.components),
      [{ name: "component", cell: (r) => h("td", {}, /^L\d+H\d+$/.test(r[0]) ? headButton(r[0]) : r[0]) },
        { name: "score", num: true, cell: (r) => h("td", { class: "num" }, fmt(r[1])) }])
      : null,
    state.allHeads ? null : h("button", { class: "link more", onclick: () => {
      state.allHeads = true; showAttention(); } }, "show all rows")));
}

// ------------------------------------------------------------------------------------------
// groups

function showGroups() {
  const body = document.getElementById("tab-groups");
  const label = h("input", { id: "group-label", type: "text", placeholder: "label, e.g. say the IO name" });
  const status = h("p", { id: "group-status", class: "sub" });
  const picked = [...state.picked];
  body.replaceChildren(
    h("section", {},
      h("h3", {}, "New group"),
      h("p", { class: "sub" }, `${picked.length} picked (shift-click nodes).`),
      h("div", { class: "row" }, label,
        h("button", { id: "group-picked", disabled: picked.length === 0 ? true : null,
          onclick: () => {
            addGroup(label.value.trim(), picked);
            state.picked.clear();
            refresh();
          } }, "Group picked"),
        h("button", { onclick: () => { state.picked.clear(); refresh(); } }, "Clear"))),
    h("section", {},
      h("h3", {}, "Proposals"),
      h("p", { class: "sub" }, "Groups the drawn features that are in no group yet."),
      h("div", { class: "row" },
        h("button", { id: "auto-position", onclick: () => {
          status.textContent = `${autoGroup("position")} groups added`; refresh(); } },
        "By role position"),
        h("button", { id: "auto-description", onclick: () => {
          status.textContent = `${autoGroup("description")} groups added`; refresh(); } },
        "By description"))),
    h("section", {},
      h("h3", {}, `Groups (${state.groups.length})`),
      h("label", { class: "row" }, h("input", { id: "collapse", type: "checkbox",
        checked: state.collapse ? true : null,
        onchange: (ev) => { state.collapse = ev.target.checked; refresh(); } }),
      "draw each group as one node"),
      h("ul", { class: "groups" }, state.groups.map((g, k) => h("li", {},
        h("span", { class: "swatch", style: `background:${groupColour(k)}` }),
        h("input", { type: "text", value: g.label, onchange: (ev) => {
          g.label = ev.target.value.trim() || g.label; saveState(); refresh(); } }),
        h("button", { class: "link", title: "show the group",
          onclick: () => { state.selected = { group: k }; refresh(); } },
        `${g.members.length}`),
        h("button", { class: "link", title: "ungroup", onclick: () => {
          removeGroup(k); refresh(); } }, "×"))))),
    h("section", {},
      h("h3", {}, "Export"),
      h("p", { class: "sub" }, "Groups are kept in this browser for this graph. graph.json " +
        "carries them as qParams.supernodes for the common graph viewer: download it over the " +
        "run's graph.json, or save it there when the page is served by `circuits view --serve`."),
      h("div", { class: "row" },
        h("button", { id: "download-graph", onclick: downloadGraph }, "Download graph.json"),
        SAVE_TOKEN ? h("button", { id: "save-run", onclick: async () => {
          status.textContent = "saving…";
          try {
            const reply = await saveToRun();
            status.textContent = `saved ${reply.supernodes} groups to graph.json and graph.html`;
          } catch (err) { status.textContent = `not saved: ${err.message}`; }
        } }, "Save to run directory") : null),
      status));
}

// ------------------------------------------------------------------------------------------
// tooltip

function showTooltip(ev, i) {
  const tip = document.getElementById("tooltip");
  const n = D.nodes[i];
  tip.replaceChildren(h("div", {}, h("b", {}, nodeTitle(i)), subLabel(i),
    n.kind === "feature" || n.kind === "error"
      ? h("div", { class: "sub" }, `score ${percent(n.influence)} · effect ${signed(n.effect)}`)
      : null));
  const box = document.getElementById("canvas").getBoundingClientRect();
  tip.style.left = `${Math.min(ev.clientX - box.left + 14, box.width - 240)}px`;
  tip.style.top = `${ev.clientY - box.top + 14}px`;
  tip.hidden = false;
}

function hideTooltip() {
  document.getElementById("tooltip").hidden = true;
}
