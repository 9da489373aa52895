// The console's entry point: hash routes to views, the language toggle, the search box
// and the one live-update source every view shares.

import {replace, h} from './dom.js';
import {Live, POLL_MS} from './api.js';
import {applyStatic, currentLang, setLang, t} from './i18n.js';
import {overview} from './views/overview.js';
import {blocks, block} from './views/blocks.js';
import {record} from './views/record.js';
import {search} from './views/search.js';
import {certificate, dataset} from './views/answers.js';
import {provenance} from './views/provenance.js';
import {equivocations} from './views/equivocations.js';
import {verify} from './views/verify.js';
import {keyId, lock, unlock} from './signer.js';

const ROUTES = {
  '': overview, 'blocks': blocks, 'block': block, 'record': record, 'search': search,
  'cert': certificate, 'dataset': dataset, 'provenance': provenance,
  'equivocations': equivocations, 'verify': verify,
};

const live = new Live();
let teardown = null;
let rendered = 0;

// '#/record/ab12?x=1' -> {name: 'record', arg: 'ab12', query: URLSearchParams}
function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, qs] = raw.split('?', 2);
  const slash = path.indexOf('/');
  const name = slash < 0 ? path : path.slice(0, slash);
  const arg = slash < 0 ? '' : decodeURIComponent(path.slice(slash + 1));
  return {name, arg, query: new URLSearchParams(qs || '')};
}

async function route() {
  const view = document.getElementById('view');
  if (teardown) { teardown(); teardown = null; }
  const {name, arg, query} = parseHash();
  const render = ROUTES[name] || overview;
  const mine = ++rendered;
  for (const a of document.querySelectorAll('nav a')) {
    a.classList.toggle('current', a.getAttribute('href') === '#/' + name);
  }
  replace(view, h('p', {class: 'muted'}, t('loading')));
  try {
    const cleanup = await render(view, {arg, query, live});
    if (mine === rendered) teardown = typeof cleanup === 'function' ? cleanup : null;
    else if (typeof cleanup === 'function') cleanup();
  } catch (err) {
    if (mine === rendered) replace(view, h('p', {class: 'error'}, t('error', err.message)));
  }
}

function showLive() {
  const el = document.getElementById('live');
  const mode = live.mode;
  el.textContent = mode === 'polling' ? t('live.polling', POLL_MS / 1000) : t('live.' + mode);
  el.className = 'live ' + mode;
}

function showKey(status) {
  const state = document.getElementById('unlock-state');
  const mine = keyId();
  const needed = status && status.reads === 'authenticated';
  state.textContent = mine ? t('unlock.as', mine) : needed ? t('unlock.needed') : '';
  document.getElementById('lock').hidden = !mine;
  document.getElementById('unlock').textContent = t(mine ? 'unlock.signed' : 'unlock.open');
  if (needed && !mine) document.getElementById('unlock-panel').hidden = false;
}

function startUnlock() {
  const panel = document.getElementById('unlock-panel');
  document.getElementById('unlock').addEventListener('click', () => { panel.hidden = !panel.hidden; });
  document.getElementById('unlock-file').addEventListener('change', async (event) => {
    const file = event.target.files[0];
    event.target.value = '';  // the input keeps no copy of the file
    if (!file) return;
    try {
      unlock(await file.text());
    } catch (err) {
      document.getElementById('unlock-state').textContent = t('unlock.bad', err.message);
      return;
    }
    showKey(live.status);
    route();
  });
  document.getElementById('lock').addEventListener('click', () => { lock(); showKey(live.status); route(); });
}

function start() {
  applyStatic();
  startUnlock();
  document.getElementById('lang').addEventListener('click', () => {
    setLang(currentLang() === 'zh' ? 'en' : 'zh');
    showLive();
    route();
  });
  document.getElementById('search').addEventListener('submit', (event) => {
    event.preventDefault();
    const q = document.getElementById('search-q').value.trim();
    if (q) location.hash = '#/search?' + new URLSearchParams({q}).toString();
  });
  window.addEventListener('hashchange', route);
  live.subscribe(showLive);
  live.subscribe((status) => showKey(status));
  live.start().then(showLive);
  route();
}

start();
