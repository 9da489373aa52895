// Building the page from data: every value goes in as a text node or an attribute set
// through the DOM, never as markup, so a record field can only ever show as text.

const SVG_NS = 'http://www.w3.org/2000/svg';

function fill(el, props, children) {
  for (const [name, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'class') el.setAttribute('class', value);
    else if (name === 'text') el.textContent = String(value);
    else if (name.startsWith('on') && typeof value === 'function') el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function h(tag, props, ...children) {
  return fill(document.createElement(tag), props, children);
}

export function s(tag, props, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), props, children);
}

export function replace(el, ...children) {
  el.replaceChildren();
  return fill(el, {}, children);
}

// A table from a header row and rows of cells (strings or nodes).
export function table(headers, rows, cls) {
  return h('table', {class: cls || 'grid'},
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', {}, x)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c) => h('td', {}, c))))));
}

// A definition list of [label, value] pairs.
export function facts(pairs) {
  return h('dl', {class: 'facts'}, pairs.filter((p) => p).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

export function link(href, text, props) {
  return h('a', {href, ...(props || {})}, text);
}

export function shortHex(hex, n) {
  const keep = n || 12;
  return typeof hex === 'string' && hex.length > keep ? hex.slice(0, keep) + '…' : String(hex);
}

// Body fields that hold a time in ms (families/*.py: TIME fields), shown with their date too.
const TIME_FIELDS = new Set(['valid_from', 'valid_until', 'expires', 'effective']);

function fieldText(key, v) {
  if (typeof v === 'object' && v !== null) return JSON.stringify(v);
  if (TIME_FIELDS.has(key) && typeof v === 'number' && Number.isFinite(new Date(v).getTime())) {
    return `${v} (${new Date(v).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC')})`;
  }
  return String(v);
}

// A record body's fields as a list, nested values as JSON text.
export function body(value) {
  if (value === null || typeof value !== 'object') return h('span', {class: 'mono'}, String(value));
  return facts(Object.entries(value).map(([k, v]) => [k, h('span', {class: 'mono'}, fieldText(k, v))]));
}
