// The console's strings in English and Chinese; the language is remembered per user on the server
// (PUT /api/v1/me/preferences) and, before sign-in, in this browser.
export const LANGS = [["en", "English"], ["zh", "中文"]];
const S = {
  action: ["Action", "操作"], activations: ["Activations", "激活"], active: ["active", "有效"], actor: ["Actor", "执行者"],
  add_project: ["Add project", "添加项目"], add_tenant: ["Add tenant", "添加租户"], add_user: ["Add user", "添加用户"],
  added: ["added", "新增"], after: ["After", "之后"], aliases: ["Aliases", "别名"], all: ["All", "全部"], api_keys: ["API keys", "API 密钥"],
  archived: ["archived", "已归档"], audit_log: ["Audit log", "审计日志"], base_model: ["Base model", "基座模型"], base_models: ["Base models", "基座模型"],
  before: ["Before", "之前"], category: ["Category", "类别"], changed: ["changed", "修改"], compare: ["Compare", "对比"],
  confirm_revoke: ["Revoke this key? Programs using it stop working.", "吊销此密钥？使用它的程序将无法访问。"], count: ["Count", "数量"],
  create_key: ["Create key", "创建密钥"], created: ["Created", "创建时间"], dataset: ["Dataset", "数据集"], dataset_name: ["dataset name", "数据集名称"],
  diff: ["Diff", "差异"], disable: ["Disable", "停用"], disabled: ["disabled", "已停用"], distinct: ["Distinct", "不同值"], evaluation: ["Evaluation", "评测"],
  events: ["Events", "事件"], expires: ["Expires", "过期"], export: ["Export", "导出"], exported: ["Exported", "已导出"], download: ["Download", "下载"], export_format: ["Export as", "导出格式"], field: ["Field", "字段"],
  files: ["files", "个文件"], filter: ["Filter", "筛选"], fits: ["Fits", "可容纳"], format: ["Format", "格式"], free: ["free", "空闲"],
  gradients: ["Gradients", "梯度"], hardware: ["Hardware", "硬件"], items: ["Items", "逐题结果"], job: ["Job", "任务"], kind: ["Kind", "类型"],
  language: ["Language", "语言"], launch_eval: ["Start evaluation", "开始评测"], launch_run: ["Launch run", "启动训练"], launched: ["Queued:", "已提交："],
  length: ["Length", "长度"], license: ["License", "许可证"], lineage: ["Lineage", "血缘"], loading: ["Loading…", "加载中…"], logs: ["Logs", "日志"],
  make_report: ["Generate the report", "生成报告"], auto_eval: ["newest whole evaluation", "最新的完整评测"], baseline_eval: ["Baseline evaluation", "基线评测"], tuned_eval: ["Tuned evaluation", "微调后评测"], items_n: ["items", "题"], all_items: ["all items", "全部题目"], members: ["Members", "成员"], memory: ["Memory", "内存"], memory_plan: ["Memory plan", "显存规划"],
  method: ["Method", "方法"], metrics: ["Metrics", "指标"], model: ["Model", "模型"], model_name: ["Model name", "模型名称"],
  model_ref: ["Model", "模型"], my_role: ["my role", "我的角色"], name: ["Name", "名称"], no_jobs: ["No jobs", "暂无任务"], no_logs: ["No logs", "暂无日志"],
  no_models: ["No trained models yet", "暂无训练好的模型"], no_permission_launch: ["Your role may not launch runs (researchers and admins can).", "你的角色不能启动训练（研究员和管理员可以）。"],
  no_points: ["no points yet", "暂无数据"], no_report: ["This run has no report yet.", "此运行还没有报告。"], no_runs: ["No runs yet", "暂无运行"], node: ["Node", "节点"], nulls: ["Nulls", "空值"],
  object: ["Object", "对象"], operation: ["Operation", "操作"], optimizer: ["Optimizer", "优化器"], optional: ["optional", "可选"], outcome: ["Outcome", "结果"],
  outcome_fixed: ["fixed", "修复"], outcome_broken: ["broken", "退化"], outcome_both_right: ["right both times", "两次都对"], outcome_both_wrong: ["wrong both times", "两次都错"],
  owner: ["Owner", "提交者"], page: ["Page", "页"], page_overview: ["Overview", "总览"], page_launch: ["Launch", "启动"], page_monitor: ["Training", "训练监控"],
  page_datasets: ["Datasets", "数据集"], page_evaluation: ["Evaluation", "评测"], page_models: ["Models", "模型"], page_admin: ["Admin", "管理"],
  params: ["parameters", "参数"], password: ["Password", "密码"], pick_runs: ["Runs (tick up to {n} to overlay)", "运行（最多勾选 {n} 个叠加）"],
  platform_admin: ["platform administrator", "平台管理员"], points_drawn: ["points drawn", "个点"], pool: ["Resource pool", "资源池"], prefix: ["Prefix", "前缀"],
  preview: ["Preview", "预览"], progress: ["Progress", "进度"], project: ["Project", "项目"], prompt: ["Prompt", "题目"], quotas: ["Quotas", "配额"],
  recent_activity: ["Recent activity", "最近动态"], reference: ["Reference", "参考答案"], remove: ["Remove", "移除"], removed: ["removed", "删除"],
  report: ["report", "报告"], resources: ["Resources held", "占用资源"], cost: ["Cost", "费用"], costs: ["Cost so far", "累计费用"], costs_tenant: ["tenant total", "租户合计"], revoke: ["Revoke", "吊销"], revoked: ["revoked", "已吊销"], role: ["Role", "角色"],
  role_admin: ["admin", "管理员"], role_researcher: ["researcher", "研究员"], role_developer: ["developer", "开发者"], role_viewer: ["viewer", "只读"],
  rows: ["rows", "行"], run: ["Run", "运行"], runs: ["runs", "个运行"], scope: ["Scope", "范围"], search: ["search", "搜索"],
  secret_once: ["The key's secret, shown this once — copy it now:", "密钥只显示这一次，请立即复制："], set_role: ["Set role", "设置角色"], share: ["share", "份额"],
  sign_in: ["Sign in", "登录"], sign_out: ["Sign out", "退出"], since: ["Since", "起始"], split_train_val_test: ["Split 80/10/10", "按 80/10/10 划分"],
  splits: ["Splits", "划分"], state: ["State", "状态"], state_queued: ["queued", "排队中"], state_running: ["running", "运行中"], state_paused: ["paused", "已暂停"],
  state_succeeded: ["succeeded", "成功"], state_failed: ["failed", "失败"], state_cancelled: ["cancelled", "已取消"], state_created: ["created", "已创建"],
  state_preempting: ["preempting", "抢占中"], state_preempted: ["preempted", "被抢占"], state_stopped: ["stopped", "已停止"], state_lost: ["lost", "失联"],
  statistics: ["Statistics", "统计"], step: ["step", "步"], strategy: ["Strategy", "策略"], submitted: ["Submitted", "提交时间"], tenant: ["Tenant", "租户"],
  tenants: ["Tenants", "租户"], time: ["Time", "时间"], top_values: ["Most frequent", "最常见值"], total: ["Total", "合计"], training_run: ["Training run", "训练运行"],
  type: ["Type", "类型"], unchanged: ["unchanged", "未变"], upload: ["Upload", "上传"], uploaded: ["Uploaded", "已上传"], username: ["User name", "用户名"],
  users: ["Users", "用户"], version: ["Version", "版本"], versions: ["Versions", "版本"], watch_curves: ["Watch its curves live", "实时查看曲线"],
  weights: ["Weights", "权重"], zoom_reset: ["Reset zoom", "重置缩放"], zoomed: ["zoomed (full resolution)", "已缩放（全分辨率）"],
};
export const STRINGS = S;
let current = localStorage.getItem("imts.lang") || (navigator.language.startsWith("zh") ? "zh" : "en");
export const lang = () => current;
export function setLang(code) { current = code; localStorage.setItem("imts.lang", code); }
/** The string ``key`` in the current language, with ``{name}`` placeholders filled from ``args``. */
export function t(key, args = {}) {
  const pair = S[key];
  const s = pair ? pair[current === "zh" ? 1 : 0] : key;
  return s.replace(/\{(\w+)\}/g, (_, k) => String(args[k] ?? ""));
}
