// Verify in the browser: an evidence bundle (or a saved certificate.html), the genesis
// file and optionally the original file are checked here by the verifier module
// (./verify/verifier.js, the same steps as `ledgernode verify`); nothing is uploaded.

import {h, replace, table} from '../dom.js';
import {currentLang, t} from '../i18n.js';

const FILE_MAX_BYTES = 64 << 20;  // a browser holds each chosen file in memory
const SNIFF_BYTES = 4096;

async function loadVerifier() {
  try {
    return await import('../verify/verifier.js');
  } catch {
    return null;
  }
}

// Which slot a dropped file fills, from its first bytes: a genesis file or a bundle
// (JSON with their format names, or certificate HTML); anything else is the original file.
async function slotOf(file) {
  const head = new TextDecoder().decode(await file.slice(0, SNIFF_BYTES).arrayBuffer());
  if (/"format"\s*:\s*"ledgernode-genesis\//.test(head)) return 'genesis';
  if (/"format"\s*:\s*"ledgernode-evidence\//.test(head) || /^\s*<(!doctype|html)/i.test(head)) return 'bundle';
  return 'file';
}

export async function verify(view) {
  const chosen = {bundle: null, genesis: null, file: null};
  const inputs = {};
  const notes = {};
  const out = h('div', {id: 'verify-result', 'aria-live': 'polite'});
  const choose = (slot, file) => {
    if (file && file.size > FILE_MAX_BYTES) return;
    chosen[slot] = file || null;
    notes[slot].textContent = file ? t('f.chosen', file.name, file.size) : '';
  };
  const field = (slot, label) => {
    inputs[slot] = h('input', {type: 'file', id: 'verify-' + slot, onchange: (e) => choose(slot, e.target.files[0])});
    notes[slot] = h('span', {class: 'muted', id: 'verify-' + slot + '-note'});
    return h('p', {class: 'file'}, h('label', {for: 'verify-' + slot}, label), inputs[slot], notes[slot]);
  };
  const drop = h('div', {class: 'drop', id: 'verify-drop'}, t('f.drop'));
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', async (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    for (const file of e.dataTransfer.files) choose(await slotOf(file), file);
  });
  const nodeGenesis = h('button', {type: 'button', id: 'verify-node-genesis', class: 'link'}, t('f.nodegenesis'));
  nodeGenesis.addEventListener('click', async () => {
    const bytes = await fetch('/v1/genesis').then((r) => r.arrayBuffer());
    choose('genesis', new File([bytes], 'genesis.json', {type: 'application/json'}));
  });
  const run = h('button', {type: 'button', id: 'verify-run'}, t('f.check'));
  run.addEventListener('click', () => check(chosen, out));
  replace(view, h('h1', {}, t('f.title')), h('p', {}, t('f.intro')), drop,
    field('bundle', t('f.bundle')), field('genesis', t('f.genesis')), h('p', {}, nodeGenesis),
    field('file', t('f.file')), h('p', {}, run), out);
}

async function check(chosen, out) {
  if (!chosen.bundle || !chosen.genesis) { replace(out, h('p', {class: 'error'}, t('f.need'))); return; }
  replace(out, h('p', {class: 'muted', id: 'verify-checking'}, t('f.checking')));  // the last verdict goes at once
  const verifier = await loadVerifier();
  if (!verifier) { replace(out, h('p', {class: 'error'}, t('f.missing'))); return; }
  const zh = currentLang() === 'zh';
  try {
    const raw = new Uint8Array(await chosen.bundle.arrayBuffer());
    const genesis = new Uint8Array(await chosen.genesis.arrayBuffer());
    const fileBytes = chosen.file ? new Uint8Array(await chosen.file.arrayBuffer()) : undefined;
    const bundle = verifier.extractBundle(raw);
    const result = await verifier.verifyBundle(bundle, genesis, {fileBytes});
    const rows = result.checks.map((c) => [c.name, h('span', {class: c.ok ? 'pass' : 'fail'}, c.ok ? t('f.pass') : t('f.fail')),
      zh ? c.zh : c.en]);
    replace(out,
      h('p', {class: 'verdict ' + (result.ok ? 'valid' : 'invalid'), id: 'verdict', 'data-ok': String(result.ok),
        'data-failed': result.failed || ''}, `${result.verdict.zh} ${result.verdict.en}`),  // as the CLI prints it
      table([t('f.check.col'), t('f.result'), t('f.detail')], rows, 'grid checks'));
  } catch (err) {
    replace(out, h('p', {class: 'verdict invalid', id: 'verdict', 'data-ok': 'false'}, String(err.message || err)));
  }
}
