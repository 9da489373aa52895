// The page's own texts in English and Chinese; the choice is kept in localStorage.
// Record fields are shown as they are, in whatever language they were written.

const KEY = 'ledgernode.lang';

const TEXTS = {
  'brand': ['ledgernode console', 'ledgernode 控制台'],
  'nav.overview': ['Network', '网络概览'],
  'nav.blocks': ['Blocks', '区块'],
  'nav.cert': ['Certificates', '证书'],
  'nav.dataset': ['Datasets', '数据集'],
  'nav.provenance': ['Provenance', '溯源'],
  'nav.equivocations': ['Equivocations', '双签证据'],
  'nav.verify': ['Verify', '验证'],
  'search.placeholder': ['record id, subject, certificate number, dataset id', '记录编号、主体、证书编号、数据集编号'],
  'search.go': ['Search', '搜索'],
  'loading': ['Loading…', '加载中…'],
  'foot': ['Served by this node; nothing is loaded from anywhere else.', '由本节点提供；不从其他任何地方加载内容。'],
  'error': ['Could not load: {0}', '无法加载：{0}'],
  'live.stream': ['live: event stream', '实时：事件流'],
  'live.polling': ['live: polling every {0} s', '实时：每 {0} 秒轮询'],
  'live.offline': ['node unreachable', '节点不可达'],
  'live.starting': ['connecting…', '连接中…'],
  'unlock.open': ['Unlock', '解锁'],
  'unlock.signed': ['Signing reads', '读取已签名'],
  'unlock.lock': ['Lock', '锁定'],
  'unlock.label': ["Sign reads with a registered key file (PEM, as ledgernode keygen writes it; kept in this page's memory only)",
    '用已登记的密钥文件签名读取请求（PEM，由 ledgernode keygen 生成；只保存在本页面内存中）'],
  'unlock.as': ['reads signed by key {0}', '读取请求由密钥 {0} 签名'],
  'unlock.needed': ["this node's reads are authenticated: unlock with a registered key file", '本节点的读取需要认证：请用已登记的密钥文件解锁'],
  'unlock.bad': ['not a usable key file: {0}', '无法使用的密钥文件：{0}'],
  'ov.title': ['Network at a glance', '网络概览'],
  'ov.chain': ['Chain', '链'],
  'ov.node': ['This node', '本节点'],
  'ov.height': ['Head height', '最新高度'],
  'ov.time': ['Head time', '最新区块时间'],
  'ov.records': ['Records in the log', '日志中的记录'],
  'ov.rps': ['Records/s (last minute)', '记录/秒（近一分钟）'],
  'ov.bps': ['Blocks/s (last minute)', '区块/秒（近一分钟）'],
  'ov.mempool': ['Mempool', '待打包'],
  'ov.round': ['Round', '轮次'],
  'ov.rounds': ['Round changes', '轮次切换'],
  'ov.validators': ['Validators', '验证节点'],
  'ov.recent': ['Latest records', '最新记录'],
  'ov.window': ['over {0} s so far', '已统计 {0} 秒'],
  'v.index': ['#', '序号'],
  'v.name': ['Name', '名称'],
  'v.dept': ['Department', '部门'],
  'v.key': ['Key', '密钥'],
  'v.link': ['Link', '连接'],
  'v.vote': ['Last vote (height)', '最近投票（高度）'],
  'v.primary': ['Primary', '主节点'],
  'link.self': ['this node', '本节点'],
  'link.up': ['up', '已连接'],
  'link.down': ['down', '已断开'],
  'yes': ['yes', '是'],
  'no': ['no', '否'],
  'none': ['none', '无'],
  'b.title': ['Blocks', '区块'],
  'b.height': ['Height', '高度'],
  'b.time': ['Time', '时间'],
  'b.records': ['Records', '记录数'],
  'b.round': ['Round', '轮次'],
  'b.hash': ['Block hash', '区块哈希'],
  'b.proposer': ['Proposer', '提议者'],
  'b.newer': ['← newer', '← 较新'],
  'b.older': ['older →', '较早 →'],
  'b.detail': ['Block {0}', '区块 {0}'],
  'b.signers': ['Signed by validators', '签名验证节点'],
  'b.logsize': ['Log size after it', '其后日志大小'],
  'b.logroot': ['Log root', '日志根哈希'],
  'b.empty': ['No records in this block.', '此区块没有记录。'],
  'b.none': ['No blocks yet.', '尚无区块。'],
  'r.title': ['Record', '记录'],
  'r.id': ['Record id', '记录编号'],
  'r.status': ['Status', '状态'],
  'r.type': ['Type', '类型'],
  'r.subject': ['Subject', '主体'],
  'r.signer': ['Signer key', '签名密钥'],
  'r.dept': ['Department', '部门'],
  'r.block': ['Block', '区块'],
  'r.leaf': ['Leaf index', '叶子序号'],
  'r.time': ['Signed at', '签署时间'],
  'r.refs': ['Made from', '来源记录'],
  'r.body': ['Body', '内容'],
  'r.evidence': ['Download evidence bundle', '下载证据包'],
  'r.certificate': ['Evidence certificate (printable)', '存证证书（可打印）'],
  'r.back': ['Provenance: what it was made from', '溯源：来源'],
  'r.forward': ['Provenance: what was made from it', '溯源：去向'],
  'r.certstatus': ['Certificate status', '证书状态'],
  'r.shares': ['Grants and accesses', '授权与访问'],
  's.title': ['Search', '搜索'],
  's.none': ['Nothing found for {0}.', '未找到 {0}。'],
  's.record': ['Record {0}', '记录 {0}'],
  's.subject': ['{0} records about subject {1}', '主体 {1} 的 {0} 条记录'],
  's.cert': ['Certificate {0}: status', '证书 {0}：状态'],
  's.dataset': ['Dataset {0}: grants and accesses', '数据集 {0}：授权与访问'],
  's.more': ['(first {0} shown)', '（显示前 {0} 条）'],
  'c.title': ['Certificate status', '证书状态'],
  'c.number': ['Certificate number', '证书编号'],
  'c.at': ['At', '时间点'],
  'c.show': ['Show', '查看'],
  'c.status': ['Status at {0}', '{0} 时的状态'],
  'c.issuer': ['Issuer', '签发部门'],
  'c.history': ['Records about it', '相关记录'],
  'st.valid': ['valid', '有效'],
  'st.suspended': ['suspended', '已暂停'],
  'st.revoked': ['revoked', '已撤销'],
  'st.expired': ['expired', '已过期'],
  'st.not_yet_valid': ['not yet valid', '尚未生效'],
  'st.not_issued': ['never issued', '从未签发'],
  'd.title': ['Dataset grants and accesses', '数据集授权与访问'],
  'd.id': ['Dataset id', '数据集编号'],
  'd.owner': ['Owner', '所有者'],
  'd.grants': ['Grants', '授权'],
  'd.to': ['To department', '授权给'],
  'd.purpose': ['Purpose', '用途'],
  'd.basis': ['Legal basis', '法律依据'],
  'd.expires': ['Expires', '到期'],
  'd.revoked': ['Revoked by', '撤销记录'],
  'd.accesses': ['Accesses', '访问记录'],
  'd.noaccess': ['no access yet', '尚无访问'],
  'd.nogrants': ['No grants.', '没有授权。'],
  'p.title': ['Provenance', '溯源'],
  'p.id': ['Record id', '记录编号'],
  'p.back': ['back (made from)', '向上（来源）'],
  'p.forward': ['forward (made into)', '向下（去向）'],
  'p.graph': ['{0} records, {1} links', '{0} 条记录，{1} 条关联'],
  'e.title': ['Equivocation evidence', '双签证据'],
  'e.none': ['No equivocation found: no validator signed two values for one slot.', '未发现双签：没有验证节点在同一位置签署两个不同的值。'],
  'e.validator': ['Validator', '验证节点'],
  'e.kind': ['Message', '消息类型'],
  'e.slot': ['Height / round', '高度 / 轮次'],
  'e.first': ['First signed value', '第一个签名值'],
  'e.second': ['Second signed value', '第二个签名值'],
  'f.title': ['Verify evidence in this browser', '在浏览器中验证证据'],
  'f.intro': ['Drop an evidence bundle (or a saved certificate.html) and the genesis file. They are checked here, with the same steps as “ledgernode verify”; nothing is sent to any server.',
    '拖入证据包（或保存的 certificate.html）和创世文件。验证在本浏览器中进行，步骤与“ledgernode verify”相同；不会向任何服务器发送内容。'],
  'f.bundle': ['Evidence bundle or certificate.html', '证据包或 certificate.html'],
  'f.genesis': ['Genesis file', '创世文件'],
  'f.file': ['Original file (optional)', '原始文件（可选）'],
  'f.drop': ['Drop files here or choose them below', '将文件拖到此处，或在下方选择'],
  'f.nodegenesis': ["Use this node's genesis (only if you checked its hash)", '使用本节点的创世文件（仅当你已核对其哈希）'],
  'f.check': ['Verify', '验证'],
  'f.checking': ['Checking…', '验证中…'],
  'f.need': ['Choose an evidence bundle and a genesis file first.', '请先选择证据包和创世文件。'],
  'f.missing': ['The in-browser verifier is not available on this node.', '本节点未提供浏览器内验证程序。'],
  'f.chosen': ['chosen: {0} ({1} bytes)', '已选择：{0}（{1} 字节）'],
  'f.check.col': ['Check', '检查项'],
  'f.result': ['Result', '结果'],
  'f.detail': ['What was checked', '检查内容'],
  'f.pass': ['pass', '通过'],
  'f.fail': ['FAIL', '未通过'],
  'not_found': ['Not found: {0}', '未找到：{0}'],
};

