// What every page imports: the shell's helpers and the string tables.
export { api, h, proj, state, canTrain, roleIn, fmtNum, fmtMoney, fmtDate, fmtDur, errorBox, onLeave, ApiError } from "../app.js";
export { t, lang } from "../i18n.js";
