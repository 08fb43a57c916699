// The console's strings, Chinese first; English when chosen (the choice, not any key, is kept
// in localStorage). t('key', a, b) fills {0}, {1}.
const STRINGS = {
  zh: {
    title: '政策直达 · 控制台', skip: '跳到正文', lang: 'English', signout: '退出',
    'nav.rules': '规则', 'nav.segments': '分群',
    'signin.title': '使用 API 密钥登录', 'signin.key': 'API 密钥',
    'signin.hint': '密钥只用于换取会话，页面不会保存它。', 'signin.submit': '登录',
    'signin.bad': '密钥无效。', none: '此密钥的角色没有控制台页面。',
    whoami: '{0}（{1}{2}）', scope: '，范围 {0}',
    'role.admin': '管理员', 'role.publisher': '发布方', 'role.viewer': '只读', 'role.app': '应用',
    'rules.title': '规则编辑', 'rules.label': '资格规则',
    'rules.help': '输入时自动计算受众；Ctrl+Enter 立即计算。',
    'rules.count': '受众 {0} 人', 'rules.counting': '计算中…', 'rules.empty': '请输入规则',
    'rules.took': '用时 {0} 毫秒',
    'err.at': '第 {0} 行，第 {1} 列：', 'err.segment': '（在分群 “{0}” 中）',
    'err.suggest': '改为 “{0}”', 'err.other': '出错：',
    'clauses.title': '各条件保留人数', 'clauses.clause': '条件', 'clauses.count': '单独满足',
    'clauses.chain': '逐步收窄',
    'chart.region': '地区分布', 'chart.scale': '规模分布', 'chart.industry': '行业分布',
    'sample.title': '随机样本', 'sample.again': '换一批', 'sample.none': '没有匹配的档案',
    'sample.id': '编号', 'sample.name': '名称', 'sample.region': '地区', 'sample.kind': '类型',
    'sample.explain': '解释',
    'explain.title': '解释匹配', 'explain.id': '档案编号', 'explain.go': '解释',
    'explain.match': '匹配', 'explain.nomatch': '不匹配', 'explain.clause': '条件',
    'explain.result': '结果', 'explain.value': '档案的值', 'explain.yes': '✓ 满足',
    'explain.no': '✗ 不满足', 'explain.scope': '（发布范围）', 'explain.missing': '（无）',
    'seg.save': '存为分群', 'seg.name': '分群名称', 'seg.saved': '已保存分群 “{0}”',
    'segs.title': '分群', 'segs.name': '名称', 'segs.rule': '规则', 'segs.owner': '所属',
    'segs.use': '使用', 'segs.edit': '编辑', 'segs.delete': '删除', 'segs.more': '更多',
    'segs.none': '还没有分群', 'segs.confirm': '删除分群 “{0}”？', 'segs.all': '全部',
    'kind.enterprise': '企业', 'kind.citizen': '个人', missing: '未填',
    'scale.micro': '微型', 'scale.small': '小型', 'scale.medium': '中型', 'scale.large': '大型',
    'nav.policies': '政策', 'pol.title': '政策', 'pol.status': '状态', 'pol.all': '全部',
    'pol.id': '编号', 'pol.name': '标题', 'pol.matched': '匹配人数', 'pol.delivered': '已送达',
    'pol.notices': '条通知', 'pol.none': '没有政策', 'pol.funnel': '送达漏斗', 'pol.route': '渠道',
    'pol.by': '送达渠道',
    'st.scheduled': '待发布', 'st.matching': '匹配中', 'st.dispatching': '发送中', 'st.active': '持续匹配',
    'st.done': '已完成', 'st.withdrawn': '已撤回', 'st.dry_run': '试算',
    'fun.delivered': '已送达', 'fun.pending': '待发送', 'fun.suppressed': '已抑制', 'fun.dead': '失败',
    'fun.withdrawn': '已撤回', 'fun.read': '已读',
    'fun.useful': '有用', 'fun.not_useful': '没用',
    'nav.deadletters': '死信',
    'pol.withdraw': '撤回政策', 'pol.withdraw.confirm': '撤回政策 “{0}”？尚未发送的通知将不再发送。',
    'pf.new': '新建政策', 'pf.title': '标题', 'pf.texts': '通知内容', 'pf.id': '编号（可选）',
    'pf.id.hint': '留空则自动生成；字母、数字、. _ -', 'pf.title.missing': '（标题）',
    'pf.summary': '摘要', 'pf.url': '链接', 'pf.issuer': '发布单位', 'pf.category': '类别',
    'pf.preview': '通知预览', 'pf.preview.hint': '收件人看到的标题和摘要。',
    'pf.when': '时间与节奏', 'pf.publish_at': '定时发布', 'pf.publish_at.hint': '留空则立即发布',
    'pf.deadline': '截止日期', 'pf.pace': '节奏（每分钟通知数）', 'pf.pace.hint': '留空则不限速',
    'pf.urgent': '紧急', 'pf.match_new_profiles': '持续匹配新档案', 'pf.rule': '资格规则',
    'pf.routes': '发送渠道', 'pf.routes.hint': '每条渠道都会发送；同一渠道内的网关按顺序兜底。',
    'pf.route': '渠道 {0}', 'pf.route.gw': '渠道 {0} 第 {1} 个网关', 'pf.route.drop_gw': '移除渠道 {0} 第 {1} 个网关',
    'pf.fallback': '+ 兜底网关', 'pf.route.drop': '删除渠道', 'pf.route.add': '+ 添加渠道',
    'pf.no_gateways': '没有配置网关。', 'pf.dry': '试算', 'pf.publish': '发布',
    'pf.dry.title': '试算结果（不会发送）', 'pf.estimated': '按 {0} 份档案抽样估算',
    'pf.tpl': '通知模板', 'pf.tpl.hint': '占位符如 {{policy.title}}、{{fields.company|贵单位}}、{{profile.id}}、{{reasons}}；留空则发送标题和摘要。',
    'pf.tpl.default': '默认模板', 'pf.tpl.gw': '网关 {0} 的模板', 'pf.tpl.title': '标题模板',
    'pf.tpl.body': '正文模板', 'pf.tpl.pick': '网关', 'pf.tpl.add': '+ 为网关添加模板',
    'pf.tpl.drop': '移除', 'pf.tpl.drop.gw': '移除网关 {0} 的模板',
    'pf.render': '样本档案预览', 'pf.render.id': '档案编号',
    'pf.render.hint': '留空则用规则随机样本的第一个档案。', 'pf.render.again': '换一个样本',
    'pf.render.who': '档案 {0}', 'pf.render.match': '符合规则', 'pf.render.nomatch': '目前不符合规则',
    'pf.render.none': '没有匹配的档案可预览。', 'pf.render.norule': '规则有误，无法预览。',
    'pf.render.tplerr': '模板有误，见模板栏。', 'pf.render.sms': '{0} 个字符 · {1} · {2} 条短信',
    'dl.title': '死信', 'dl.policy': '政策编号', 'dl.gateway': '网关', 'dl.apply': '筛选',
    'dl.all': '全选', 'dl.pick': '选择 {0}', 'dl.id': '通知', 'dl.attempts': '尝试次数',
    'dl.detail': '原因', 'dl.at': '时间', 'dl.none': '没有死信', 'dl.erased': '（档案已删除）',
    'dl.replay.ids': '重发所选', 'dl.replay.policy': '重发此政策的死信',
    'dl.replay.gateway': '重发此网关的死信', 'dl.replayed': '已重发 {0} 条',
  },
  en: {
    title: 'zhida · console', skip: 'Skip to content', lang: '中文', signout: 'Sign out',
    'nav.rules': 'Rules', 'nav.segments': 'Segments',
    'signin.title': 'Sign in with an API key', 'signin.key': 'API key',
    'signin.hint': 'The key is exchanged for a session; the page does not keep it.',
    'signin.submit': 'Sign in', 'signin.bad': 'The key is not valid.',
    none: "This key's role has no console pages.",
    whoami: '{0} ({1}{2})', scope: ', scope {0}',
    'role.admin': 'admin', 'role.publisher': 'publisher', 'role.viewer': 'viewer', 'role.app': 'app',
    'rules.title': 'Rule editor', 'rules.label': 'Eligibility rule',
    'rules.help': 'The audience updates as you type; Ctrl+Enter counts now.',
    'rules.count': 'Audience: {0}', 'rules.counting': 'Counting…', 'rules.empty': 'Type a rule',
    'rules.took': '{0} ms',
    'err.at': 'Line {0}, column {1}: ', 'err.segment': ' (in segment "{0}")',
    'err.suggest': 'Use "{0}"', 'err.other': 'Error: ',
    'clauses.title': 'What each condition keeps', 'clauses.clause': 'Condition',
    'clauses.count': 'Alone', 'clauses.chain': 'Narrowing',
    'chart.region': 'By region', 'chart.scale': 'By scale', 'chart.industry': 'By industry',
    'sample.title': 'Random sample', 'sample.again': 'Another sample', 'sample.none': 'No profile matches',
    'sample.id': 'ID', 'sample.name': 'Name', 'sample.region': 'Region', 'sample.kind': 'Kind',
    'sample.explain': 'Explain',
    'explain.title': 'Explain', 'explain.id': 'Profile ID', 'explain.go': 'Explain',
    'explain.match': 'Matches', 'explain.nomatch': 'Does not match', 'explain.clause': 'Condition',
    'explain.result': 'Result', 'explain.value': "Profile's value", 'explain.yes': '✓ true',
    'explain.no': '✗ false', 'explain.scope': ' (publishing scope)', 'explain.missing': '(none)',
    'seg.save': 'Save as segment', 'seg.name': 'Segment name', 'seg.saved': 'Saved segment "{0}"',
    'segs.title': 'Segments', 'segs.name': 'Name', 'segs.rule': 'Rule', 'segs.owner': 'Owner',
    'segs.use': 'Use', 'segs.edit': 'Edit', 'segs.delete': 'Delete', 'segs.more': 'More',
    'segs.none': 'No segments yet', 'segs.confirm': 'Delete segment "{0}"?', 'segs.all': 'all',
    'kind.enterprise': 'enterprise', 'kind.citizen': 'citizen', missing: 'missing',
    'scale.micro': 'micro', 'scale.small': 'small', 'scale.medium': 'medium', 'scale.large': 'large',
    'nav.policies': 'Policies', 'pol.title': 'Policies', 'pol.status': 'Status', 'pol.all': 'all',
    'pol.id': 'ID', 'pol.name': 'Title', 'pol.matched': 'Matched', 'pol.delivered': 'Delivered',
    'pol.notices': 'notices', 'pol.none': 'No policies', 'pol.funnel': 'Delivery funnel',
    'pol.route': 'Route', 'pol.by': 'Delivered by',
    'st.scheduled': 'scheduled', 'st.matching': 'matching', 'st.dispatching': 'dispatching',
    'st.active': 'active', 'st.done': 'done', 'st.withdrawn': 'withdrawn', 'st.dry_run': 'dry run',
    'fun.delivered': 'delivered', 'fun.pending': 'pending', 'fun.suppressed': 'suppressed',
    'fun.dead': 'dead', 'fun.withdrawn': 'withdrawn', 'fun.read': 'read',
    'fun.useful': 'useful', 'fun.not_useful': 'not useful',
    'nav.deadletters': 'Dead letters',
    'pol.withdraw': 'Withdraw', 'pol.withdraw.confirm': 'Withdraw policy "{0}"? Notices not sent yet will not be sent.',
    'pf.new': 'New policy', 'pf.title': 'Title', 'pf.texts': 'Notice', 'pf.id': 'ID (optional)',
    'pf.id.hint': 'Generated when empty; letters, digits, . _ -', 'pf.title.missing': '(title)',
    'pf.summary': 'Summary', 'pf.url': 'Link', 'pf.issuer': 'Issuer', 'pf.category': 'Category',
    'pf.preview': 'Notice preview', 'pf.preview.hint': 'The title and summary recipients see.',
    'pf.when': 'Time and pace', 'pf.publish_at': 'Publish at', 'pf.publish_at.hint': 'Empty: now',
    'pf.deadline': 'Deadline', 'pf.pace': 'Pace (notices per minute)', 'pf.pace.hint': 'Empty: no limit',
    'pf.urgent': 'Urgent', 'pf.match_new_profiles': 'Keep matching new profiles', 'pf.rule': 'Eligibility rule',
    'pf.routes': 'Routes', 'pf.routes.hint': 'Every route sends; the gateways of one route are tried in order.',
    'pf.route': 'Route {0}', 'pf.route.gw': 'Route {0}, gateway {1}', 'pf.route.drop_gw': 'Remove gateway {1} of route {0}',
    'pf.fallback': '+ fallback', 'pf.route.drop': 'Remove route', 'pf.route.add': '+ Add route',
    'pf.no_gateways': 'No gateway is configured.', 'pf.dry': 'Dry run', 'pf.publish': 'Publish',
    'pf.dry.title': 'Dry run (nothing is sent)', 'pf.estimated': 'estimated from a sample of {0} profiles',
    'pf.tpl': 'Templates', 'pf.tpl.hint': 'Placeholders such as {{policy.title}}, {{fields.company|your company}}, {{profile.id}}, {{reasons}}; empty: the title and summary are sent.',
    'pf.tpl.default': 'Default template', 'pf.tpl.gw': 'Template for gateway {0}', 'pf.tpl.title': 'Title',
    'pf.tpl.body': 'Body', 'pf.tpl.pick': 'Gateway', 'pf.tpl.add': '+ Add template for gateway',
    'pf.tpl.drop': 'Remove', 'pf.tpl.drop.gw': 'Remove the template of gateway {0}',
    'pf.render': 'Preview for a sample profile', 'pf.render.id': 'Profile ID',
    'pf.render.hint': "Empty: the first of the rule's random sample.", 'pf.render.again': 'Another sample',
    'pf.render.who': 'Profile {0}', 'pf.render.match': 'matches the rule', 'pf.render.nomatch': 'does not match the rule now',
    'pf.render.none': 'No matching profile to preview.', 'pf.render.norule': 'The rule has an error: no preview.',
    'pf.render.tplerr': 'A template has an error (shown at the template).', 'pf.render.sms': '{0} characters · {1} · {2} SMS segments',
    'dl.title': 'Dead letters', 'dl.policy': 'Policy ID', 'dl.gateway': 'Gateway', 'dl.apply': 'Filter',
    'dl.all': 'Select all', 'dl.pick': 'Select {0}', 'dl.id': 'Notice', 'dl.attempts': 'Attempts',
    'dl.detail': 'Reason', 'dl.at': 'At', 'dl.none': 'No dead letters', 'dl.erased': '(profile erased)',
    'dl.replay.ids': 'Replay selected', 'dl.replay.policy': "Replay this policy's",
    'dl.replay.gateway': "Replay this gateway's", 'dl.replayed': 'Replayed {0}',
  },
};

let lang = localStorage.getItem('zhida.lang') === 'en' ? 'en' : 'zh';
const listeners = [];

export function t(key, ...args) {
  const s = STRINGS[lang][key] ?? STRINGS.zh[key] ?? key;
  return s.replace(/\{(\d)\}/g, (_, i) => String(args[Number(i)] ?? ''));
}

export function getLang() {
  return lang;
}

export function setLang(l) {
  lang = l === 'en' ? 'en' : 'zh';
  localStorage.setItem('zhida.lang', lang);
  document.documentElement.lang = lang === 'en' ? 'en' : 'zh-CN';
  applyStatic();
  listeners.forEach((f) => f());
}

export function onLang(f) {
  listeners.push(f);
}

// Elements with data-i18n get their text from the table.
export function applyStatic(root = document) {
  root.querySelectorAll('[data-i18n]').forEach((el) => {
    el.textContent = t(el.dataset.i18n);
  });
  document.title = t('title');
}

export function num(n) {
  return Number(n).toLocaleString(lang === 'en' ? 'en-US' : 'zh-CN');
}