let lang = 'en';
try {
  lang = localStorage.getItem(KEY) === 'zh' ? 'zh' : 'en';
} catch { lang = 'en'; }

export function currentLang() { return lang; }

export function setLang(next) {
  lang = next === 'zh' ? 'zh' : 'en';
  try { localStorage.setItem(KEY, lang); } catch { /* private mode: the choice lasts this visit */ }
  applyStatic();
}

export function t(key, ...args) {
  const pair = TEXTS[key];
  let text = pair ? pair[lang === 'zh' ? 1 : 0] : key;
  args.forEach((a, i) => { text = text.split(`{${i}}`).join(String(a)); });
  return text;
}

// Texts of the fixed parts of index.html (data-i18n, data-i18n-placeholder).
export function applyStatic() {
  document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll('[data-i18n-placeholder]')) {
    el.setAttribute('placeholder', t(el.dataset.i18nPlaceholder));
  }
  const toggle = document.getElementById('lang');
  if (toggle) {
    toggle.textContent = lang === 'zh' ? 'English' : '中文';
    toggle.setAttribute('lang', lang === 'zh' ? 'en' : 'zh');
  }
}

export function time(ms) {
  if (ms === null || ms === undefined) return '—';
  const d = new Date(Number(ms));
  if (Number.isNaN(d.getTime())) return String(ms);
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}
