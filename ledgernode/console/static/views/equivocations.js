// Equivocation evidence: a validator's two signed values for one slot, as the node keeps
// them (each proof is checked offline by `ledgernode verify FILE --kind equivocation`).

import {facts, h, replace, shortHex} from '../dom.js';
import {getJson} from '../api.js';
import {t} from '../i18n.js';

export async function equivocations(view) {
  const doc = await getJson('/v1/equivocations');
  const items = doc.equivocations.map((p) => h('article', {class: 'record'},
    h('h3', {}, `${t('e.validator')} ${p.validator} (${p.dept})`),
    facts([[t('e.kind'), p.kind], [t('e.slot'), `${p.height} / ${p.round}`],
      [t('e.first'), h('span', {class: 'mono'}, shortHex(p.first, 48))],
      [t('e.second'), h('span', {class: 'mono'}, shortHex(p.second, 48))]])));
  replace(view, h('h1', {}, t('e.title')), items.length ? items : h('p', {id: 'no-equivocation'}, t('e.none')));
}
